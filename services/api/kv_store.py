"""A typed repository over one NATS KV bucket: JSON values, the KV revision as version.

Writes are compare-and-set on the revision the caller read (or named in ``If-Match``), so two
clients editing the same object never silently overwrite each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

import nats.errors
from nats.js import errors as js_errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel

from services.api.problems import Unavailable

M = TypeVar("M", bound=BaseModel)

# JetStream API error codes for "expected last sequence does not match".
_WRONG_LAST_SEQUENCE = (10071, 10164)


class StaleRevision(Exception):
    """The object changed since the revision the writer expected."""


class AlreadyExists(Exception):
    pass


@dataclass(frozen=True)
class Versioned(Generic[M]):
    value: M
    revision: int


def unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"NATS is unavailable ({type(exc).__name__}); retry shortly")


# Errors that mean "NATS did not answer", as opposed to an answer we can act on.
NATS_DOWN = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.OutboundBufferLimitError,
    asyncio.TimeoutError,
)


class KvRepository(Generic[M]):
    def __init__(self, kv: KeyValue, model: type[M]) -> None:
        self._kv = kv
        self._model = model

    def _decode(self, raw: bytes | None) -> M:
        return self._model.model_validate_json(raw or b"")

    async def get(self, key: str) -> Versioned[M] | None:
        try:
            entry = await self._kv.get(key)
        except js_errors.KeyNotFoundError:
            return None
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        assert entry.revision is not None
        return Versioned(self._decode(entry.value), entry.revision)

    async def get_revision(self, key: str, revision: int) -> M | None:
        """An older revision of ``key`` (still in the bucket's history), or None."""
        try:
            entry = await self._kv.get(key, revision=revision)
        except (js_errors.KeyNotFoundError, js_errors.NotFoundError):
            return None
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        if not entry.value:
            return None
        return self._decode(entry.value)

    async def list(self, pattern: str) -> list[tuple[str, Versioned[M]]]:
        """Every live key matching a subject pattern (``tenant.*``), with value and revision."""
        try:
            watcher = await self._kv.watch(pattern)
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        out: list[tuple[str, Versioned[M]]] = []
        try:
            while True:
                entry = await watcher.updates(timeout=5.0)
                if entry is None:  # end of the initial values
                    break
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    continue
                assert entry.revision is not None
                out.append((entry.key, Versioned(self._decode(entry.value), entry.revision)))
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        finally:
            await watcher.stop()
        return out

    async def create(self, key: str, value: M) -> int:
        try:
            return await self._kv.create(key, value.model_dump_json().encode())
        except js_errors.KeyWrongLastSequenceError as exc:
            raise AlreadyExists(key) from exc
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc

    async def update(self, key: str, value: M, expected: int) -> int:
        try:
            return await self._kv.update(key, value.model_dump_json().encode(), last=expected)
        except js_errors.KeyWrongLastSequenceError as exc:
            raise StaleRevision(key) from exc
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc

    async def put(self, key: str, value: M) -> int:
        try:
            return await self._kv.put(key, value.model_dump_json().encode())
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc

    async def delete(self, key: str, expected: int) -> None:
        try:
            await self._kv.delete(key, last=expected)
        except js_errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise StaleRevision(key) from exc
            raise
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc

    async def purge(self, key: str) -> None:
        try:
            await self._kv.purge(key)
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
