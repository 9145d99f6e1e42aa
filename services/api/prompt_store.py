"""Prompt audio in the NATS object store ``ct_prompts`` (object ``<tenant>.<prompt_id>``).

The object's description holds the prompt's metadata as JSON, so one read answers
``GET /v1/prompts/{id}`` and the audio never has to be loaded for it. Audio is immutable per
prompt id (uploads get a fresh id, text prompts an id derived from text and language), which is
why a small in-process cache may serve ``/audio/...`` for FreeSWITCH.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Literal

from nats.js import errors as js_errors
from nats.js.api import ObjectMeta
from nats.js.object_store import ObjectStore
from pydantic import BaseModel, ValidationError

from services.api.kv_store import NATS_DOWN, unavailable
from shared.nats_names import kv_key, split_kv_key

CACHE_BYTES = 64 * 1024 * 1024


class PromptMeta(BaseModel):
    id: str
    tenant_id: str
    source: Literal["upload", "text"]
    text: str | None = None
    language: str | None = None
    filename: str | None = None
    encoding: Literal["pcm16", "alaw", "ulaw"]
    sample_rate: int
    duration_ms: int
    size: int
    created_at: datetime


class PromptStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0

    async def put(self, meta: PromptMeta, audio: bytes) -> None:
        name = kv_key(meta.tenant_id, meta.id)
        try:
            await self._store.put(
                name, audio, meta=ObjectMeta(name=name, description=meta.model_dump_json())
            )
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc

    async def info(self, tenant_id: str, prompt_id: str) -> PromptMeta | None:
        try:
            info = await self._store.get_info(kv_key(tenant_id, prompt_id))
        except js_errors.NotFoundError:
            return None
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        return _meta(info.description)

    async def exists(self, tenant_id: str, prompt_id: str) -> bool:
        return await self.info(tenant_id, prompt_id) is not None

    async def audio(self, tenant_id: str, prompt_id: str) -> bytes | None:
        name = kv_key(tenant_id, prompt_id)
        cached = self._cache.get(name)
        if cached is not None:
            self._cache.move_to_end(name)
            return cached
        try:
            result = await self._store.get(name)
        except js_errors.NotFoundError:
            return None
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        data = bytes(result.data or b"")
        self._remember(name, data)
        return data

    def _remember(self, name: str, data: bytes) -> None:
        self._cache[name] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > CACHE_BYTES and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)

    async def list(self, tenant_id: str) -> list[PromptMeta]:
        try:
            infos = await self._store.list(ignore_deletes=True)
        except js_errors.NotFoundError:  # an empty store
            return []
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc
        out = []
        for info in infos:
            tenant, _ = split_kv_key(info.name)
            meta = _meta(info.description) if tenant == tenant_id and not info.deleted else None
            if meta is not None:
                out.append(meta)
        return sorted(out, key=lambda m: (m.created_at, m.id))

    async def delete(self, tenant_id: str, prompt_id: str) -> None:
        name = kv_key(tenant_id, prompt_id)
        dropped = self._cache.pop(name, None)
        if dropped is not None:
            self._cached_bytes -= len(dropped)
        try:
            await self._store.delete(name)
        except js_errors.NotFoundError:
            return
        except NATS_DOWN as exc:
            raise unavailable(exc) from exc


def _meta(description: str | None) -> PromptMeta | None:
    try:
        return PromptMeta.model_validate_json(description or "")
    except ValidationError:
        return None  # an object not written by this API: not a prompt we can describe
