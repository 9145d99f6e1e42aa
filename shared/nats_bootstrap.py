"""Idempotent creation of the stream, KV buckets and object store (``convtrack migrate``)."""

from __future__ import annotations

import nats
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError

from shared import nats_names as names


def events_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=names.EVENTS_STREAM,
        subjects=names.EVENTS_SUBJECTS,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * 24 * 3600,  # replay window for recovery; ClickHouse is the system of record
        duplicate_window=names.DUPLICATE_WINDOW_S,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
    )


def deadletter_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=names.DEADLETTER_STREAM,
        subjects=[names.DEADLETTER_SUBJECT, f"{names.DEADLETTER_SUBJECT}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=30 * 24 * 3600,
        num_replicas=replicas,
    )


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def _ensure_kv(js: JetStreamContext, bucket: str, history: int, replicas: int) -> None:
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:
        await js.create_key_value(KeyValueConfig(bucket=bucket, history=history, replicas=replicas))


async def _ensure_object_store(js: JetStreamContext, bucket: str, replicas: int) -> None:
    try:
        await js.object_store(bucket)
    except (BucketNotFoundError, NotFoundError):
        await js.create_object_store(bucket, ObjectStoreConfig(replicas=replicas))


async def bootstrap(js: JetStreamContext, replicas: int = 1) -> None:
    await _ensure_stream(js, events_stream_config(replicas))
    await _ensure_stream(js, deadletter_stream_config(replicas))
    for bucket in names.KV_BUCKETS:
        history = names.KV_PROFILE_HISTORY if bucket == names.KV_PROFILES else 1
        await _ensure_kv(js, bucket, history, replicas)
    await _ensure_object_store(js, names.OBJECT_STORE_PROMPTS, replicas)


async def bootstrap_url(servers: list[str], replicas: int = 1) -> None:
    nc = await nats.connect(servers=servers, connect_timeout=5, max_reconnect_attempts=3)
    try:
        await bootstrap(nc.jetstream(), replicas)
    finally:
        await nc.close()
