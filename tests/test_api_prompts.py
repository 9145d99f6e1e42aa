"""Prompt uploads and text-to-speech: what FreeSWITCH can play is accepted, everything else is a
422 that says why."""

# ruff: noqa: F811  (pytest fixtures are imported from api_support and used as arguments)

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from services.api.audio import MAX_BYTES, AudioError, inspect_wav

from api_support import (  # noqa: F401  (fixtures)
    Tenants,
    api,
    api_app,
    expect_problem,
    success_profile,
    wav_bytes,
)

PCM, ALAW, ULAW, FLOAT = 1, 6, 7, 3


@pytest.mark.parametrize(
    ("wav", "encoding", "rate"),
    [
        (wav_bytes(), "pcm16", 8000),
        (wav_bytes(rate=16000), "pcm16", 16000),
        (wav_bytes(tag=ALAW, bits=8), "alaw", 8000),
        (wav_bytes(tag=ULAW, bits=8, rate=16000), "ulaw", 16000),
        (wav_bytes(extensible=True), "pcm16", 8000),
    ],
)
def test_accepted_formats(wav: bytes, encoding: str, rate: int) -> None:
    info = inspect_wav(wav)
    assert (info.encoding, info.sample_rate, info.channels) == (encoding, rate, 1)
    assert info.duration_s == pytest.approx(0.5)


def _truncate_data(wav: bytes) -> bytes:
    return wav[: len(wav) - 100]


def _chunk_size_lie(wav: bytes) -> bytes:
    # RIFF size fixed up to the real length, but the data chunk still claims more than follows.
    cut = wav[:-100]
    return cut[:4] + struct.pack("<I", len(cut) - 8) + cut[8:]


REFUSED = [
    (wav_bytes(channels=2), "stereo"),
    (wav_bytes(rate=44100, seconds=0.1), "44,100 Hz"),
    (wav_bytes(bits=8), "16"),
    (wav_bytes(tag=FLOAT, bits=32), "32-bit float"),
    (wav_bytes(tag=0x55, bits=16), "MP3"),
    (_truncate_data(wav_bytes()), "truncated"),
    (_chunk_size_lie(wav_bytes()), "truncated"),
    (wav_bytes(seconds=61), "61.0 s"),
    (wav_bytes(seconds=0), "empty"),
    (b"ID3\x04\x00" + bytes(2000), "not a WAV"),
    (b"%PDF-1.7 definitely not audio" * 10, "not a WAV"),
    (b"RIFF", "too short"),
]


@pytest.mark.parametrize(("wav", "reason"), REFUSED)
def test_refused_formats_say_why(wav: bytes, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        inspect_wav(wav)


def test_oversize_is_refused_before_parsing() -> None:
    with pytest.raises(AudioError, match="5 MB"):
        inspect_wav(b"RIFF" + bytes(MAX_BYTES))


def test_upload_store_and_fetch(api: Tenants, tmp_path: Path) -> None:
    # A real A-law file made by sox, as a customer's audio tool would write it.
    src, alaw = tmp_path / "tone.wav", tmp_path / "alaw.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", str(src), "synth", "0.3", "sine", "440"], check=True
    )
    subprocess.run(["sox", str(src), "-e", "a-law", str(alaw)], check=True)
    for data, encoding in ((wav_bytes(rate=16000), "pcm16"), (alaw.read_bytes(), "alaw")):
        r = api.acme.post("/v1/prompts", files={"file": ("greeting.wav", data, "audio/wav")})
        assert r.status_code == 201, r.text
        meta = r.json()
        assert meta["encoding"] == encoding and meta["source"] == "upload"
        assert meta["filename"] == "greeting.wav" and meta["size"] == len(data)
        assert api.acme.get(f"/v1/prompts/{meta['id']}").json() == meta
        assert api.anonymous.get(meta["audio_url"]).content == data
    assert len(api.acme.get("/v1/prompts").json()["items"]) == 2


@pytest.mark.parametrize(("wav", "reason"), REFUSED[:8])
def test_upload_refusals_are_422_naming_file(api: Tenants, wav: bytes, reason: str) -> None:
    r = api.acme.post("/v1/prompts", files={"file": ("x.wav", wav, "audio/wav")})
    p = expect_problem(r, 422, "file")
    assert reason in p["detail"]


def test_upload_edge_cases(api: Tenants) -> None:
    big = b"RIFF" + bytes(MAX_BYTES + 100_000)
    p = expect_problem(api.acme.post("/v1/prompts", files={"file": ("b.wav", big)}), 422, "file")
    assert "5 MB" in p["detail"]
    just_over = b"RIFF" + bytes(MAX_BYTES - 2)  # over the limit by 2 bytes, within framing
    expect_problem(api.acme.post("/v1/prompts", files={"file": ("b.wav", just_over)}), 422, "file")
    expect_problem(
        api.acme.post("/v1/prompts", files={"other": ("b.wav", wav_bytes())}), 422, "file"
    )
    expect_problem(
        api.acme.post("/v1/prompts", content=wav_bytes(), headers={"content-type": "audio/wav"}),
        415,
    )
    expect_problem(api.acme.post("/v1/prompts", json={"text": ""}), 422, "text")
    expect_problem(
        api.acme.post("/v1/prompts", json={"text": "x", "language": "german"}), 422, "language"
    )
    expect_problem(
        api.acme.post("/v1/prompts", json={"text": "x", "language": "zz"}), 422, "language"
    )


def test_text_prompt_is_rendered_to_8khz_mono(api: Tenants) -> None:
    r = api.acme.post(
        "/v1/prompts", json={"text": "Vielen Dank und auf Wiederhören.", "language": "de"}
    )
    assert r.status_code == 201, r.text
    meta = r.json()
    assert (meta["source"], meta["encoding"], meta["sample_rate"]) == ("text", "pcm16", 8000)
    assert 500 < meta["duration_ms"] < 10_000
    audio = api.anonymous.get(meta["audio_url"]).content
    info = inspect_wav(audio)
    assert (info.channels, info.sample_rate, info.bits_per_sample) == (1, 8000, 16)
    # The same text again is the same prompt (rendered once).
    again = api.acme.post(
        "/v1/prompts", json={"text": "Vielen Dank und auf Wiederhören.", "language": "de"}
    )
    assert again.json()["id"] == meta["id"]


def test_prompt_in_use_cannot_be_deleted(api: Tenants) -> None:
    pid = api.acme.post("/v1/prompts", files={"file": ("x.wav", wav_bytes())}).json()["id"]
    body = {**success_profile(), "prompts": {"goodbye": {"prompt_id": pid}}}
    profile = api.acme.post("/v1/profiles", json=body).json()
    assert profile["prompts"]["goodbye"] == {"prompt_id": pid}
    expect_problem(api.acme.delete(f"/v1/prompts/{pid}"), 409, "prompt_id")
    assert api.acme.delete(f"/v1/profiles/{profile['id']}").status_code == 204
    assert api.acme.delete(f"/v1/prompts/{pid}").status_code == 204
    expect_problem(api.acme.get(f"/v1/prompts/{pid}"), 404)
    expect_problem(api.acme.delete(f"/v1/prompts/{pid}"), 404)
