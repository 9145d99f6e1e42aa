"""Text prompts -> stored audio: ``{"text", "language"}`` becomes a WAV in ``ct_prompts``.

A text prompt's id is derived from its language and text, so saving the same profile again (or
two profiles sharing a sentence) renders once and reuses the audio.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from services.api import tts
from services.api.audio import inspect_wav
from services.api.problems import Unavailable, Unprocessable
from services.api.prompt_store import PromptMeta, PromptStore


def text_prompt_id(text: str, language: str) -> str:
    return "tts-" + hashlib.sha256(f"{language}\n{text}".encode()).hexdigest()[:24]


async def ensure_text_prompt(
    prompts: PromptStore, tenant_id: str, text: str, language: str, field: str
) -> PromptMeta:
    """The stored prompt for ``text`` in ``language``, rendering it first if needed.

    ``field`` names the request field for a 422 (``criteria[0].prompt.language``).
    """
    prompt_id = text_prompt_id(text, language)
    existing = await prompts.info(tenant_id, prompt_id)
    if existing is not None:
        return existing
    try:
        audio = await tts.render(text, language)
    except tts.TtsError as exc:
        if exc.unknown_language:
            raise Unprocessable(
                f"no text-to-speech voice for language {language!r}",
                field=f"{field}.language" if field else "language",
            ) from exc
        raise Unavailable(f"text-to-speech failed: {exc}") from exc
    info = inspect_wav(audio)
    meta = PromptMeta(
        id=prompt_id,
        tenant_id=tenant_id,
        source="text",
        text=text,
        language=language,
        encoding=info.encoding,
        sample_rate=info.sample_rate,
        duration_ms=round(info.duration_s * 1000),
        size=len(audio),
        created_at=datetime.now(UTC),
    )
    await prompts.put(meta, audio)
    return meta
