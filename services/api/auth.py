"""API keys: ``Authorization: Bearer <key>`` maps to one tenant, read-write or read-only (viewer).

Two sources, both optional and combinable:
- ``CT_API_KEYS`` (development): ``tenant:key[:viewer]`` pairs separated by commas, keys in clear.
- ``CT_API_KEYS_FILE`` (production): a file of ``tenant:sha256hex[:viewer]`` lines (``#`` starts a
  comment), typically a mounted Kubernetes Secret. Only hashes are on disk, so the file leaking
  does not leak keys. The file is re-read when its modification time changes, so a rotated
  Secret takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.ids import TENANT_RE

HASH_RE_LEN = 64
FILE_RECHECK_S = 2.0


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    can_write: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A random key for ``convtrack api --hash-key`` (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)


def _parse_entry(entry: str, hashed: bool, where: str) -> tuple[str, Principal]:
    parts = entry.strip().split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "viewer"):
        raise ValueError(f"{where}: expected tenant:key[:viewer], got {entry.strip()!r}")
    tenant, key = parts[0], parts[1]
    if not TENANT_RE.fullmatch(tenant):
        raise ValueError(f"{where}: tenant {tenant!r} is not a valid tenant id")
    if not key:
        raise ValueError(f"{where}: empty key for tenant {tenant!r}")
    if hashed:
        key = key.lower()
        if len(key) != HASH_RE_LEN or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"{where}: {tenant!r} needs a sha256 hex digest, not a clear key")
    digest = key if hashed else hash_key(key)
    return digest, Principal(tenant_id=tenant, can_write=len(parts) == 2)


def parse_keys(spec: str) -> dict[str, Principal]:
    """``CT_API_KEYS`` -> {sha256(key): principal}."""
    out: dict[str, Principal] = {}
    for n, entry in enumerate(e for e in spec.split(",") if e.strip()):
        digest, principal = _parse_entry(entry, hashed=False, where=f"CT_API_KEYS entry {n + 1}")
        out[digest] = principal
    return out


def parse_keys_file(text: str, name: str = "keys file") -> dict[str, Principal]:
    out: dict[str, Principal] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            digest, principal = _parse_entry(line, hashed=True, where=f"{name} line {n}")
            out[digest] = principal
    return out


class KeyRing:
    """Looks up a presented key by its sha256 digest in constant time per candidate."""

    def __init__(self, keys: str = "", keys_file: str = "") -> None:
        self._static = parse_keys(keys)
        self._file = Path(keys_file) if keys_file else None
        self._file_keys: dict[str, Principal] = {}
        self._file_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if self._file is not None:
            self._reload(force=True)

    @property
    def empty(self) -> bool:
        return not self._static and not self._file_keys

    def _reload(self, force: bool = False) -> None:
        assert self._file is not None
        now = time.monotonic()
        if not force and now - self._checked_at < FILE_RECHECK_S:
            return
        with self._lock:
            self._checked_at = now
            try:
                mtime = os.stat(self._file).st_mtime
            except FileNotFoundError:
                if force:
                    raise
                return  # keep the last good keys while a Secret is being swapped
            if force or mtime != self._file_mtime:
                self._file_keys = parse_keys_file(self._file.read_text(), str(self._file))
                self._file_mtime = mtime

    def lookup(self, key: str) -> Principal | None:
        if self._file is not None:
            self._reload()
        digest = hash_key(key)
        found: Principal | None = None
        for table in (self._static, self._file_keys):
            for known, principal in table.items():
                if hmac.compare_digest(known, digest):
                    found = principal
        return found
