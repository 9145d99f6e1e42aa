"""Every NATS-backed store the API uses, opened once per process from one connection."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError

from services.api.claims import Claims, NumberClaim
from services.api.kv_store import KvRepository
from services.api.prompt_store import PromptStore
from shared import nats_names as names
from shared.domain import StoredAssignment, StoredCodeMap, StoredPool, StoredProfile


class MissingBuckets(RuntimeError):
    pass


@dataclass
class Stores:
    nc: NATS
    code_maps: KvRepository[StoredCodeMap]
    profiles: KvRepository[StoredProfile]
    profile_versions: KvRepository[StoredProfile]
    pools: KvRepository[StoredPool]
    numbers: KvRepository[StoredAssignment]
    claims: Claims
    prompts: PromptStore

    async def number_is_held(self, tenant_id: str, number: str, claim: NumberClaim) -> bool:
        """Whether ``claim`` is still backed by a pool listing the number or an assignment."""
        if claim.pool_id is not None:
            pool = await self.pools.get(names.kv_key(tenant_id, claim.pool_id))
            if pool is not None and number in pool.value.numbers:
                return True
        if claim.assigned:
            own = await self.numbers.get(names.number_key(tenant_id, number))
            if own is not None:
                return True
        return False


async def _api_only_bucket(js: JetStreamContext, bucket: str) -> None:
    """Buckets only the API uses are created here too, so an older bootstrap still works."""
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:
        await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))


async def open_stores(nc: NATS) -> Stores:
    js = nc.jetstream()
    for bucket in (names.KV_PROFILE_VERSIONS, names.KV_NUMBER_CLAIMS):
        await _api_only_bucket(js, bucket)
    try:
        kv = {b: await js.key_value(b) for b in names.KV_BUCKETS}
        prompts = await js.object_store(names.OBJECT_STORE_PROMPTS)
    except (BucketNotFoundError, NotFoundError) as exc:
        raise MissingBuckets(
            "NATS buckets are missing: run `convtrack migrate` (creates stream, KV, object store)"
        ) from exc
    stores = Stores(
        nc=nc,
        code_maps=KvRepository(kv[names.KV_CODE_MAPS], StoredCodeMap),
        profiles=KvRepository(kv[names.KV_PROFILES], StoredProfile),
        profile_versions=KvRepository(kv[names.KV_PROFILE_VERSIONS], StoredProfile),
        pools=KvRepository(kv[names.KV_POOLS], StoredPool),
        numbers=KvRepository(kv[names.KV_NUMBERS], StoredAssignment),
        claims=None,  # type: ignore[arg-type]  # set below: it needs the stores for liveness
        prompts=PromptStore(prompts),
    )
    stores.claims = Claims(
        KvRepository(kv[names.KV_NUMBER_CLAIMS], NumberClaim), stores.number_is_held
    )
    return stores
