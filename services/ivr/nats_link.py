"""One nats-py connection, owned by the loop thread: connects (forever, with backoff), reconnects
by itself, and tells the configuration watch to restart after every (re)connect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from .metrics import IvrMetrics

log = logging.getLogger(__name__)

OnConnect = Callable[[JetStreamContext], Coroutine[Any, Any, None]]


class NatsLink:
    def __init__(self, servers: list[str], metrics: IvrMetrics, on_connect: OnConnect) -> None:
        self._servers = servers
        self._metrics = metrics
        self._on_connect = on_connect
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._last_error_log = 0.0
        self._restart: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect(), name="nats-connect")
        self._connecting.add_done_callback(self._log_connect_failure)

    @staticmethod
    def _log_connect_failure(task: asyncio.Task[None]) -> None:
        # Connection failures are retried inside nats.connect; anything that escapes it (a bad
        # option, a bug in on_connect) would otherwise leave the IVR disconnected silently.
        if not task.cancelled() and task.exception() is not None:
            log.error("NATS connection task failed", exc_info=task.exception())

    async def _connect(self) -> None:
        self.nc = await nats.connect(
            servers=self._servers,
            name="convtrack-ivr",
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,  # also retries the first connect forever
            ping_interval=5,
            max_outstanding_pings=2,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        self.js = self.nc.jetstream()
        self._metrics.nats_connected.set(1)
        log.info("connected to NATS", extra={"servers": ",".join(self._servers)})
        await self._on_connect(self.js)

    async def _error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 5:  # NATS away means one error per reconnect attempt
            self._last_error_log = now
            log.warning("NATS error", extra={"error": repr(exc)[:200]})

    async def _disconnected(self) -> None:
        self._metrics.nats_connected.set(0)
        if self.nc is not None and not self._closing:  # (fires on every failed first connect)
            log.warning("disconnected from NATS; serving from the last configuration")

    async def _reconnected(self) -> None:
        self._metrics.nats_connected.set(1)
        log.info("reconnected to NATS")
        if self.js is not None:
            # A task, so nats-py's reconnect flow never waits for the watches to restart.
            self._restart = asyncio.create_task(self._on_connect(self.js), name="nats-on-connect")

    async def close(self) -> None:
        self._closing = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), 3)
            except Exception as exc:
                log.debug("NATS close: %r", exc)
