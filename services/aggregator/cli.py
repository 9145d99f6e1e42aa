"""``convtrack aggregator``: run the JetStream -> ClickHouse aggregator until SIGTERM/SIGINT.

Heavy imports (nats, clickhouse-driver, prometheus) happen in ``run`` so that building the
command line stays cheap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size", type=int, help="messages per fetch/INSERT (CT_AGGREGATOR_BATCH_SIZE)"
    )
    parser.add_argument(
        "--max-wait-ms", type=int, help="longest wait to fill a batch (CT_AGGREGATOR_MAX_WAIT_MS)"
    )
    parser.add_argument("--durable", help="durable consumer name (CT_AGGREGATOR_DURABLE)")
    parser.add_argument(
        "--metrics-listen",
        help="HOST:PORT of /healthz, /readyz, /metrics (CT_AGGREGATOR_METRICS_LISTEN)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from shared.logs import configure_logging
    from shared.settings import Settings, get_settings

    overrides = {
        "aggregator_batch_size": args.batch_size,
        "aggregator_max_wait_ms": args.max_wait_ms,
        "aggregator_durable": args.durable,
        "aggregator_metrics_listen": args.metrics_listen,
    }
    base = get_settings()
    settings = Settings.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    import asyncio
    import logging
    import signal

    from services.aggregator.metrics import AggregatorMetrics
    from services.aggregator.service import Aggregator
    from shared.clickhouse.client import connect
    from shared.health_http import start_health_server

    log = logging.getLogger("ct.aggregator")
    metrics = AggregatorMetrics()
    ch = connect(settings.clickhouse_url)
    aggregator = Aggregator(settings, ch, metrics)
    try:
        health = start_health_server(
            settings.aggregator_metrics_listen, aggregator.readiness, metrics.registry
        )
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.aggregator_metrics_listen, exc)
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, aggregator.stop)
    log.info(
        "aggregator starting",
        extra={
            "durable": settings.aggregator_durable,
            "batch_size": settings.aggregator_batch_size,
            "max_wait_ms": settings.aggregator_max_wait_ms,
            "metrics": settings.aggregator_metrics_listen,
        },
    )
    try:
        await aggregator.run()
    finally:
        health.shutdown()
        ch.close()
    return 0
