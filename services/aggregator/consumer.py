"""The JetStream side: connection, the shared durable pull consumer, dead letters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from shared import nats_names as names
from shared.settings import Settings

log = logging.getLogger("ct.aggregator")

_HEADER_MAX = 1000  # a reason longer than this is cut: headers are not meant for essays


def consumer_config(settings: Settings) -> ConsumerConfig:
    """One durable shared by every aggregator process: JetStream spreads batches among them."""
    return ConsumerConfig(
        name=settings.aggregator_durable,
        durable_name=settings.aggregator_durable,
        description="convtrack aggregator: events -> ClickHouse",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,  # AckAll would ack other processes' messages too
        ack_wait=settings.aggregator_ack_wait_s,
        max_deliver=-1,  # never give up on a valid event; invalid ones are dead-lettered
        # Room for several processes' batches in flight; the server default (1000) would cap a
        # fetch below the batch size.
        max_ack_pending=max(10_000, settings.aggregator_batch_size * 10),
    )


async def connect(
    settings: Settings,
    on_change: Callable[[bool], Awaitable[None]],
) -> NATS:
    """Connect once; afterwards the client reconnects by itself for as long as it takes."""

    async def disconnected() -> None:
        await on_change(False)

    async def reconnected() -> None:
        await on_change(True)

    async def error(exc: Exception) -> None:
        log.warning("nats: %s", exc, extra={"error": type(exc).__name__})

    nc = await nats.connect(
        servers=settings.nats_servers,
        name="convtrack-aggregator",
        connect_timeout=2,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    await on_change(True)
    return nc


async def subscribe(js: JetStreamContext, settings: Settings) -> JetStreamContext.PullSubscription:
    """Create or update the durable consumer, then bind a pull subscription to it."""
    config = consumer_config(settings)
    try:
        await js.add_consumer(names.EVENTS_STREAM, config)
    except APIError as exc:
        # Another process created it with settings this one cannot change (e.g. an older
        # deploy); binding still works, so keep going and say so.
        await js.consumer_info(names.EVENTS_STREAM, settings.aggregator_durable)
        log.warning(
            "consumer exists with other settings; binding to it as it is",
            extra={"durable": settings.aggregator_durable, "error": str(exc)},
        )
    return await js.pull_subscribe_bind(
        consumer=settings.aggregator_durable, stream=names.EVENTS_STREAM
    )


async def consumer_lag(js: JetStreamContext, durable: str) -> tuple[int, int]:
    """(messages not yet delivered, messages delivered and not yet acked)."""
    info = await js.consumer_info(names.EVENTS_STREAM, durable)
    return int(info.num_pending or 0), int(info.num_ack_pending or 0)


async def dead_letter(js: JetStreamContext, msg: Msg, reason: str) -> None:
    """Store ``msg`` on the dead-letter subject with its reason; raises if JetStream did not."""
    meta = msg.metadata
    headers = {
        names.DEADLETTER_REASON_HEADER: _header_value(reason),
        names.DEADLETTER_SUBJECT_HEADER: msg.subject,
        "CT-Original-Stream-Seq": str(meta.sequence.stream),
        # A crash after this publish and before the ack redelivers the message; the same
        # Nats-Msg-Id makes JetStream drop the second dead letter.
        "Nats-Msg-Id": f"deadletter:{meta.stream}:{meta.sequence.stream}",
    }
    original_id = (msg.headers or {}).get("Nats-Msg-Id")
    if original_id:
        headers["CT-Original-Msg-Id"] = _header_value(original_id)
    await js.publish(names.DEADLETTER_SUBJECT, msg.data, headers=headers, timeout=5)


def _header_value(text: str) -> str:
    flat = " ".join(text.split())  # header values cannot hold line breaks
    return flat[:_HEADER_MAX]
