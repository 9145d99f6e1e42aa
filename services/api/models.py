"""Request and response bodies of the API (the stored shapes live in shared/domain.py).

Responses extend the ``Stored*`` models with ``version`` (the KV revision, also the ``ETag``);
the stored KV values themselves stay exactly the ``Stored*`` shapes the IVR reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from services.api.prompt_store import PromptMeta
from shared.domain import (
    Language,
    Profile,
    StoredAssignment,
    StoredCodeMap,
    StoredPool,
    StoredProfile,
    StrictModel,
)
from shared.ids import E164, ObjectId

TemplateName = Literal["success", "school_grade", "order_value"]


class Version(BaseModel):
    version: int = Field(description="KV revision of this object; also its ETag")


class CodeMapOut(StoredCodeMap, Version):
    pass


class CodeMapList(BaseModel):
    items: list[CodeMapOut]


class ProfileOut(StoredProfile, Version):
    pass


class ProfileList(BaseModel):
    items: list[ProfileOut]


class ProfileVersionInfo(BaseModel):
    version: int
    name: str
    updated_at: datetime


class ProfileVersionList(BaseModel):
    items: list[ProfileVersionInfo] = Field(description="oldest first")


class ProfileFromTemplate(StrictModel):
    template: TemplateName
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="defaults to the template's title"
    )


def _profile_branch(value: Any) -> str:
    if isinstance(value, dict):
        return "from_template" if "template" in value else "profile"
    return "from_template" if isinstance(value, ProfileFromTemplate) else "profile"


ProfileCreate = Annotated[
    Annotated[Profile, Tag("profile")] | Annotated[ProfileFromTemplate, Tag("from_template")],
    Discriminator(_profile_branch),
]


class TemplateOut(BaseModel):
    name: TemplateName
    title: str
    description: str
    profile: Profile


class TemplateList(BaseModel):
    items: list[TemplateOut]


class PoolOut(StoredPool, Version):
    pass


class PoolList(BaseModel):
    items: list[PoolOut]


class ProfileRef(StrictModel):
    profile_id: ObjectId | None = Field(description="the profile, or null to unassign")


class AssignmentIn(StrictModel):
    profile_id: ObjectId


class AssignmentOut(StoredAssignment, Version):
    pass


class NumberOut(BaseModel):
    """How a call to ``number`` is handled: its own assignment wins over its pool's."""

    number: E164
    profile_id: str | None = Field(description="the profile a call to this number gets")
    source: Literal["number", "pool"] | None = Field(description="where profile_id comes from")
    assigned_profile_id: str | None = Field(description="the number's own assignment")
    assignment_version: int | None = Field(description="ETag of the number's own assignment")
    pool_id: str | None
    pool_profile_id: str | None


class NumberList(BaseModel):
    items: list[NumberOut]


class TextPromptIn(StrictModel):
    text: Annotated[str, Field(min_length=1, max_length=500)]
    language: Language = "de"


class PromptOut(PromptMeta):
    audio_url: str = Field(description="signed URL FreeSWITCH (or a browser) fetches without a key")


class PromptList(BaseModel):
    items: list[PromptOut]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded"]
    nats: Literal["up", "down"]
    clickhouse: Literal["up", "down"]
