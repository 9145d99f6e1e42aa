"""Helpers for the IVR and end-to-end tests (no tests here): configuration written straight to
NATS KV with the Stored* models, the IVR as a subprocess, and reading the events stream.

Everything talks to real servers; only FreeSWITCH is played by the simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import nats
from pydantic import BaseModel

from shared import nats_names as names
from shared.domain import StoredAssignment, StoredCodeMap, StoredPool, StoredProfile
from shared.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
# The simulator package can be newer than an editable install made before it existed
# (docs/simulator.md); importing it from the checkout keeps these tests independent of that.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
NOW = datetime(2025, 1, 1, tzinfo=UTC)
T = TypeVar("T")

YES_NO = {
    "name": "Erfolg",
    "entries": [
        {"code": "1", "label": "ERFOLGREICH", "value": 1, "success": True},
        {"code": "2", "label": "NICHT ERFOLGREICH", "value": 0},
    ],
}
GRADES = {
    "name": "Schulnoten",
    "entries": [
        {"code": str(i), "label": label, "value": i}
        for i, label in enumerate(
            ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"], start=1
        )
    ],
}


def wait_for(
    check: Callable[[], T], timeout: float = 10.0, every: float = 0.05, what: str = "condition"
) -> T:
    """Bounded polling: the truthy result of ``check`` or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# -- configuration in KV --------------------------------------------------------------------
