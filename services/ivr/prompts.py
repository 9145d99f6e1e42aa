"""What FreeSWITCH plays for a prompt reference (design §8, esl.md §6).

- Audio exists (an uploaded prompt, or a text prompt the API rendered and gave a ``prompt_id``)
  -> ``http_cache://`` + the API's HMAC-signed audio URL; mod_http_cache downloads it once and
  plays it from its cache afterwards. Needs ``CT_API_PUBLIC_URL``.
- Text without audio (or no public URL configured) -> ``say:<text>``: FreeSWITCH's text-to-speech
  file interface, using the channel variables ``tts_engine`` / ``tts_voice`` that the dialplan
  sets (deploy/freeswitch, docs/freeswitch.md). Nothing to play -> ``None``.
"""

from __future__ import annotations

import logging

from shared.domain import PromptRef, TextPrompt, UploadedPrompt
from shared.prompt_urls import http_cache_file, prompt_audio_url

log = logging.getLogger(__name__)

# FreeSWITCH's stock sound, used when a profile has no invalid prompt of its own.
DEFAULT_INVALID_FILE = "ivr/ivr-that_was_an_invalid_entry.wav"


def tts_file(text: str) -> str:
    """``say:`` text on one line (FreeSWITCH file strings are single-line)."""
    return "say:" + " ".join(text.split())


class PromptResolver:
    def __init__(self, public_url: str, signing_key: str) -> None:
        self._public_url = public_url.rstrip("/")
        self._key = signing_key
        self._warned = False

    def audio(self, tenant_id: str, prompt_id: str) -> str | None:
        if not self._public_url:
            if not self._warned:
                log.warning("CT_API_PUBLIC_URL is empty: uploaded prompts fall back to TTS")
                self._warned = True
            return None
        return http_cache_file(prompt_audio_url(self._public_url, tenant_id, prompt_id, self._key))

    def file_for(
        self, tenant_id: str, ref: PromptRef | None, fallback_text: str = ""
    ) -> str | None:
        """The file string to play, or None when there is nothing to say."""
        if isinstance(ref, UploadedPrompt):
            return self.audio(tenant_id, ref.prompt_id) or (
                tts_file(fallback_text) if fallback_text else None
            )
        if isinstance(ref, TextPrompt):
            if ref.prompt_id:
                audio = self.audio(tenant_id, ref.prompt_id)
                if audio:
                    return audio
            return tts_file(ref.text)
        return tts_file(fallback_text) if fallback_text else None
