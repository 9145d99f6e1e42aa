"""In-memory index of the configuration in NATS KV, kept current by a watch.

The IVR never asks NATS during a call: a watch on ``ct_profiles``, ``ct_code_maps``, ``ct_pools``
and ``ct_numbers`` feeds this index (in the NATS loop thread) and the survey greenlets read it.
An edit is pushed by the watch within milliseconds, so it applies to the next call. While NATS
is away the index keeps the last known configuration; after a reconnect every watch restarts and
rebuilds its bucket from scratch (picking up deletes missed meanwhile), then swaps it in.

``profile_version`` is the KV revision of the profile entry (docs/CONTRACTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from shared import nats_names as names
from shared.domain import CodeInput, StoredAssignment, StoredCodeMap, StoredPool, StoredProfile
from shared.ids import normalize_number

from .metrics import IvrMetrics

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (tenant, id)


@dataclass(frozen=True, slots=True)
class KvItem:
    key: str
    value: bytes | None  # None = deleted
    revision: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the index knows about one tracking number."""

    number: str
    tenant_id: str | None = None
    pool_id: str = ""
    profile_id: str = ""
    profile: StoredProfile | None = None
    revision: int = 0
    code_maps: dict[str, StoredCodeMap] = field(default_factory=dict)
    code_map_revisions: tuple[tuple[str, int], ...] = ()


# The buckets the IVR reads (shared.nats_names.KV_BUCKETS also lists API-only ones).
IVR_BUCKETS = (names.KV_PROFILES, names.KV_CODE_MAPS, names.KV_POOLS, names.KV_NUMBERS)

_MODELS: dict[str, type[BaseModel]] = {
    names.KV_PROFILES: StoredProfile,
    names.KV_CODE_MAPS: StoredCodeMap,
    names.KV_POOLS: StoredPool,
    names.KV_NUMBERS: StoredAssignment,
}


class ConfigIndex:
    """Thread-safe: written by the NATS loop thread, read by survey greenlets (short locks)."""

    def __init__(self, metrics: IvrMetrics | None = None) -> None:
        self._lock = threading.Lock()
        self._metrics = metrics
        self._profiles: dict[Key, tuple[StoredProfile, int]] = {}
        self._code_maps: dict[Key, tuple[StoredCodeMap, int]] = {}
        self._pools: dict[Key, StoredPool] = {}
        self._pool_of: dict[str, Key] = {}  # e164 -> (tenant, pool id)
        self._assignments: dict[Key, StoredAssignment] = {}  # (tenant, digits) -> assignment
        self._assignment_of: dict[str, StoredAssignment] = {}  # e164 -> assignment
        self.loaded: set[str] = set()

    # -- writing (NATS loop thread) ----------------------------------------------------------
    def _decode(self, bucket: str, item: KvItem) -> Any | None:
        tenant, _, object_id = item.key.partition(".")
        if item.value is None:
            return None
        try:
            obj = _MODELS[bucket].model_validate_json(item.value)
        except ValidationError as exc:
            log.error(
                "unusable KV value ignored",
                extra={"bucket": bucket, "key": item.key, "error": str(exc)[:300]},
            )
            self._count_error()
            return None
        if getattr(obj, "tenant_id", tenant) != tenant or not object_id:
            log.error(
                "KV value's tenant does not match its key; ignored",
                extra={"bucket": bucket, "key": item.key},
            )
            self._count_error()
            return None
        return obj

    def _count_error(self) -> None:
        if self._metrics:
            self._metrics.config_errors.inc()

    def apply(self, bucket: str, item: KvItem) -> None:
        """One watch update (put or delete)."""
        obj = self._decode(bucket, item)
        if item.value is not None and obj is None:
            return  # invalid value: keep what we had
        key = _split(item.key)
        with self._lock:
            self._set(bucket, key, obj, item.revision)
        if self._metrics:
            self._metrics.config_updates.labels(bucket).inc()

    def replace(self, bucket: str, items: Iterable[KvItem]) -> None:
        """A bucket's full content after a (re)started watch; swapped in under one lock."""
        decoded = [(_split(i.key), self._decode(bucket, i), i.revision) for i in items]
        with self._lock:
            self._clear(bucket)
            for key, obj, rev in decoded:
                if obj is not None:
                    self._set(bucket, key, obj, rev)
            self.loaded.add(bucket)
        log.info("configuration loaded", extra={"bucket": bucket, "entries": len(decoded)})

    def _clear(self, bucket: str) -> None:
        if bucket == names.KV_PROFILES:
            self._profiles.clear()
        elif bucket == names.KV_CODE_MAPS:
            self._code_maps.clear()
        elif bucket == names.KV_POOLS:
            self._pools.clear()
            self._pool_of.clear()
        elif bucket == names.KV_NUMBERS:
            self._assignments.clear()
            self._assignment_of.clear()

    def _set(self, bucket: str, key: Key, obj: Any | None, revision: int) -> None:
        if bucket == names.KV_PROFILES:
            _put(self._profiles, key, (obj, revision) if obj is not None else None)
        elif bucket == names.KV_CODE_MAPS:
            _put(self._code_maps, key, (obj, revision) if obj is not None else None)
        elif bucket == names.KV_POOLS:
            self._set_pool(key, obj)
        elif bucket == names.KV_NUMBERS:
            self._set_assignment(key, obj)

    def _set_pool(self, key: Key, pool: StoredPool | None) -> None:
        old = self._pools.pop(key, None)
        if old is not None:
            for number in old.numbers:
                if self._pool_of.get(number) == key:
                    del self._pool_of[number]
        if pool is None:
            return
        self._pools[key] = pool
        for number in pool.numbers:
            other = self._pool_of.get(number)
            if other is not None and other != key:
                log.warning(
                    "number in two pools; the later one wins",
                    extra={"number": number, "pool": key[1], "other_pool": other[1]},
                )
            self._pool_of[number] = key

    def _set_assignment(self, key: Key, assignment: StoredAssignment | None) -> None:
        old = self._assignments.pop(key, None)
        if old is not None and self._assignment_of.get(old.number) is old:
            del self._assignment_of[old.number]
        if assignment is None:
            return
        self._assignments[key] = assignment
        self._assignment_of[assignment.number] = assignment

    # -- reading (survey greenlets) ----------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.loaded.issuperset(IVR_BUCKETS)

    def resolve(self, raw_number: str) -> Resolution:
        number = normalize_number(raw_number)
        with self._lock:
            assignment = self._assignment_of.get(number)
            pool_key = self._pool_of.get(number)
            pool = self._pools.get(pool_key) if pool_key else None
            if assignment is not None:
                tenant, profile_id = assignment.tenant_id, assignment.profile_id
            elif pool is not None:
                tenant, profile_id = pool.tenant_id, pool.profile_id or ""
            else:
                return Resolution(number)
            pool_id = pool.id if pool is not None and pool.tenant_id == tenant else ""
            found = self._profiles.get((tenant, profile_id)) if profile_id else None
            if found is None:
                return Resolution(number, tenant, pool_id, profile_id)
            profile, revision = found
            code_maps: dict[str, StoredCodeMap] = {}
            revisions: list[tuple[str, int]] = []
            for criterion in profile.criteria:
                inp = criterion.input
                if isinstance(inp, CodeInput) and inp.code_map_id:
                    cm = self._code_maps.get((tenant, inp.code_map_id))
                    if cm is not None:
                        code_maps[inp.code_map_id] = cm[0]
                        revisions.append((inp.code_map_id, cm[1]))
        return Resolution(
            number, tenant, pool_id, profile_id, profile, revision, code_maps, tuple(revisions)
        )


