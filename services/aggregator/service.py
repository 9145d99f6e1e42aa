"""The aggregator loop: fetch a batch, validate, dead-letter the hopeless, write, ack.

Delivery guarantees (docs/aggregator.md):
- a message is acked only after ClickHouse accepted the insert holding it (or after its dead
  letter was stored), so a crash anywhere means redelivery, never loss;
- redelivered messages (and every message of a retried write) are checked against ClickHouse
  before the insert, so a redelivery is never counted twice;
- ClickHouse down: the batch is retried with capped, jittered backoff while JetStream is told the
  messages are still in progress, so no other aggregator gets them meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from services.aggregator import consumer
from services.aggregator.decode import Event, Rejected, decode, event_key
from services.aggregator.dedup import Key
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.writer import BatchWriter, WriteResult
from shared.clickhouse.client import ClickHouse
from shared.events import AnswerEvent
from shared.settings import Settings

log = logging.getLogger("ct.aggregator")

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0
WATCH_INTERVAL_S = 5.0  # consumer lag poll and idle ClickHouse probe
FAULT_EXIT_CODE = 17


class Aggregator:
    """One aggregator process's work. ``run()`` returns after ``stop()`` (or a fatal error)."""

    def __init__(
        self,
        settings: Settings,
        ch: ClickHouse,
        metrics: AggregatorMetrics | None = None,
    ):
        self.settings = settings
        self.metrics = metrics or AggregatorMetrics()
        self.writer = BatchWriter(ch)
        self._check_all = settings.aggregator_check_ids == "always"
        # clickhouse-driver is synchronous and not thread-safe: one worker thread does every
        # ClickHouse call, in order, while the event loop keeps fetching, acking and answering.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nats_connected = False
        self._subscribed = False
        self._clickhouse_state = "unknown"
        self._clickhouse_last_ok = 0.0
        self._fault_armed = settings.aggregator_fault == "exit_after_insert"

    # -- control and health ------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the batch in flight, ack it, return from ``run()``. Safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        else:
            self._stop.set()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """For /readyz (called from the health thread; reads plain attributes only)."""
        nats_state = "connected" if self._nats_connected else "disconnected"
        if self._nats_connected and not self._subscribed:
            nats_state = "connected, consumer not bound"
        ready = self._nats_connected and self._subscribed and self._clickhouse_state == "ok"
        return ready, {"nats": nats_state, "clickhouse": self._clickhouse_state}

    async def _nats_changed(self, connected: bool) -> None:
        self._nats_connected = connected
        self.metrics.nats_connected.set(1 if connected else 0)
        log.info("nats %s", "connected" if connected else "disconnected")

    def _clickhouse_changed(self, ok: bool, error: str = "") -> None:
        was_ok = self._clickhouse_state == "ok"
        self._clickhouse_state = "ok" if ok else f"down: {error}"[:300]
        self.metrics.clickhouse_up.set(1 if ok else 0)
        if ok:
            self._clickhouse_last_ok = time.monotonic()
            if not was_ok:
                log.info("clickhouse reachable")

    # -- main loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        nc = await self._connect()
        if nc is None:
            return
        try:
            js = nc.jetstream()
            if not await self._ensure_consumer(js):
                return
            puller = consumer.BatchPuller(nc, self.settings.aggregator_durable)
            await puller.start()
            await self._probe_clickhouse()
            watchers = [
                asyncio.create_task(self._watch_lag(js)),
                asyncio.create_task(self._watch_clickhouse()),
            ]
            try:
                await self._consume(js, puller)
            finally:
                await puller.close()
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
        finally:
            await self._close(nc)
            self._executor.shutdown(wait=True)
            log.info("aggregator stopped")

    async def _consume(self, js: JetStreamContext, puller: consumer.BatchPuller) -> None:
        """Fetch batch N+1 while batch N is written, so that the network, validation and
        ClickHouse work overlap. Writes stay one at a time: batch N+1's check for stored ids
        runs after batch N's insert."""
        in_flight: asyncio.Task[None] | None = None
        try:
            while not self._stop.is_set():
                msgs = await self._fetch(js, puller)
                if in_flight is not None:
                    await self._wait_keeping(in_flight, msgs)
                    in_flight = None
                if msgs:
                    in_flight = asyncio.create_task(self._handle_batch(js, msgs))
        finally:
            if in_flight is not None:
                await in_flight  # the batch in flight is finished and acked before exit

    async def _fetch(self, js: JetStreamContext, puller: consumer.BatchPuller) -> list[Msg]:
        try:
            return await puller.fetch(
                self.settings.aggregator_batch_size, self.settings.aggregator_max_wait_ms / 1000
            )
        except consumer.ConsumerGone:
            log.warning("consumer missing, creating it again")
            self._subscribed = False
            await self._ensure_consumer(js)
        except (nats.errors.Error, OSError) as exc:
            # Disconnected or reconnecting: the client reconnects by itself.
            log.warning("fetch failed", extra={"error": repr(exc)})
            await self._sleep_unless_stopped(0.5)
        return []

    async def _wait_keeping(self, task: asyncio.Task[None], msgs: list[Msg]) -> None:
        """Wait for the batch in flight; meanwhile keep the next batch from being redelivered
        (a write retried for minutes would otherwise outlast its ack wait)."""
        if not msgs:
            await task
            return
        keepalive = asyncio.create_task(self._keep_in_progress(msgs))
        try:
            await task
        finally:
            keepalive.cancel()

    # -- one batch -----------------------------------------------------------------------------
    async def _handle_batch(self, js: JetStreamContext, msgs: list[Msg]) -> None:
        self.metrics.batch_size.observe(len(msgs))
        self.metrics.pending.set(msgs[-1].metadata.num_pending)
        valid: list[tuple[Msg, Event]] = []
        rejected: list[tuple[Msg, Rejected]] = []
        for msg in msgs:
            outcome = decode(msg.subject, msg.data)
            if isinstance(outcome, Rejected):
                rejected.append((msg, outcome))
            else:
                valid.append((msg, outcome))
        self._count_kinds(valid, len(rejected))
        await self._dead_letter_all(js, rejected)
        if not valid:
            return
        events, check = self._unique_events(valid)
        result = await self._write_with_retry(events, check, [m for m, _ in valid])
        if result is None:  # stopping while ClickHouse is down: hand the batch back
            await _settle(m.nak() for m, _ in valid)
            return
        if self._fault_armed and result.rows:
            # Test-only (CT_AGGREGATOR_FAULT=exit_after_insert): die between insert and ack.
            log.error("fault injection: exiting after insert, before ack")
            os._exit(FAULT_EXIT_CODE)
        await self._finish(js, valid, result)

    def _count_kinds(self, valid: Sequence[tuple[Msg, Event]], invalid: int) -> None:
        answers = sum(1 for _, e in valid if isinstance(e, AnswerEvent))
        self.metrics.messages.labels("answer").inc(answers)
        self.metrics.messages.labels("survey").inc(len(valid) - answers)
        self.metrics.messages.labels("invalid").inc(invalid)

    def _unique_events(
        self, valid: Sequence[tuple[Msg, Event]]
    ) -> tuple[list[Event], set[Key] | None]:
        """Events with unique keys, and which keys must be looked up in ClickHouse first."""
        seen: set[Key] = set()
        events: list[Event] = []
        redelivered: set[Key] = set()
        for msg, event in valid:
            key = event_key(event)
            if key in seen:
                continue
            seen.add(key)
            events.append(event)
            if consumer.delivery_count(msg) > 1:
                redelivered.add(key)
        if dropped := len(valid) - len(events):
            self.metrics.duplicates.labels("batch").inc(dropped)
        return events, None if self._check_all else redelivered

    async def _write_with_retry(
        self, events: list[Event], check: set[Key] | None, msgs: list[Msg]
    ) -> WriteResult | None:
        """Write until ClickHouse accepts; ``None`` when asked to stop before it did."""
        assert self._loop is not None
        delay = BACKOFF_START_S
        attempt = 0
        keepalive = asyncio.create_task(self._keep_in_progress(msgs))
        try:
            while True:
                started = time.perf_counter()
                try:
                    result = await self._loop.run_in_executor(
                        self._executor, self.writer.write, events, check
                    )
                except Exception as exc:  # any failure: the batch stays unacked and is retried
                    self.metrics.insert_errors.inc()
                    self._clickhouse_changed(False, _short(exc))
                    log.warning(
                        "clickhouse write failed, retrying",
                        extra={"attempt": attempt + 1, "retry_in_s": round(delay, 2),
                               "events": len(events), "error": _short(exc)},
                    )  # fmt: skip
                    if await self._sleep_unless_stopped(delay * random.uniform(0.5, 1.0)):
                        return None
                    attempt += 1
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    check = None  # the failed try may have reached the server: check everything
                    continue
                self.metrics.insert_seconds.observe(time.perf_counter() - started)
                self._clickhouse_changed(True)
                if attempt:
                    log.info(
                        "clickhouse write succeeded after retries", extra={"attempts": attempt + 1}
                    )
                return result
        finally:
            keepalive.cancel()

    async def _finish(
        self, js: JetStreamContext, valid: list[tuple[Msg, Event]], result: WriteResult
    ) -> None:
        """Metrics, dead letters for rows ClickHouse refused, then the acks."""
        for table, rows in result.inserted.items():
            self.metrics.rows.labels(table).inc(rows)
        if result.already_stored:
            self.metrics.duplicates.labels("stored").inc(len(result.already_stored))
            log.info("skipped events already stored", extra={"count": len(result.already_stored)})
        refused = [(m, Rejected("rejected_by_clickhouse", result.rejected[event_key(e)]))
                   for m, e in valid if event_key(e) in result.rejected]  # fmt: skip
        await self._dead_letter_all(js, refused)
        refused_msgs = {id(m) for m, _ in refused}
        await _settle(m.ack() for m, _ in valid if id(m) not in refused_msgs)
        self.metrics.batches.inc()
        log.debug(
            "batch stored",
            extra={
                "messages": len(valid),
                "rows": result.rows,
                "skipped": len(result.already_stored),
            },
        )

    async def _dead_letter_all(
        self, js: JetStreamContext, rejected: Sequence[tuple[Msg, Rejected]]
    ) -> None:
        """Publish each dead letter and ack its message; a failed publish leaves it unacked."""
        if not rejected:
            return
        outcomes = await asyncio.gather(
            *(consumer.dead_letter(js, m, r.reason) for m, r in rejected), return_exceptions=True
        )
        for (msg, why), outcome in zip(rejected, outcomes, strict=True):
            meta = msg.metadata
            ids = {"subject": msg.subject, "stream_seq": meta.sequence.stream}
            if isinstance(outcome, BaseException):
                log.error("dead letter not stored; message will be redelivered",
                          extra={**ids, "error": _short(outcome)})  # fmt: skip
                continue
            await _settle([msg.ack()])  # an ack lost here only means another dead letter try
            self.metrics.dead_letters.labels(why.kind).inc()
            log.warning("dead-lettered message", extra={**ids, "reason": why.reason})

    async def _keep_in_progress(self, msgs: list[Msg]) -> None:
        """While a write is slow or retried, tell JetStream not to redeliver these messages."""
        period = max(1.0, self.settings.aggregator_ack_wait_s / 3)
        while True:
            await asyncio.sleep(period)
            try:
                for msg in msgs:
                    await msg.in_progress()
            except nats.errors.Error as exc:
                log.debug("in-progress signal failed", extra={"error": repr(exc)})

    # -- start-up, watchers, shutdown ----------------------------------------------------------
    async def _connect(self) -> NATS | None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                return await consumer.connect(self.settings, self._nats_changed)
            except (nats.errors.Error, OSError) as exc:
                log.warning("nats not reachable, retrying", extra={"error": repr(exc)})
            await self._sleep_unless_stopped(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
        return None

    async def _ensure_consumer(self, js: JetStreamContext) -> bool:
        """Create/update the durable consumer, retrying; False when stopped before it worked."""
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                await consumer.ensure_consumer(js, self.settings)
                self._subscribed = True
                log.info("consumer ready", extra={"durable": self.settings.aggregator_durable})
                return True
            except NotFoundError:
                log.error("stream CT_EVENTS not found: run `convtrack migrate`; retrying")
            except (APIError, nats.errors.Error, OSError) as exc:
                log.warning("binding the consumer failed, retrying", extra={"error": repr(exc)})
            await self._sleep_unless_stopped(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
        return False

    async def _watch_lag(self, js: JetStreamContext) -> None:
        while True:
            try:
                pending, ack_pending = await consumer.consumer_lag(
                    js, self.settings.aggregator_durable
                )
                self.metrics.pending.set(pending)
                self.metrics.ack_pending.set(ack_pending)
            except (nats.errors.Error, OSError) as exc:
                log.debug("consumer info failed", extra={"error": repr(exc)})
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _watch_clickhouse(self) -> None:
        """Keep /readyz truthful while idle: no batch means no write to learn from."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if time.monotonic() - self._clickhouse_last_ok >= WATCH_INTERVAL_S:
                await self._probe_clickhouse()

    async def _probe_clickhouse(self) -> None:
        assert self._loop is not None
        try:
            await self._loop.run_in_executor(self._executor, self.writer.ping)
        except Exception as exc:
            self._clickhouse_changed(False, _short(exc))
        else:
            self._clickhouse_changed(True)

    async def _sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep; True when stop was requested (then it returns early)."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _close(self, nc: NATS) -> None:
        try:
            await nc.flush(timeout=5)  # the last acks must reach the server before we go
        except (nats.errors.Error, OSError) as exc:
            log.warning(
                "final flush failed; unflushed acks mean redeliveries", extra={"error": repr(exc)}
            )
        await nc.close()


async def _settle(coros: Iterable[Awaitable[None]]) -> None:
    """Await acks/naks; a failure only means a redelivery, which dedup absorbs."""
    for coro in coros:
        try:
            await coro
        except nats.errors.Error as exc:
            log.debug("ack/nak failed", extra={"error": repr(exc)})


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]
