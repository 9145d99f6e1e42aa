"""``convtrack``: the one command line of the project.

Each command's options and behaviour live with the code it runs (``<package>.cli`` modules with
``add_arguments(parser)`` and ``run(args) -> int``); this module only wires them together, and
imports a command's module lazily so that, say, ``convtrack stack`` never loads gevent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("convtrack.stack_cli", "start/stop the local NATS + ClickHouse stack"),
    "migrate": ("convtrack.migrate_cli", "apply ClickHouse migrations and the NATS bootstrap"),
    "aggregator": ("services.aggregator.cli", "run the JetStream -> ClickHouse aggregator"),
    "api": ("services.api.cli", "run the REST API"),
    "ivr": ("services.ivr.cli", "run the IVR on FreeSWITCH's outbound event socket"),
    "simulate": ("simulator.cli", "play FreeSWITCH: drive simulated calls into the IVR"),
    "demo": ("convtrack.demo", "run the whole product end to end on this machine"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convtrack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the chosen command's module is imported
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
