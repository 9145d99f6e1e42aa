"""``convtrack migrate [--cluster NAME] [--print]``: ClickHouse migrations + NATS bootstrap."""

from __future__ import annotations

import argparse
import asyncio

from shared.clickhouse.client import connect
from shared.clickhouse.migrations import Target, migrate, render_all
from shared.nats_bootstrap import bootstrap_url
from shared.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster", default=None, help="emit/apply the ON CLUSTER + Replicated* variant"
    )
    parser.add_argument("--print", action="store_true", help="print the SQL instead of applying it")
    parser.add_argument(
        "--replicas", type=int, default=1, help="JetStream replicas for stream/buckets"
    )
    parser.add_argument("--skip-nats", action="store_true")
    parser.add_argument("--skip-clickhouse", action="store_true")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    target = Target(
        cluster=args.cluster if args.cluster is not None else settings.clickhouse_cluster
    )
    if args.print:
        print(";\n\n".join(render_all(target)) + ";")
        return 0
    if not args.skip_clickhouse:
        ch = connect(settings.clickhouse_url)
        try:
            for line in migrate(ch, target):
                print(f"clickhouse: applied {line}")
            print("clickhouse: schema up to date")
        finally:
            ch.close()
    if not args.skip_nats:
        asyncio.run(bootstrap_url(settings.nats_servers, replicas=args.replicas))
        print("nats: stream, dead-letter stream, KV buckets and object store ready")
    return 0
