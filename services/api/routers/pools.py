"""``/v1/pools``: named sets of tracking numbers, and the profile a pool's calls get."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from services.api.dependencies import IfMatch, Reader, StoresDep, Writer, check_if_match, set_etag
from services.api.kv_store import StaleRevision, Versioned
from services.api.models import PoolList, PoolOut, ProfileRef
from services.api.problems import NotFound, PreconditionFailed, Unprocessable, responses
from services.api.stores import Stores
from shared.domain import NumberPool, StoredPool
from shared.ids import OBJECT_ID_RE, new_id
from shared.nats_names import kv_key

router = APIRouter(prefix="/v1/pools", tags=["pools"])
PoolId = Annotated[str, Path(pattern=OBJECT_ID_RE.pattern, description="pool id")]


def _out(value: StoredPool, revision: int) -> PoolOut:
    return PoolOut(**value.model_dump(), version=revision)


async def _get(s: Stores, tenant_id: str, pool_id: str) -> Versioned[StoredPool]:
    found = await s.pools.get(kv_key(tenant_id, pool_id))
    if found is None:
        raise NotFound(f"no pool {pool_id}", field="pool_id", location="path")
    return found


async def _check_profile(s: Stores, tenant_id: str, profile_id: str | None) -> None:
    if profile_id is not None and await s.profiles.get(kv_key(tenant_id, profile_id)) is None:
        raise Unprocessable(f"no profile {profile_id}", field="profile_id")


async def _replace(
    s: Stores,
    tenant_id: str,
    pool_id: str,
    expected: int | None,
    response: Response,
    new_body: Callable[[StoredPool], NumberPool],
) -> PoolOut:
    """Check If-Match and the profile, claim new numbers, write the pool (compare-and-set),
    then free the removed numbers. ``new_body`` makes the new pool from the current one."""
    current = await _get(s, tenant_id, pool_id)
    check_if_match(expected, current.revision)
    old = current.value
    body = new_body(old)
    await _check_profile(s, tenant_id, body.profile_id)
    old_numbers, new_numbers = set(old.numbers), set(body.numbers)
    added = [n for n in body.numbers if n not in old_numbers]
    removed = [n for n in old.numbers if n not in new_numbers]
    stored = StoredPool(
        **body.model_dump(),
        id=old.id,
        tenant_id=tenant_id,
        created_at=old.created_at,
        updated_at=datetime.now(UTC),
    )
    await s.claims.claim_for_pool(tenant_id, old.id, added)
    try:
        revision = await s.pools.update(kv_key(tenant_id, old.id), stored, current.revision)
    except BaseException as exc:
        await s.claims.release_from_pool(tenant_id, old.id, added)
        if isinstance(exc, StaleRevision):
            raise PreconditionFailed("the pool changed meanwhile; read it again") from None
        raise
    await s.claims.release_from_pool(tenant_id, old.id, removed)
    set_etag(response, revision)
    return _out(stored, revision)


@router.get("", response_model=PoolList, responses=responses(401, 503))
async def list_pools(who: Reader, s: StoresDep) -> PoolList:
    found = await s.pools.list(f"{who.tenant_id}.*")
    items = [_out(v.value, v.revision) for _, v in found]
    return PoolList(items=sorted(items, key=lambda p: (p.created_at, p.id)))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PoolOut,
    responses=responses(401, 403, 409, 422, 503),
    description="A number may belong to one pool of one tenant; "
    "a number held elsewhere is a 409 `number ... is in use`.",
)
async def create_pool(body: NumberPool, who: Writer, s: StoresDep, response: Response) -> PoolOut:
    await _check_profile(s, who.tenant_id, body.profile_id)
    now = datetime.now(UTC)
    stored = StoredPool(
        **body.model_dump(), id=new_id(), tenant_id=who.tenant_id, created_at=now, updated_at=now
    )
    await s.claims.claim_for_pool(who.tenant_id, stored.id, list(stored.numbers))
    try:
        revision = await s.pools.create(kv_key(who.tenant_id, stored.id), stored)
    except BaseException:
        await s.claims.release_from_pool(who.tenant_id, stored.id, list(stored.numbers))
        raise
    response.headers["Location"] = f"/v1/pools/{stored.id}"
    set_etag(response, revision)
    return _out(stored, revision)


@router.get("/{pool_id}", response_model=PoolOut, responses=responses(401, 404, 422, 503))
async def get_pool(pool_id: PoolId, who: Reader, s: StoresDep, response: Response) -> PoolOut:
    found = await _get(s, who.tenant_id, pool_id)
    set_etag(response, found.revision)
    return _out(found.value, found.revision)


@router.put(
    "/{pool_id}",
    response_model=PoolOut,
    responses=responses(401, 403, 404, 409, 412, 422, 503),
)
async def replace_pool(
    pool_id: PoolId,
    body: NumberPool,
    who: Writer,
    s: StoresDep,
    expected: IfMatch,
    response: Response,
) -> PoolOut:
    return await _replace(s, who.tenant_id, pool_id, expected, response, lambda _: body)


@router.delete(
    "/{pool_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422, 503),
)
async def delete_pool(pool_id: PoolId, who: Writer, s: StoresDep, expected: IfMatch) -> Response:
    current = await _get(s, who.tenant_id, pool_id)
    check_if_match(expected, current.revision)
    try:
        await s.pools.delete(kv_key(who.tenant_id, pool_id), current.revision)
    except StaleRevision:
        raise PreconditionFailed("the pool changed meanwhile; read it again") from None
    await s.claims.release_from_pool(who.tenant_id, pool_id, list(current.value.numbers))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{pool_id}/profile",
    response_model=PoolOut,
    responses=responses(401, 403, 404, 412, 422, 503),
    description="Assign a profile to every number of the pool (a number's own assignment wins); "
    '`{"profile_id": null}` unassigns.',
)
async def assign_pool_profile(
    pool_id: PoolId,
    body: ProfileRef,
    who: Writer,
    s: StoresDep,
    expected: IfMatch,
    response: Response,
) -> PoolOut:
    return await _replace(
        s,
        who.tenant_id,
        pool_id,
        expected,
        response,
        lambda old: NumberPool(name=old.name, numbers=old.numbers, profile_id=body.profile_id),
    )
