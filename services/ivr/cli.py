"""``convtrack ivr``: the survey service on FreeSWITCH's outbound event socket.

gevent is imported only when the command runs (convtrack/cli.py loads this module to build the
parser, and other commands must not pay for or be affected by gevent).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="event-socket HOST:PORT (default CT_IVR_LISTEN)")
    parser.add_argument(
        "--metrics-listen", help="health/metrics HOST:PORT (default CT_IVR_METRICS_LISTEN)"
    )


def run(args: argparse.Namespace) -> int:
    from shared.logs import configure_logging
    from shared.settings import Settings

    overrides = {}
    if args.listen:
        overrides["ivr_listen"] = args.listen
    if args.metrics_listen:
        overrides["ivr_metrics_listen"] = args.metrics_listen
    settings = Settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)

    from .server import main

    return main(settings)
