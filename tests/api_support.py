"""Fixtures and helpers of the API tests (imported by tests/test_api_*.py; holds no tests).

The app runs against a private, bootstrapped nats-server and a fresh ClickHouse database; nothing
is mocked. ``Api`` is a TestClient wrapper that sends one tenant's key.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api.app import create_app
from shared.settings import Settings
from shared.stack import free_port

KEYS = "acme:acme-key,acme:acme-view:viewer,globex:globex-key"
SIGNING_KEY = "test-signing-key"

SUCCESS_MAP = {
    "name": "Erfolg",
    "entries": [
        {"code": "1", "label": "ERFOLGREICH", "value": 1, "success": True},
        {"code": "2", "label": "NICHT ERFOLGREICH", "value": 0},
    ],
}


def settings_for(nats_url: str, clickhouse_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {"api_keys": KEYS, "api_signing_key": SIGNING_KEY, **extra}
    return Settings(nats_url=nats_url, clickhouse_url=clickhouse_url, **values)


class Api:
    """Calls the app with one key; ``headers`` given per call are added."""

    def __init__(self, client: TestClient, key: str | None) -> None:
        self.client = client
        self.key = key

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**out, **(extra or {})}

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        kw["headers"] = self._headers(kw.get("headers"))
        return self.client.request(method, url, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


class Tenants:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.acme = Api(client, "acme-key")
        self.viewer = Api(client, "acme-view")
        self.globex = Api(client, "globex-key")
        self.anonymous = Api(client, None)


@pytest.fixture
def api_app(nats_url: str, clickhouse_url: str) -> FastAPI:
    return create_app(settings_for(nats_url, clickhouse_url))


@pytest.fixture
def api(api_app: FastAPI) -> Iterator[Tenants]:
    with TestClient(api_app) as client:
        yield Tenants(client)


def expect_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 answer with ``status`` naming ``field``; returns the problem."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def success_profile(name: str = "Erfolg", **criterion: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "key": "success",
        "label": "Erfolg",
        "input": {"type": "code", "code_map": SUCCESS_MAP},
        "aggregations": ["count", "success_rate", "distribution", "error_rate"],
    }
    c.update(criterion)
    return {"name": name, "criteria": [c]}


def wav_bytes(
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = 8000,
    bits: int = 16,
    seconds: float = 0.5,
    extensible: bool = False,
) -> bytes:
    """A RIFF WAV with a tone-free payload; any header combination, valid or not."""
    block = channels * bits // 8
    data = bytes((i * 37) % 256 for i in range(int(rate * seconds) * block))
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


class ServerThread:
    """uvicorn serving ``app`` on a free port in a thread (real HTTP for schemathesis/bench)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
