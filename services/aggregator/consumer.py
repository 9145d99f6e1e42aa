"""The JetStream side: connection, the shared durable pull consumer, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


async def ensure_consumer(js: JetStreamContext, settings: Settings) -> None:
    """Create or update the durable consumer (idempotent; every process may call it)."""
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


class ConsumerGone(Exception):
    """The durable consumer does not exist (any more): create it again, then pull again."""


class BatchPuller:
    """Pull requests on the durable consumer; the delivered messages are collected by a callback.

    nats-py's ``PullSubscription.fetch`` awaits every message through a new task with its own
    timeout, which cost more than validating and inserting the message. Here one request asks
    for a whole batch and a plain subscription callback appends each message to a list.

    Each request gets its own reply subject so that a late status reply (e.g. the 408 of an
    expired request) can never end a newer request early. Messages that arrive late for an
    older request are kept for the next batch: they were delivered to us and are ours to ack.
    """

    def __init__(self, nc: NATS, durable: str):
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{names.EVENTS_STREAM}.{durable}"
        self._inbox = nc.new_inbox()
        self._ids = itertools.count(1)
        self._current = ""
        self._want = 0
        self._buffer: list[Msg] = []
        self._done = asyncio.Event()
        self._gone = False
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def fetch(self, batch: int, max_wait_s: float) -> list[Msg]:
        """Up to ``batch`` messages: as soon as the batch is full, else after ``max_wait_s``."""
        if len(self._buffer) < batch:
            await self._request(batch - len(self._buffer), max_wait_s)
        if self._gone:
            self._gone = False
            raise ConsumerGone(self._next_subject)
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def _request(self, want: int, max_wait_s: float) -> None:
        self._current = f"{self._inbox}.{next(self._ids)}"
        self._want = len(self._buffer) + want
        self._done.clear()
        body = json.dumps({"batch": want, "expires": int(max_wait_s * 1e9)}).encode()
        await self._nc.publish(self._next_subject, body, reply=self._current)
        # The server ends the request by itself (batch full or 408 at expiry); the margin
        # covers a lost connection, where no reply will ever come.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout=max_wait_s + 1.0)

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status") if not msg.data else None
        if status is None:
            self._buffer.append(msg)
            # Data messages carry their stream subject, not our reply subject: count them.
            if len(self._buffer) >= self._want:
                self._done.set()
            return
        if msg.subject != self._current:
            return  # the end of an older request
        if status == "503" or (status == "409" and "deleted" in _description(msg)):
            self._gone = True  # no responders: the consumer is missing
        # 404 no messages, 408 expired, 409 limits: this request is over.
        self._done.set()


def _description(msg: Msg) -> str:
    return str((msg.headers or {}).get("Description", "")).lower()


def delivery_count(msg: Msg) -> int:
    """How often JetStream delivered ``msg`` (1 = first time), read from its ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` or, with a domain
    and account hash, ``$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>...``; cheaper
    than ``msg.metadata``, which builds several objects per message.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        return int(tokens[4])
    if len(tokens) >= 11:
        return int(tokens[6])
    return int(msg.metadata.num_delivered)