def profile(
    tenant: str = "acme",
    profile_id: str = "p1",
    criteria: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> StoredProfile:
    if criteria is None:
        criteria = [
            {
                "key": "success",
                "label": "Erfolg",
                "tries": 3,
                "timeout_ms": 1000,
                "input": {"type": "code", "code_map": YES_NO},
                "aggregations": ["count", "success_rate"],
            },
            {
                "key": "grade",
                "label": "Note",
                "tries": 2,
                "timeout_ms": 1000,
                "input": {"type": "code", "code_map_id": "grades"},
                "aggregations": ["count", "distribution"],
            },
            {
                "key": "order_value",
                "label": "Auftragswert",
                "tries": 2,
                "timeout_ms": 1000,
                "input": {"type": "number", "min_digits": 1, "max_digits": 6},
                "aggregations": ["count", "sum", "max"],
            },
        ]
    doc = {
        "id": profile_id,
        "tenant_id": tenant,
        "created_at": NOW,
        "updated_at": NOW,
        "name": "Nachbefragung",
        "criteria": criteria,
        "prompts": {"welcome": {"text": "Willkommen"}, "goodbye": {"text": "Danke"}},
    }
    doc.update(extra)
    return StoredProfile.model_validate(doc)


def code_map(
    tenant: str = "acme", code_map_id: str = "grades", body: dict[str, Any] | None = None
) -> StoredCodeMap:
    return StoredCodeMap.model_validate(
        {
            "id": code_map_id,
            "tenant_id": tenant,
            "created_at": NOW,
            "updated_at": NOW,
            **(body or GRADES),
        }
    )


def pool(tenant: str, pool_id: str, numbers: list[str], profile_id: str | None) -> StoredPool:
    return StoredPool.model_validate(
        {
            "id": pool_id,
            "tenant_id": tenant,
            "created_at": NOW,
            "updated_at": NOW,
            "name": pool_id,
            "numbers": numbers,
            "profile_id": profile_id,
        }
    )


def assignment(tenant: str, number: str, profile_id: str) -> StoredAssignment:
    return StoredAssignment(tenant_id=tenant, number=number, profile_id=profile_id, updated_at=NOW)


def kv_key_of(obj: BaseModel) -> tuple[str, str]:
    if isinstance(obj, StoredProfile):
        return names.KV_PROFILES, names.kv_key(obj.tenant_id, obj.id)
    if isinstance(obj, StoredCodeMap):
        return names.KV_CODE_MAPS, names.kv_key(obj.tenant_id, obj.id)
    if isinstance(obj, StoredPool):
        return names.KV_POOLS, names.kv_key(obj.tenant_id, obj.id)
    if isinstance(obj, StoredAssignment):
        return names.KV_NUMBERS, names.number_key(obj.tenant_id, obj.number)
    raise TypeError(type(obj))


async def _kv_put(url: str, objs: Iterable[BaseModel]) -> list[int]:
    nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        revisions = []
        for obj in objs:
            bucket, key = kv_key_of(obj)
            kv = await js.key_value(bucket)
            revisions.append(await kv.put(key, obj.model_dump_json().encode()))
        return revisions
    finally:
        await nc.close()


def kv_put(url: str, *objs: BaseModel) -> list[int]:
    """Write Stored* objects where the API would; returns their KV revisions."""
    return asyncio.run(_kv_put(url, objs))


async def _kv_delete(url: str, bucket: str, key: str) -> None:
    nc = await nats.connect(url, connect_timeout=3)
    try:
        await (await nc.jetstream().key_value(bucket)).delete(key)
    finally:
        await nc.close()


def kv_delete(url: str, bucket: str, key: str) -> None:
    asyncio.run(_kv_delete(url, bucket, key))


def standard_config(url: str, tenant: str = "acme") -> dict[str, Any]:
    """Profile p1 (yes/no, grade, order value) on +4930111 (own assignment) and on the pool
    numbers +4930222/+4930223; +4930999 belongs to the tenant's pool without a profile."""
    revs = kv_put(
        url,
        code_map(tenant),
        profile(tenant),
        pool(tenant, "pool-a", ["+493022200", "+493022300"], "p1"),
        pool(tenant, "pool-none", ["+493099900"], None),
        assignment(tenant, "+493011100", "p1"),
    )
    return {"profile_revision": revs[1]}


# -- the events stream ---------------------------------------------------------------------
async def _events(url: str, subject: str) -> list[dict[str, Any]]:
    nc = await nats.connect(url, connect_timeout=3)
    try:
        js = nc.jetstream()
        info = await js.stream_info(names.EVENTS_STREAM, subjects_filter=subject)
        total = sum((info.state.subjects or {}).values())
        out: list[dict[str, Any]] = []
        if total == 0:
            return out
        sub = await js.pull_subscribe(subject, stream=names.EVENTS_STREAM)
        deadline = time.monotonic() + 20
        try:
            while len(out) < total and time.monotonic() < deadline:
                try:
                    msgs = await sub.fetch(min(500, total - len(out)), timeout=1)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for m in msgs:
                    doc = json.loads(m.data)
                    doc["_msg_id"] = (m.headers or {}).get("Nats-Msg-Id")
                    out.append(doc)
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def stream_events(url: str, kind: str = "answers") -> list[dict[str, Any]]:
    """Every answer (or survey) event on the stream, with its Nats-Msg-Id."""
    prefix = names.ANSWERS_SUBJECT_PREFIX if kind == "answers" else names.SURVEYS_SUBJECT_PREFIX
    return asyncio.run(_events(url, f"{prefix}.*"))


async def _stream_count(url: str) -> int:
    nc = await nats.connect(url, connect_timeout=3)
    try:
        return int((await nc.jetstream().stream_info(names.EVENTS_STREAM)).state.messages)
    finally:
        await nc.close()


def stream_count(url: str) -> int:
    return asyncio.run(_stream_count(url))


# -- the IVR as a subprocess ---------------------------------------------------------------
class IvrProcess:
    """``python -m convtrack ivr`` on free ports, with its logs in a file."""

    def __init__(self, nats_url: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_dir / f"ivr-{self.port}.log"
        self.env = {
            **os.environ,
            "CT_NATS_URL": nats_url,
            "CT_IVR_LISTEN": f"127.0.0.1:{self.port}",
            "CT_IVR_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "CT_API_PUBLIC_URL": "http://api.test:8080",
            "CT_LOG_LEVEL": "INFO",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> IvrProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convtrack", "ivr"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            wait_for(self.ready, 20, 0.1, "IVR /readyz")
        return self

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"IVR exited {self.proc.returncode}: {self.logs()[-2000:]}")
        return self._get("/readyz")[0] == 200

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {"name{labels}": value}."""
        out: dict[str, float] = {}
        for line in self._get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if hasattr(self, "_log"):
            self._log.close()
