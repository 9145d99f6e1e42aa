"""Signed audio URLs for prompts, so FreeSWITCH's mod_http_cache can fetch audio without a
tenant key. The API serves ``GET /audio/{tenant}/{prompt_id}.wav?sig=...``; the IVR builds the
same URL from ``CT_API_PUBLIC_URL`` and ``CT_API_SIGNING_KEY`` without calling the API.

The URL does not expire: mod_http_cache caches by URL, and a prompt id names immutable audio.
"""

from __future__ import annotations

import hashlib
import hmac


def prompt_signature(tenant_id: str, prompt_id: str, key: str) -> str:
    msg = f"{tenant_id}/{prompt_id}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:32]


def verify_prompt_signature(tenant_id: str, prompt_id: str, key: str, sig: str) -> bool:
    return hmac.compare_digest(prompt_signature(tenant_id, prompt_id, key), sig)


def prompt_audio_path(tenant_id: str, prompt_id: str, key: str) -> str:
    return f"/audio/{tenant_id}/{prompt_id}.wav?sig={prompt_signature(tenant_id, prompt_id, key)}"


def prompt_audio_url(base_url: str, tenant_id: str, prompt_id: str, key: str) -> str:
    return base_url.rstrip("/") + prompt_audio_path(tenant_id, prompt_id, key)


def http_cache_file(url: str) -> str:
    """What FreeSWITCH plays: ``http_cache://`` + the full URL (design: esl.md §6)."""
    return f"http_cache://{url}"
