"""``/v1/profiles``: survey definitions, versioned (every saved version stays readable)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from services.api.dependencies import IfMatch, Reader, StoresDep, Writer, check_if_match, set_etag
from services.api.kv_store import StaleRevision, Versioned
from services.api.models import (
    ProfileCreate,
    ProfileFromTemplate,
    ProfileList,
    ProfileOut,
    ProfileVersionInfo,
    ProfileVersionList,
)
from services.api.problems import Conflict, NotFound, PreconditionFailed, responses
from services.api.profile_rules import check_profile, render_text_prompts
from services.api.stores import Stores
from services.api.templates import profile_from_template
from shared.domain import Profile, StoredProfile
from shared.ids import OBJECT_ID_RE, new_id
from shared.nats_names import kv_key

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
ProfileId = Annotated[str, Path(pattern=OBJECT_ID_RE.pattern, description="profile id")]


def _out(value: StoredProfile, revision: int) -> ProfileOut:
    return ProfileOut(**value.model_dump(), version=revision)


def _version_key(tenant_id: str, profile_id: str, revision: int) -> str:
    return f"{tenant_id}.{profile_id}.{revision}"


async def _get(s: Stores, tenant_id: str, profile_id: str) -> Versioned[StoredProfile]:
    found = await s.profiles.get(kv_key(tenant_id, profile_id))
    if found is None:
        raise NotFound(f"no profile {profile_id}", field="profile_id", location="path")
    return found


async def _save(
    s: Stores,
    tenant_id: str,
    profile_id: str,
    body: Profile,
    current: Versioned[StoredProfile] | None,
) -> tuple[StoredProfile, int]:
    await check_profile(s, tenant_id, body)
    rendered = await render_text_prompts(s, tenant_id, body)
    now = datetime.now(UTC)
    stored = StoredProfile(
        **rendered.model_dump(),
        id=profile_id,
        tenant_id=tenant_id,
        created_at=current.value.created_at if current else now,
        updated_at=now,
    )
    key = kv_key(tenant_id, profile_id)
    if current is None:
        revision = await s.profiles.create(key, stored)
    else:
        try:
            revision = await s.profiles.update(key, stored, current.revision)
        except StaleRevision:
            raise PreconditionFailed("the profile changed meanwhile; read it again") from None
    # The live bucket keeps 64 revisions per key; this copy keeps every version beyond that.
    await s.profile_versions.put(_version_key(tenant_id, profile_id, revision), stored)
    return stored, revision


@router.get("", response_model=ProfileList, responses=responses(401, 503))
async def list_profiles(who: Reader, s: StoresDep) -> ProfileList:
    found = await s.profiles.list(f"{who.tenant_id}.*")
    items = [_out(v.value, v.revision) for _, v in found]
    return ProfileList(items=sorted(items, key=lambda p: (p.created_at, p.id)))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProfileOut,
    responses=responses(401, 403, 422, 503),
    description='A profile body, or `{"template": "success", "name": ...}` to start from '
    "a built-in template. Text prompts are rendered to audio now and get their `prompt_id`.",
)
async def create_profile(
    body: Annotated[ProfileCreate, Body()], who: Writer, s: StoresDep, response: Response
) -> ProfileOut:
    profile = (
        profile_from_template(body.template, body.name)
        if isinstance(body, ProfileFromTemplate)
        else body
    )
    stored, revision = await _save(s, who.tenant_id, new_id(), profile, None)
    response.headers["Location"] = f"/v1/profiles/{stored.id}"
    set_etag(response, revision)
    return _out(stored, revision)


@router.get("/{profile_id}", response_model=ProfileOut, responses=responses(401, 404, 422, 503))
async def get_profile(
    profile_id: ProfileId, who: Reader, s: StoresDep, response: Response
) -> ProfileOut:
    found = await _get(s, who.tenant_id, profile_id)
    set_etag(response, found.revision)
    return _out(found.value, found.revision)


@router.put(
    "/{profile_id}",
    response_model=ProfileOut,
    responses=responses(401, 403, 404, 412, 422, 503),
)
async def replace_profile(
    profile_id: ProfileId,
    body: Profile,
    who: Writer,
    s: StoresDep,
    expected: IfMatch,
    response: Response,
) -> ProfileOut:
    current = await _get(s, who.tenant_id, profile_id)
    check_if_match(expected, current.revision)
    stored, revision = await _save(s, who.tenant_id, profile_id, body, current)
    set_etag(response, revision)
    return _out(stored, revision)


@router.delete(
    "/{profile_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 409, 412, 422, 503),
)
async def delete_profile(
    profile_id: ProfileId, who: Writer, s: StoresDep, expected: IfMatch
) -> Response:
    current = await _get(s, who.tenant_id, profile_id)
    check_if_match(expected, current.revision)
    users = [
        f"pool {v.value.id}"
        for _, v in await s.pools.list(f"{who.tenant_id}.*")
        if v.value.profile_id == profile_id
    ] + [
        f"number {v.value.number}"
        for _, v in await s.numbers.list(f"{who.tenant_id}.*")
        if v.value.profile_id == profile_id
    ]
    if users:
        raise Conflict(
            f"profile is assigned to {', '.join(sorted(users)[:5])}; unassign it first",
            field="profile_id",
            location="path",
        )
    try:
        await s.profiles.delete(kv_key(who.tenant_id, profile_id), current.revision)
    except StaleRevision:
        raise PreconditionFailed("the profile changed meanwhile; read it again") from None
    for key, _ in await s.profile_versions.list(f"{who.tenant_id}.{profile_id}.*"):
        await s.profile_versions.purge(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{profile_id}/versions",
    response_model=ProfileVersionList,
    responses=responses(401, 404, 422, 503),
)
async def list_versions(profile_id: ProfileId, who: Reader, s: StoresDep) -> ProfileVersionList:
    current = await _get(s, who.tenant_id, profile_id)
    # A version entry's key ends in the profile's revision (its own KV revision is another one).
    by_key = {
        int(key.rsplit(".", 1)[1]): v.value
        for key, v in await s.profile_versions.list(f"{who.tenant_id}.{profile_id}.*")
    }
    # The live revision is listed even if its copy was never written (crash between the two).
    by_key.setdefault(current.revision, current.value)
    return ProfileVersionList(
        items=[
            ProfileVersionInfo(version=rev, name=p.name, updated_at=p.updated_at)
            for rev, p in sorted(by_key.items())
        ]
    )


@router.get(
    "/{profile_id}/versions/{version}",
    response_model=ProfileOut,
    responses=responses(401, 404, 422, 503),
)
async def get_version(
    profile_id: ProfileId,
    version: Annotated[int, Path(ge=1, le=2**63 - 1, description="a version from /versions")],
    who: Reader,
    s: StoresDep,
    response: Response,
) -> ProfileOut:
    current = await _get(s, who.tenant_id, profile_id)
    value: StoredProfile | None
    if version == current.revision:
        value = current.value
    else:
        found = await s.profile_versions.get(_version_key(who.tenant_id, profile_id, version))
        value = found.value if found else None
        if value is None:  # written before a crash could copy it: still in the live history
            value = await s.profiles.get_revision(kv_key(who.tenant_id, profile_id), version)
    if value is None:
        raise NotFound(
            f"profile {profile_id} has no version {version}", field="version", location="path"
        )
    set_etag(response, version)
    return _out(value, version)
