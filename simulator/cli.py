"""``convtrack simulate``: play FreeSWITCH and drive simulated calls into the IVR.

Only argparse and the standard library are imported at module level; the simulator itself is
imported in ``run`` so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys

FAULTS = (
    "split_frames",
    "truncated_body",
    "malformed_frame",
    "linger_before_complete",
    "linger_after_complete",
    "hangup_mid_prompt",
    "encoded_newline",
    "drop_connection",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ivr", default="127.0.0.1:8084", help="IVR address HOST:PORT")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--script", metavar="FILE.jsonl", help="one call per line (docs/simulator.md)")
    src.add_argument("--calls", type=int, default=None, help="number of generated calls")
    parser.add_argument("--concurrency", type=int, default=100, help="simultaneous calls")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated calls")
    parser.add_argument(
        "--numbers",
        default="+493012345678",
        help="comma-separated tracking numbers the generated calls dial",
    )
    parser.add_argument("--criteria", type=int, default=3, help="answers generated per call")
    parser.add_argument(
        "--fault", action="append", choices=FAULTS, default=[], help="inject into every call"
    )
    parser.add_argument(
        "--timing",
        type=float,
        default=1.0,
        help="factor on all in-call time (prompts, typing, timeouts); 0.01 = 100x faster",
    )
    parser.add_argument("--prompt-seconds", type=float, default=2.0, help="length of a prompt")
    parser.add_argument("--static", action="store_true", help="socket without 'async'")
    parser.add_argument("--no-full", action="store_true", help="socket without 'full'")
    parser.add_argument(
        "--linger-before-complete",
        action="store_true",
        help="linger notice before the running app's EXECUTE_COMPLETE (default: after)",
    )
    parser.add_argument("--park-event", action="store_true", help="deliver CHANNEL_PARK")
    parser.add_argument("--call-timeout", type=float, default=300.0, help="per-call watchdog, s")
    parser.add_argument("--results", metavar="FILE.jsonl", help="write per-call results here")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG logs every frame")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import logging

    from simulator import (
        Fault,
        ScriptError,
        SimConfig,
        generate_calls,
        load_script,
        run_calls,
    )

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        if args.script:
            calls = load_script(args.script)
            if args.fault:
                extra = [Fault(f) for f in args.fault]
                calls = [c.model_copy(update={"faults": [*c.faults, *extra]}) for c in calls]
        else:
            numbers = [n.strip() for n in args.numbers.split(",") if n.strip()]
            calls = generate_calls(
                args.calls if args.calls is not None else 10,
                seed=args.seed,
                numbers=numbers,
                criteria=args.criteria,
                faults=[Fault(f) for f in args.fault],
            )
    except (OSError, ScriptError, ValueError) as exc:
        print(f"convtrack simulate: {exc}", file=sys.stderr)
        return 2
    config = SimConfig(
        timing=args.timing,
        prompt_seconds=args.prompt_seconds,
        async_mode=not args.static,
        full_control=not args.no_full,
        linger_before_complete=args.linger_before_complete,
        park_event=args.park_event,
        call_timeout=args.call_timeout,
    )
    try:
        result = asyncio.run(
            run_calls(calls, args.ivr, concurrency=args.concurrency, config=config)
        )
    except ValueError as exc:
        print(f"convtrack simulate: {exc}", file=sys.stderr)
        return 2
    if args.results:
        with open(args.results, "w", encoding="utf-8") as fh:
            for r in result.results:
                fh.write(json.dumps(r.to_dict()) + "\n")
    print(result.tally.table())
    print(result.tally.json_line(), flush=True)
    return 1 if result.tally.errors else 0
