"""WAV validation for uploaded prompts: what FreeSWITCH plays without transcoding surprises.

Accepted: RIFF/WAVE, mono, 8 or 16 kHz, 16-bit PCM or 8-bit A-law / mu-law (also inside
WAVE_FORMAT_EXTENSIBLE), at most 60 s and 5 MB. Everything else raises ``AudioError`` with a
sentence a person can act on. The parser walks the RIFF chunks itself because the stdlib
``wave`` module knows only PCM and reports truncation poorly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

MAX_BYTES = 5 * 1024 * 1024
MAX_SECONDS = 60.0
RATES = (8000, 16000)

Encoding = Literal["pcm16", "alaw", "ulaw"]

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0003: "32-bit float",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}


class AudioError(ValueError):
    """The upload is not a WAV we accept; the message says why."""


@dataclass(frozen=True)
class WavInfo:
    encoding: Encoding
    channels: int
    sample_rate: int
    bits_per_sample: int
    data_bytes: int

    @property
    def duration_s(self) -> float:
        bytes_per_second = self.sample_rate * self.channels * self.bits_per_sample // 8
        return self.data_bytes / bytes_per_second


def _format_name(tag: int) -> str:
    return _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")


def inspect_wav(data: bytes) -> WavInfo:
    """Validate ``data`` as a prompt WAV; raises AudioError naming the first problem."""
    if len(data) > MAX_BYTES:
        raise AudioError(f"file is {len(data):,} bytes; the limit is 5 MB ({MAX_BYTES:,} bytes)")
    if len(data) < 12:
        raise AudioError("not a WAV file: too short for a RIFF header")
    magic, riff_size, wave = struct.unpack("<4sI4s", data[:12])
    if magic in (b"RIFX", b"RF64"):
        raise AudioError(f"{magic.decode()} WAV files are not supported; use a plain RIFF WAV")
    if magic != b"RIFF" or wave != b"WAVE":
        raise AudioError("not a WAV file: no RIFF/WAVE header")
    if riff_size + 8 > len(data):
        raise AudioError(
            f"file is truncated: the RIFF header declares {riff_size + 8:,} bytes, "
            f"the upload has {len(data):,}"
        )

    fmt: bytes | None = None
    data_bytes: int | None = None
    pos, end = 12, riff_size + 8
    while pos + 8 <= end:
        chunk_id, size = struct.unpack("<4sI", data[pos : pos + 8])
        body_start = pos + 8
        if body_start + size > end:
            name = chunk_id.decode("latin-1").strip()
            raise AudioError(
                f"file is truncated: chunk {name!r} declares {size:,} bytes, "
                f"only {end - body_start:,} follow"
            )
        if chunk_id == b"fmt ":
            fmt = data[body_start : body_start + size]
        elif chunk_id == b"data":
            data_bytes = size
        pos = body_start + size + (size & 1)  # chunks are word aligned

    if fmt is None or len(fmt) < 16:
        raise AudioError("not a valid WAV file: the 'fmt ' chunk is missing or too short")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise AudioError("not a valid WAV file: WAVE_FORMAT_EXTENSIBLE header is too short")
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID

    encoding: Encoding
    if tag == _PCM:
        encoding, want_bits = "pcm16", 16
    elif tag == _ALAW:
        encoding, want_bits = "alaw", 8
    elif tag == _ULAW:
        encoding, want_bits = "ulaw", 8
    else:
        raise AudioError(
            f"audio encoding {_format_name(tag)} is not supported; use 16-bit PCM, A-law or mu-law"
        )
    if channels != 1:
        what = "stereo" if channels == 2 else f"{channels}-channel"
        raise AudioError(f"audio is {what} ({channels} channels); prompts must be mono")
    if rate not in RATES:
        raise AudioError(f"sample rate is {rate:,} Hz; use 8,000 or 16,000 Hz")
    if bits != want_bits:
        kind = "PCM" if encoding == "pcm16" else encoding
        raise AudioError(f"{kind} audio has {bits} bits per sample; it must be {want_bits}")
    if block_align != channels * bits // 8:
        raise AudioError(
            f"not a valid WAV file: block align {block_align} does not fit {bits} bits"
        )
    if data_bytes is None:
        raise AudioError("not a valid WAV file: no 'data' chunk")
    if data_bytes == 0:
        raise AudioError("the audio is empty (the 'data' chunk holds no samples)")
    info = WavInfo(encoding, channels, rate, bits, data_bytes)
    if info.duration_s > MAX_SECONDS:
        raise AudioError(f"audio lasts {info.duration_s:.1f} s; the limit is {MAX_SECONDS:.0f} s")
    return info
