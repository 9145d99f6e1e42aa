"""What the API checks beyond the shared domain model before it saves a profile, and who uses
what (for 409 on deleting something still in use).

The domain model (shared/domain.py) already rejects what cannot work on a keypad in isolation:
tries outside 1-9, timeouts outside 1-60 s, duplicate keys, codes longer than 16 digits, number
limits. Here come the checks that need the tenant's other objects: referenced code maps and
prompts must exist, and numeric figures need code map entries that carry values.
"""

from __future__ import annotations

from collections.abc import Iterator

from services.api.problems import Unprocessable
from services.api.prompt_render import ensure_text_prompt
from services.api.stores import Stores
from shared.domain import (
    CodeInput,
    Profile,
    PromptRef,
    StoredProfile,
    TextPrompt,
    UploadedPrompt,
)
from shared.nats_names import kv_key

NUMERIC = {"sum", "min", "max", "avg"}


def prompt_refs(profile: Profile) -> Iterator[tuple[str, PromptRef]]:
    """Every prompt reference of a profile with the field path naming it."""
    for name in ("welcome", "invalid", "goodbye"):
        ref = getattr(profile.prompts, name)
        if ref is not None:
            yield f"prompts.{name}", ref
    for i, c in enumerate(profile.criteria):
        if c.prompt is not None:
            yield f"criteria[{i}].prompt", c.prompt


async def check_profile(s: Stores, tenant_id: str, profile: Profile) -> None:
    """Raise a 422 naming the field of the first reference that cannot work."""
    for i, c in enumerate(profile.criteria):
        if isinstance(c.input, CodeInput) and c.input.code_map_id is not None:
            found = await s.code_maps.get(kv_key(tenant_id, c.input.code_map_id))
            if found is None:
                raise Unprocessable(
                    f"no code map {c.input.code_map_id}", field=f"criteria[{i}].input.code_map_id"
                )
            wanted = NUMERIC & set(c.aggregations)
            if wanted and all(e.value is None for e in found.value.entries):
                raise Unprocessable(
                    f"{', '.join(sorted(wanted))} need code map entries with a value; "
                    f"code map {c.input.code_map_id} has none",
                    field=f"criteria[{i}].aggregations",
                )
    for path, ref in prompt_refs(profile):
        if isinstance(ref, UploadedPrompt) and not await s.prompts.exists(tenant_id, ref.prompt_id):
            raise Unprocessable(f"no prompt {ref.prompt_id}", field=f"{path}.prompt_id")


async def render_text_prompts(s: Stores, tenant_id: str, profile: Profile) -> Profile:
    """A copy whose text prompts carry the ``prompt_id`` of their rendered audio."""
    out = profile.model_copy(deep=True)
    for path, ref in prompt_refs(out):
        if isinstance(ref, TextPrompt):
            meta = await ensure_text_prompt(s.prompts, tenant_id, ref.text, ref.language, path)
            ref.prompt_id = meta.id
    return out


async def profiles_of(s: Stores, tenant_id: str) -> list[StoredProfile]:
    return [v.value for _, v in await s.profiles.list(f"{tenant_id}.*")]


async def profiles_using_code_map(
    s: Stores, tenant_id: str, code_map_id: str
) -> list[StoredProfile]:
    return [
        p
        for p in await profiles_of(s, tenant_id)
        if any(getattr(c.input, "code_map_id", None) == code_map_id for c in p.criteria)
    ]


async def profiles_using_prompt(s: Stores, tenant_id: str, prompt_id: str) -> list[StoredProfile]:
    return [
        p
        for p in await profiles_of(s, tenant_id)
        if any(getattr(ref, "prompt_id", None) == prompt_id for _, ref in prompt_refs(p))
    ]
