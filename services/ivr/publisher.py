"""Publishing answer and survey events to JetStream without ever blocking a survey.

Greenlets call :meth:`EventPublisher.submit`, which only appends to a bounded in-memory buffer
and pokes the loop thread. A worker in the loop thread publishes in batches and drops an event
from the buffer only when JetStream acknowledged it (a duplicate ack counts: an earlier try had
landed). While NATS is away nothing is sent; events wait, and failed publishes go back to the
front of the buffer and are retried with backoff. ``Nats-Msg-Id`` (answer id / survey id) makes
a retry that did land the first time harmless (design §6).

The buffer is bounded (``CT_IVR_BUFFER_SIZE``). When it is full the new event is dropped, counted
(``ct_ivr_buffer_overflow_total``) and logged with its ids, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

from shared.events import AnswerEvent, SurveyEvent
from shared.publish import publish_event

from .loop_thread import LoopThread
from .metrics import IvrMetrics
from .nats_link import NatsLink

log = logging.getLogger(__name__)

Event = AnswerEvent | SurveyEvent

BATCH = 256  # publishes in flight at once
PUBLISH_TIMEOUT_S = 3.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0


def _ids(event: Event) -> dict[str, str]:
    ids = {"call_uuid": event.call_uuid, "survey_id": event.survey_id}
    if isinstance(event, AnswerEvent):
        ids["answer_id"] = event.answer_id
    return ids


class EventPublisher:
    def __init__(
        self, loop: LoopThread, link: NatsLink, metrics: IvrMetrics, capacity: int
    ) -> None:
        self._loop = loop
        self._link = link
        self._metrics = metrics
        self._capacity = capacity
        self._pending: deque[Event] = deque()  # appended by greenlets, drained by the loop
        self._inflight = 0
        self._lock = threading.Lock()  # guards the capacity check against the two threads
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._woken = False

    # -- greenlet side ------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._pending) + self._inflight

    def submit(self, event: Event) -> bool:
        """Hand an event over; never blocks. False (counted, logged) when the buffer is full."""
        with self._lock:
            if self.depth >= self._capacity:
                self._metrics.buffer_overflow.inc()
                log.error(
                    "publish buffer full; event dropped",
                    extra={"capacity": self._capacity, "kind": type(event).__name__, **_ids(event)},
                )
                return False
            self._pending.append(event)
            self._metrics.buffer_depth.set(self.depth)
            poke = not self._woken
            self._woken = True
        if poke:  # one thread-safe wake-up per batch, not per event
            self._loop.call_soon(self._set_wake)
        return True

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- loop side ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="publisher")

    async def _run(self) -> None:
        assert self._wake is not None
        backoff = BACKOFF_MIN_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                self._woken = False
            while self._pending:
                if not self._link.connected or self._link.js is None:
                    await asyncio.sleep(0.05)  # wait for the reconnect; events stay buffered
                    continue
                try:
                    failed = await self._publish_batch()
                except Exception:  # a bug must not stop delivery for good
                    log.exception("publish batch failed; retrying")
                    failed = 1
                if failed:
                    self._metrics.publish_retries.inc(failed)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                else:
                    backoff = BACKOFF_MIN_S

    async def _publish_batch(self) -> int:
        batch: list[Event] = []
        with self._lock:
            while self._pending and len(batch) < BATCH:
                batch.append(self._pending.popleft())
            self._inflight += len(batch)
        results = [False] * len(batch)
        try:
            results = await asyncio.gather(*(self._publish(e) for e in batch))
        finally:  # also when cancelled at shutdown: what was not acknowledged stays buffered
            failed = [e for e, ok in zip(batch, results, strict=True) if not ok]
            with self._lock:
                self._pending.extendleft(reversed(failed))  # back to the front, order kept
                self._inflight -= len(batch)
                self._metrics.buffer_depth.set(self.depth)
        return len(failed)

    async def _publish(self, event: Event) -> bool:
        js = self._link.js
        if js is None:
            return False
        try:
            ack = await publish_event(js, event, timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:
            log.debug("publish failed, will retry: %r", exc, extra=_ids(event))
            return False
        if ack.duplicate:
            self._metrics.duplicates.inc()
        kind = "answer" if isinstance(event, AnswerEvent) else "survey"
        self._metrics.published.labels(kind).inc()
        return True

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # -- shutdown (any thread) ----------------------------------------------------------------
    def wait_empty(self, timeout: float, sleep: object = time.sleep) -> bool:
        """Poll until every event is acknowledged or ``timeout`` passes; True when empty.

        ``sleep`` is ``gevent.sleep`` when called from a greenlet, so the hub keeps running.
        """
        deadline = time.monotonic() + timeout
        while self.depth and time.monotonic() < deadline:
            sleep(0.05)  # type: ignore[operator]
        return self.depth == 0
