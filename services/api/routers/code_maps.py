"""``/v1/code-maps``: DTMF code -> label tables, reusable between profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from services.api.dependencies import IfMatch, Reader, StoresDep, Writer, check_if_match, set_etag
from services.api.kv_store import StaleRevision, Versioned
from services.api.models import CodeMapList, CodeMapOut
from services.api.problems import Conflict, NotFound, PreconditionFailed, responses
from services.api.profile_rules import NUMERIC, profiles_using_code_map
from services.api.stores import Stores
from shared.domain import CodeMap, StoredCodeMap
from shared.ids import OBJECT_ID_RE, new_id
from shared.nats_names import kv_key

router = APIRouter(prefix="/v1/code-maps", tags=["code maps"])
CodeMapId = Annotated[str, Path(pattern=OBJECT_ID_RE.pattern, description="code map id")]


def _out(value: StoredCodeMap, revision: int) -> CodeMapOut:
    return CodeMapOut(**value.model_dump(), version=revision)


async def _get(s: Stores, tenant_id: str, code_map_id: str) -> Versioned[StoredCodeMap]:
    found = await s.code_maps.get(kv_key(tenant_id, code_map_id))
    if found is None:
        raise NotFound(f"no code map {code_map_id}", field="code_map_id", location="path")
    return found


@router.get("", response_model=CodeMapList, responses=responses(401, 503))
async def list_code_maps(who: Reader, s: StoresDep) -> CodeMapList:
    found = await s.code_maps.list(f"{who.tenant_id}.*")
    items = [_out(v.value, v.revision) for _, v in found]
    return CodeMapList(items=sorted(items, key=lambda c: (c.created_at, c.id)))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CodeMapOut,
    responses=responses(401, 403, 422, 503),
)
async def create_code_map(
    body: CodeMap, who: Writer, s: StoresDep, response: Response
) -> CodeMapOut:
    now = datetime.now(UTC)
    stored = StoredCodeMap(
        **body.model_dump(), id=new_id(), tenant_id=who.tenant_id, created_at=now, updated_at=now
    )
    revision = await s.code_maps.create(kv_key(who.tenant_id, stored.id), stored)
    response.headers["Location"] = f"/v1/code-maps/{stored.id}"
    set_etag(response, revision)
    return _out(stored, revision)


@router.get("/{code_map_id}", response_model=CodeMapOut, responses=responses(401, 404, 422, 503))
async def get_code_map(
    code_map_id: CodeMapId, who: Reader, s: StoresDep, response: Response
) -> CodeMapOut:
    found = await _get(s, who.tenant_id, code_map_id)
    set_etag(response, found.revision)
    return _out(found.value, found.revision)


@router.put(
    "/{code_map_id}",
    response_model=CodeMapOut,
    responses=responses(401, 403, 404, 409, 412, 422, 503),
)
async def replace_code_map(
    code_map_id: CodeMapId,
    body: CodeMap,
    who: Writer,
    s: StoresDep,
    expected: IfMatch,
    response: Response,
) -> CodeMapOut:
    key = kv_key(who.tenant_id, code_map_id)
    found = await _get(s, who.tenant_id, code_map_id)
    check_if_match(expected, found.revision)
    if all(e.value is None for e in body.entries):
        for profile in await profiles_using_code_map(s, who.tenant_id, code_map_id):
            for c in profile.criteria:
                if getattr(c.input, "code_map_id", None) == code_map_id and NUMERIC & set(
                    c.aggregations
                ):
                    raise Conflict(
                        f"profile {profile.id} sums/averages criterion {c.key!r} over this code "
                        "map's values; keep a value on at least one entry",
                        field="entries",
                    )
    stored = StoredCodeMap(
        **body.model_dump(),
        id=code_map_id,
        tenant_id=who.tenant_id,
        created_at=found.value.created_at,
        updated_at=datetime.now(UTC),
    )
    try:
        revision = await s.code_maps.update(key, stored, found.revision)
    except StaleRevision:
        raise PreconditionFailed("the code map changed meanwhile; read it again") from None
    set_etag(response, revision)
    return _out(stored, revision)


@router.delete(
    "/{code_map_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 409, 412, 422, 503),
)
async def delete_code_map(
    code_map_id: CodeMapId, who: Writer, s: StoresDep, expected: IfMatch
) -> Response:
    key = kv_key(who.tenant_id, code_map_id)
    found = await _get(s, who.tenant_id, code_map_id)
    check_if_match(expected, found.revision)
    users = await profiles_using_code_map(s, who.tenant_id, code_map_id)
    if users:
        names = ", ".join(sorted(p.id for p in users)[:5])
        raise Conflict(
            f"code map is used by profile(s) {names}", field="code_map_id", location="path"
        )
    try:
        await s.code_maps.delete(key, found.revision)
    except StaleRevision:
        raise PreconditionFailed("the code map changed meanwhile; read it again") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
