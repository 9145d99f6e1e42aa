"""``/v1/numbers``: a tracking number's own profile assignment and how a call is resolved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from services.api.dependencies import IfMatch, Reader, StoresDep, Writer, check_if_match, set_etag
from services.api.kv_store import AlreadyExists, StaleRevision
from services.api.models import AssignmentIn, AssignmentOut, NumberList, NumberOut
from services.api.problems import NotFound, PreconditionFailed, Unprocessable, responses
from services.api.stores import Stores
from shared.domain import StoredAssignment, StoredPool
from shared.ids import E164_RE
from shared.nats_names import kv_key, number_key

router = APIRouter(prefix="/v1/numbers", tags=["numbers"])
Number = Annotated[
    str,
    Path(pattern=E164_RE.pattern, description="E.164 tracking number, e.g. +4930123456"),
]


def _resolve(
    number: str, own: StoredAssignment | None, own_revision: int | None, pool: StoredPool | None
) -> NumberOut:
    pool_profile = pool.profile_id if pool else None
    if own is not None:
        profile_id, source = own.profile_id, "number"
    elif pool_profile is not None:
        profile_id, source = pool_profile, "pool"
    else:
        profile_id, source = None, None
    return NumberOut(
        number=number,
        profile_id=profile_id,
        source=source,
        assigned_profile_id=own.profile_id if own else None,
        assignment_version=own_revision,
        pool_id=pool.id if pool else None,
        pool_profile_id=pool_profile,
    )


async def _number(s: Stores, tenant_id: str, number: str) -> NumberOut:
    own = await s.numbers.get(number_key(tenant_id, number))
    claim = await s.claims.get(number)
    pool = None
    if claim is not None and claim.tenant_id == tenant_id and claim.pool_id is not None:
        found = await s.pools.get(kv_key(tenant_id, claim.pool_id))
        if found is not None and number in found.value.numbers:
            pool = found.value
    if own is None and pool is None:
        raise NotFound(f"number {number} is not one of yours", field="e164", location="path")
    return _resolve(number, own.value if own else None, own.revision if own else None, pool)


@router.get("", response_model=NumberList, responses=responses(401, 503))
async def list_numbers(who: Reader, s: StoresDep) -> NumberList:
    own = {v.value.number: v for _, v in await s.numbers.list(f"{who.tenant_id}.*")}
    in_pool = {
        n: v.value for _, v in await s.pools.list(f"{who.tenant_id}.*") for n in v.value.numbers
    }
    items = []
    for number in sorted(set(own) | set(in_pool)):
        mine = own.get(number)
        items.append(
            _resolve(
                number,
                mine.value if mine else None,
                mine.revision if mine else None,
                in_pool.get(number),
            )
        )
    return NumberList(items=items)


@router.get(
    "/{e164}",
    response_model=NumberOut,
    responses=responses(401, 404, 422, 503),
    description="The profile a call to this number gets: its own assignment, else its pool's.",
)
async def get_number(e164: Number, who: Reader, s: StoresDep) -> NumberOut:
    return await _number(s, who.tenant_id, e164)


@router.put(
    "/{e164}/profile",
    response_model=AssignmentOut,
    responses=responses(401, 403, 409, 412, 422, 503),
    description="Assign a profile to this number; it wins over the number's pool. "
    "A number another tenant holds is a 409 `number ... is in use`.",
)
async def assign_number(
    e164: Number,
    body: AssignmentIn,
    who: Writer,
    s: StoresDep,
    expected: IfMatch,
    response: Response,
) -> AssignmentOut:
    if await s.profiles.get(kv_key(who.tenant_id, body.profile_id)) is None:
        raise Unprocessable(f"no profile {body.profile_id}", field="profile_id")
    key = number_key(who.tenant_id, e164)
    current = await s.numbers.get(key)
    if current is None and expected is not None:
        raise PreconditionFailed("the number has no assignment to match If-Match against")
    if current is not None:
        check_if_match(expected, current.revision)
    await s.claims.claim_for_assignment(who.tenant_id, e164)
    stored = StoredAssignment(
        profile_id=body.profile_id,
        tenant_id=who.tenant_id,
        number=e164,
        updated_at=datetime.now(UTC),
    )
    try:
        if current is None:
            revision = await s.numbers.create(key, stored)
        else:
            revision = await s.numbers.update(key, stored, current.revision)
    except (StaleRevision, AlreadyExists):
        raise PreconditionFailed("the assignment changed meanwhile; read it again") from None
    set_etag(response, revision)
    return AssignmentOut(**stored.model_dump(), version=revision)


@router.delete(
    "/{e164}/profile",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422, 503),
)
async def unassign_number(e164: Number, who: Writer, s: StoresDep, expected: IfMatch) -> Response:
    key = number_key(who.tenant_id, e164)
    current = await s.numbers.get(key)
    if current is None:
        raise NotFound(f"number {e164} has no own assignment", field="e164", location="path")
    check_if_match(expected, current.revision)
    try:
        await s.numbers.delete(key, current.revision)
    except StaleRevision:
        raise PreconditionFailed("the assignment changed meanwhile; read it again") from None
    await s.claims.release_assignment(who.tenant_id, e164)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
