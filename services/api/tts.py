"""Offline text-to-speech: espeak-ng renders, sox resamples to what telephony wants (8 kHz mono
16-bit PCM WAV). Both run as subprocesses with the text on stdin, so no text ever becomes an
argument or a shell word."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

RENDER_TIMEOUT_S = 30.0


class TtsError(Exception):
    """Rendering failed; ``unknown_language`` tells a client error from a server one."""

    def __init__(self, message: str, unknown_language: bool = False) -> None:
        super().__init__(message)
        self.unknown_language = unknown_language


def available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


async def _run(argv: list[str], stdin: bytes | None = None) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(stdin), RENDER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TtsError(f"{argv[0]} took longer than {RENDER_TIMEOUT_S:.0f} s") from None
    return proc.returncode or 0, err


async def render(text: str, language: str) -> bytes:
    """``text`` spoken in ``language`` (e.g. "de", "en-US") as an 8 kHz mono 16-bit WAV."""
    if not available():
        raise TtsError("espeak-ng and sox are not installed on this server")
    voice = language.lower()  # espeak-ng voice names are lower case: en-us, pt-br
    with tempfile.TemporaryDirectory(prefix="ct-tts-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        rc, err = await _run(["espeak-ng", "-v", voice, "--stdin", "-w", str(raw)], text.encode())
        if rc != 0 or not raw.exists():
            message = err.decode(errors="replace").strip() or f"espeak-ng exited with {rc}"
            unknown = "voice does not exist" in message
            raise TtsError(message, unknown_language=unknown)
        rc, err = await _run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)]
        )
        if rc != 0:
            raise TtsError(err.decode(errors="replace").strip() or f"sox exited with {rc}")
        return out.read_bytes()
