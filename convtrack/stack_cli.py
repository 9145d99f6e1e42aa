"""``convtrack stack up|down|status --dir DIR``."""

from __future__ import annotations

import argparse
import json

from shared.stack import LocalStack, StackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", default=".stack", help="stack directory (data, logs, env file)")


def run(args: argparse.Namespace) -> int:
    stack = LocalStack(args.dir)
    if args.action == "up":
        try:
            lines = stack.up()
        except StackError as exc:
            print(f"stack up failed: {exc} (logs under {stack.dir / 'log'})")
            return 1
        print("\n".join(lines))
        print(f"# written to {stack.dir / 'env'}; use: set -a; . {stack.dir / 'env'}; set +a")
        return 0
    if args.action == "down":
        stopped = stack.down()
        for name, was_running in stopped.items():
            print(f"{name}: {'stopped' if was_running else 'was not running'}")
        return 0
    status = stack.status()
    for name, info in status.items():
        state = "running" if info["running"] else "stopped"
        extra = f" pid={info['pid']} port={info['port']}" if info["running"] else ""
        print(f"{name}: {state}{extra}")
    print(json.dumps(status))
    return 0 if all(i["running"] for i in status.values()) else 3
