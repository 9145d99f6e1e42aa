"""``/v1/prompts``: voice files (uploaded WAV or text rendered by espeak-ng) and ``/audio/...``,
the signed URL FreeSWITCH's mod_http_cache fetches without a tenant key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.datastructures import UploadFile

from services.api.audio import MAX_BYTES, AudioError, inspect_wav
from services.api.dependencies import Reader, StoresDep, Writer, state
from services.api.models import PromptList, PromptOut, TextPromptIn
from services.api.problems import ApiError, Conflict, Forbidden, NotFound, Unprocessable, responses
from services.api.profile_rules import profiles_using_prompt
from services.api.prompt_render import ensure_text_prompt
from services.api.prompt_store import PromptMeta
from shared.ids import OBJECT_ID_RE, TENANT_RE, new_id
from shared.prompt_urls import prompt_audio_url, verify_prompt_signature

router = APIRouter(tags=["prompts"])
PromptId = Annotated[str, Path(pattern=OBJECT_ID_RE.pattern, description="prompt id")]

# Multipart framing around a 5 MB file stays far below this; a larger body is refused unread.
MAX_BODY = MAX_BYTES + 64 * 1024


class UnsupportedMediaType(ApiError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "WAV: RIFF, mono, 8/16 kHz, 16-bit PCM, A-law or "
                            "mu-law, at most 5 MB and 60 s",
                        }
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/TextPromptIn"}},
        },
    }
}


def _out(request: Request, meta: PromptMeta) -> PromptOut:
    settings = state(request).settings
    url = prompt_audio_url(
        settings.api_public_url, meta.tenant_id, meta.id, settings.api_signing_key
    )
    return PromptOut(**meta.model_dump(), audio_url=url)


async def _read_upload(request: Request) -> tuple[bytes, str | None]:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise Unprocessable(
            f"upload is {int(length):,} bytes; the limit is 5 MB ({MAX_BYTES:,} bytes)",
            field="file",
        )
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("send the WAV as the multipart field `file`", field="file")
        data = await upload.read(MAX_BYTES + 1)
        return data, upload.filename
    finally:
        await form.close()


@router.get("/v1/prompts", response_model=PromptList, responses=responses(401, 503))
async def list_prompts(request: Request, who: Reader, s: StoresDep) -> PromptList:
    return PromptList(items=[_out(request, m) for m in await s.prompts.list(who.tenant_id)])


@router.post(
    "/v1/prompts",
    status_code=status.HTTP_201_CREATED,
    response_model=PromptOut,
    responses=responses(401, 403, 415, 422, 503),
    openapi_extra=UPLOAD_BODY,
    description='Upload a WAV (multipart field `file`) or send `{"text", "language"}` to '
    "have it rendered by text-to-speech into an 8 kHz mono WAV.",
)
async def create_prompt(
    request: Request, who: Writer, s: StoresDep, response: Response
) -> PromptOut:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = TextPromptIn.model_validate_json(await request.body() or b"null")
        meta = await ensure_text_prompt(s.prompts, who.tenant_id, body.text, body.language, "")
    elif ctype == "multipart/form-data":
        data, filename = await _read_upload(request)
        try:
            info = inspect_wav(data)
        except AudioError as exc:
            raise Unprocessable(str(exc), field="file") from None
        meta = PromptMeta(
            id=new_id(),
            tenant_id=who.tenant_id,
            source="upload",
            filename=(filename or "")[:200] or None,
            encoding=info.encoding,
            sample_rate=info.sample_rate,
            duration_ms=round(info.duration_s * 1000),
            size=len(data),
            created_at=datetime.now(UTC),
        )
        await s.prompts.put(meta, data)
    else:
        raise UnsupportedMediaType(
            "send multipart/form-data with a WAV `file`, or application/json with text",
            field="Content-Type",
            location="header",
        )
    response.headers["Location"] = f"/v1/prompts/{meta.id}"
    return _out(request, meta)


@router.get(
    "/v1/prompts/{prompt_id}", response_model=PromptOut, responses=responses(401, 404, 422, 503)
)
async def get_prompt(request: Request, prompt_id: PromptId, who: Reader, s: StoresDep) -> PromptOut:
    meta = await s.prompts.info(who.tenant_id, prompt_id)
    if meta is None:
        raise NotFound(f"no prompt {prompt_id}", field="prompt_id", location="path")
    return _out(request, meta)


@router.delete(
    "/v1/prompts/{prompt_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 409, 422, 503),
)
async def delete_prompt(prompt_id: PromptId, who: Writer, s: StoresDep) -> Response:
    if await s.prompts.info(who.tenant_id, prompt_id) is None:
        raise NotFound(f"no prompt {prompt_id}", field="prompt_id", location="path")
    users = await profiles_using_prompt(s, who.tenant_id, prompt_id)
    if users:
        names = ", ".join(sorted(p.id for p in users)[:5])
        raise Conflict(f"prompt is used by profile(s) {names}", field="prompt_id", location="path")
    await s.prompts.delete(who.tenant_id, prompt_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# HTTP caches may ask HEAD before fetching; it is the same answer without the body.
@router.head("/audio/{tenant_id}/{prompt_id}.wav", include_in_schema=False)
@router.get(
    "/audio/{tenant_id}/{prompt_id}.wav",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
        **responses(403, 404, 422, 503),
    },
    description="Prompt audio for FreeSWITCH (mod_http_cache): no API key, the `sig` of the URL "
    "from `audio_url` authorises it. Immutable, so it may be cached for long.",
)
async def prompt_audio(
    request: Request,
    tenant_id: Annotated[str, Path(pattern=TENANT_RE.pattern)],
    prompt_id: PromptId,
    sig: Annotated[str, Query(pattern=r"^[0-9a-f]{1,128}$", description="URL signature")],
    s: StoresDep,
) -> Response:
    key = state(request).settings.api_signing_key
    if not verify_prompt_signature(tenant_id, prompt_id, key, sig):
        raise Forbidden("the signature does not match this URL", field="sig", location="query")
    audio = await s.prompts.audio(tenant_id, prompt_id)
    if audio is None:
        raise NotFound(f"no prompt {prompt_id}", field="prompt_id", location="path")
    return Response(
        audio,
        media_type="audio/wav",
        headers={
            "Cache-Control": "public, max-age=86400, immutable",
            "ETag": f'"{prompt_id}"',
        },
    )