def _split(key: str) -> Key:
    tenant, _, rest = key.partition(".")
    return tenant, rest


def _put(d: dict[Key, Any], key: Key, value: Any | None) -> None:
    if value is None:
        d.pop(key, None)
    else:
        d[key] = value


class ConfigWatcher:
    """Runs in the NATS loop thread: one watch task per bucket, restarted on every reconnect."""

    def __init__(self, index: ConfigIndex, retry_s: float = 1.0) -> None:
        self._index = index
        self._retry_s = retry_s
        self._tasks: list[asyncio.Task[None]] = []

    async def restart(self, js: Any) -> None:
        await self.stop()
        self._tasks = [
            asyncio.create_task(self._watch(js, bucket), name=f"kv-watch-{bucket}")
            for bucket in IVR_BUCKETS
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _watch(self, js: Any, bucket: str) -> None:
        while True:
            watcher = None
            try:
                kv = await js.key_value(bucket)
                watcher = await kv.watchall()
                initial: list[KvItem] = []
                async for entry in watcher:
                    if entry is None:  # end of the initial values
                        break
                    if entry.operation is None:
                        initial.append(KvItem(entry.key, entry.value, entry.revision))
                self._index.replace(bucket, initial)
                async for entry in watcher:
                    if entry is None:
                        continue
                    value = entry.value if entry.operation is None else None
                    self._index.apply(bucket, KvItem(entry.key, value, entry.revision))
            except asyncio.CancelledError:
                if watcher is not None:
                    await _quiet_stop(watcher)
                raise
            except Exception as exc:  # bucket missing, NATS away: keep the last index, retry
                log.warning(
                    "KV watch failed; retrying", extra={"bucket": bucket, "error": repr(exc)[:200]}
                )
                if watcher is not None:
                    await _quiet_stop(watcher)
                await asyncio.sleep(self._retry_s)


async def _quiet_stop(watcher: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(watcher.stop(), 1.0)
