"""``convtrack demo``: the main job end to end on one machine.

Starts NATS + ClickHouse (local stack) and the aggregator, API and IVR as separate processes,
creates a demo tenant through the API, drives simulated calls through the IVR, and prints the
API's report. ``--exit`` compares the report with the simulator's tally instead of staying up.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=300, help="simulated calls (default 300)")
    parser.add_argument("--exit", action="store_true", help="compare report and tally, then exit")
    parser.add_argument("--dir", default=".stack/demo", help="stack directory (wiped at start)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated calls")
    parser.add_argument("--concurrency", type=int, default=50, help="simultaneous calls")
    parser.add_argument(
        "--timing", type=float, default=0.02, help="simulated human/prompt time factor"
    )


def run(args: argparse.Namespace) -> int:
    if args.calls < 1:
        print("--calls must be at least 1")
        return 2
    demo = Demo(args)
    try:
        return demo.main()
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:
        print(f"demo failed: {exc}")
        return 1
    finally:
        demo.stop()


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dir = Path(args.dir).resolve()
        self.supervisor: Any = None
        self.stack: Any = None

    # -- start and stop ----------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        from convtrack.demo_plan import API_KEY, TENANT
        from convtrack.processes import Supervisor
        from shared.clickhouse.client import connect
        from shared.clickhouse.migrations import migrate
        from shared.nats_bootstrap import bootstrap_url
        from shared.stack import LocalStack, free_port

        stack = LocalStack(self.dir)
        if any(s["running"] for s in stack.status().values()):
            stack.down()
        shutil.rmtree(self.dir, ignore_errors=True)  # a fresh tenant every run
        self.stack = LocalStack(self.dir)
        print(f"starting NATS and ClickHouse under {self.dir} ...")
        self.stack.up()
        ch = connect(self.stack.clickhouse_url)
        migrate(ch)
        ch.close()
        asyncio.run(bootstrap_url([self.stack.nats_url]))

        ports = {name: free_port() for name in ("api", "ivr", "ivr_metrics", "agg_metrics")}
        api_url = f"http://127.0.0.1:{ports['api']}"
        env = {
            "CT_NATS_URL": self.stack.nats_url,
            "CT_CLICKHOUSE_URL": self.stack.clickhouse_url,
            "CT_API_LISTEN": f"127.0.0.1:{ports['api']}",
            "CT_API_KEYS": f"{TENANT}:{API_KEY}",
            "CT_API_PUBLIC_URL": api_url,
            "CT_IVR_LISTEN": f"127.0.0.1:{ports['ivr']}",
            "CT_IVR_METRICS_LISTEN": f"127.0.0.1:{ports['ivr_metrics']}",
            "CT_AGGREGATOR_METRICS_LISTEN": f"127.0.0.1:{ports['agg_metrics']}",
            "CT_LOG_FORMAT": "text",
        }
        self.supervisor = Supervisor(self.dir / "log", env)
        metrics = f"http://127.0.0.1:{ports['agg_metrics']}/readyz"
        self.supervisor.start("aggregator", ["aggregator"], metrics)
        self.supervisor.start("api", ["api"], f"{api_url}/readyz")
        self.supervisor.start("ivr", ["ivr"], f"http://127.0.0.1:{ports['ivr_metrics']}/readyz")
        print("starting aggregator, API and IVR ...")
        self.supervisor.wait_ready()
        return {
            "api": api_url,
            "ivr": f"127.0.0.1:{ports['ivr']}",
            "clickhouse": self.stack.clickhouse_url,
            "clickhouse_http": self.stack.clickhouse_http_url,
            "nats": self.stack.nats_url,
        }

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
            self.supervisor = None
        if self.stack is not None:
            self.stack.down()
            self.stack = None

    # -- the job -------------------------------------------------------------------------------
    def main(self) -> int:
        import httpx

        from convtrack.demo_plan import (
            API_KEY,
            build_calls,
            create_demo_tenant,
            expected_figures,
        )
        from convtrack.demo_report import compare, print_report
        from simulator import SimConfig, run_calls_sync

        where = self.start()
        api = httpx.Client(
            base_url=where["api"], headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )
        setup = create_demo_tenant(api)
        print(f"created {len(setup.profiles)} profiles, {len(setup.number_profile)} numbers")
        time.sleep(1.5)  # the IVR's KV watch applies new configuration within a second

        calls = build_calls(setup, self.args.calls, self.args.seed)
        print(f"driving {len(calls)} simulated calls through the IVR ...")
        result = run_calls_sync(
            calls,
            where["ivr"],
            concurrency=self.args.concurrency,
            config=SimConfig(timing=self.args.timing),
        )
        tally = result.tally.figures()
        print(f"simulator tally: {tally}")
        expected = expected_figures(setup, calls, result.results)

        start = datetime.now(UTC) - timedelta(days=1)
        end = datetime.now(UTC) + timedelta(days=1)
        reported = self._wait_for_report(api, setup, expected, start, end)
        print_report(setup, reported)
        answers = sum(result.tally.answers.values())
        if self.args.exit:
            differences = compare(setup, expected, reported)
            if tally.get("errors"):
                differences.append(f"simulator: {tally['errors']} calls failed")
            if differences:
                print("demo FAILED: the report differs from the simulator's tally:")
                for line in differences:
                    print(f"  - {line}")
                return 1
            print(f"demo ok: {len(calls)} calls, {answers} answers, report matches")
            return 0
        self._print_addresses(where)
        self._wait_for_ctrl_c()
        return 0

    def _wait_for_report(
        self, api: Any, setup: Any, expected: Any, start: datetime, end: datetime
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Poll the summary until the counts reach what was dialled (about a second)."""
        from convtrack.demo_report import report_figures

        deadline = time.monotonic() + 60
        while True:
            reported = {}
            for profile_id in setup.profiles:
                response = api.get(
                    "/v1/reports/summary",
                    params={
                        "profile_id": profile_id,
                        "from": start.isoformat(),
                        "to": end.isoformat(),
                        "interval": "day",
                    },
                )
                if response.status_code != 200:
                    raise RuntimeError(f"summary report: {response.status_code} {response.text}")
                reported[profile_id] = report_figures(response.json())
            want = sum(f.count for p in expected.values() for f in p.values())
            have = sum(int(c.get("count") or 0) for p in reported.values() for c in p.values())
            if have >= want or time.monotonic() > deadline:
                return reported
            time.sleep(0.3)

    @staticmethod
    def _print_addresses(where: dict[str, str]) -> None:
        print()
        print(f"API docs:        {where['api']}/docs   (key: Bearer demo-key)")
        print(f"OpenAPI:         {where['api']}/openapi.json")
        print(f"ClickHouse:      {where['clickhouse']}  (HTTP {where['clickhouse_http']})")
        print(f"IVR (FS socket): {where['ivr']}")
        print(f"NATS:            {where['nats']}")
        print("Press Ctrl-C to stop every process the demo started.")

    @staticmethod
    def _wait_for_ctrl_c() -> None:
        stop = False

        def handler(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, handler)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print("stopping ...")
