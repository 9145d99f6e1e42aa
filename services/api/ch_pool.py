"""A small pool of ClickHouse connections used from worker threads.

clickhouse-driver connections are not thread-safe and chDB sessions must not run two queries at
once, so each query borrows one connection exclusively. A connection that failed is dropped and
the next borrower gets a fresh one, which is how the API recovers when ClickHouse comes back.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from anyio import to_thread

from services.api.problems import Unavailable
from shared.clickhouse.client import ClickHouse

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClickHousePool:
    def __init__(self, factory: Callable[[], ClickHouse], size: int = 8) -> None:
        self._factory = factory
        self._idle: queue.LifoQueue[ClickHouse] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[ClickHouse]:
        if not self._slots.acquire(timeout=30):
            raise Unavailable("all ClickHouse connections are busy; retry")
        ch: ClickHouse | None = None
        try:
            try:
                ch = self._idle.get_nowait()
            except queue.Empty:
                ch = self._factory()
            yield ch
        except (OSError, EOFError) as exc:
            self._discard(ch)
            ch = None
            raise Unavailable(f"ClickHouse is unavailable ({type(exc).__name__})") from exc
        except Exception as exc:
            if _is_network_error(exc):
                self._discard(ch)
                ch = None
                raise Unavailable(f"ClickHouse is unavailable ({type(exc).__name__})") from exc
            raise
        finally:
            if ch is not None:
                self._idle.put(ch)
            self._slots.release()

    def _discard(self, ch: ClickHouse | None) -> None:
        if ch is None:
            return
        try:
            ch.close()
        except Exception:  # closing a broken connection may fail too; nothing to do about it
            log.debug("closing a failed ClickHouse connection failed", exc_info=True)

    async def run(self, fn: Callable[[ClickHouse], T]) -> T:
        """Run ``fn(connection)`` in a worker thread."""

        def call() -> T:
            with self.connection() as ch:
                return fn(ch)

        return await to_thread.run_sync(call)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _is_network_error(exc: Exception) -> bool:
    from clickhouse_driver import errors as ch_errors

    return isinstance(exc, (ch_errors.NetworkError, ch_errors.SocketTimeoutError))
