"""A thin ClickHouse client: one interface over clickhouse-driver (server) and chDB (in-process).

Parameters are always passed separately (``%(name)s`` placeholders) and escaped by
clickhouse-driver's own quoting, so user input never reaches SQL as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from clickhouse_driver import Client
from clickhouse_driver.util.escape import escape_param

Params = dict[str, Any] | None


class ClickHouse(Protocol):
    """What the services need from ClickHouse; both implementations below provide it."""

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int: ...

    def server_version(self) -> tuple[int, ...]: ...

    def close(self) -> None: ...


def parse_clickhouse_url(url: str) -> dict[str, Any]:
    """``clickhouse://user:pass@host:9000/db`` -> clickhouse-driver keyword arguments."""
    parts = urlparse(url)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ValueError(f"not a clickhouse:// URL: {url!r}")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or (9440 if parts.scheme == "clickhouses" else 9000),
        "user": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "database": (parts.path or "/default").lstrip("/") or "default",
        "secure": parts.scheme == "clickhouses",
    }


class ServerClickHouse:
    """clickhouse-driver over the native protocol. Not thread-safe: one per thread/task."""

    def __init__(self, url: str, connect_timeout: float = 5, send_receive_timeout: float = 60):
        self.url = url
        self._client = Client(
            **parse_clickhouse_url(url),
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            settings={"use_client_time_zone": False},
        )

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        return list(self._client.execute(sql, params))

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        return int(self._client.execute(sql, rows) or 0)

    def server_version(self) -> tuple[int, ...]:
        raw = self.execute("SELECT version()")[0][0]
        return tuple(int(p) for p in str(raw).split(".") if p.isdigit())

    def close(self) -> None:
        self._client.disconnect()


class ChdbClickHouse:
    """In-process current ClickHouse (chDB): the same SQL, proven on today's releases."""

    def __init__(self, path: str):
        from chdb import session as chs  # dev dependency, imported only where used

        self._session = chs.Session(path)

    def _render(self, sql: str, params: Params) -> str:
        return sql % {k: literal(v) for k, v in params.items()} if params else sql

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        import json

        result = self._session.query(self._render(sql, params), "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        if not text.strip():
            return []
        doc = json.loads(text)
        types = [c["type"] for c in doc.get("meta", [])]
        return [
            tuple(_convert(v, t) for v, t in zip(row, types, strict=True)) for row in doc["data"]
        ]

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        values = ", ".join("(" + ", ".join(str(literal(v)) for v in row) + ")" for row in rows)
        self._session.query(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")
        return len(rows)

    def server_version(self) -> tuple[int, ...]:
        raw = self.execute("SELECT version()")[0][0]
        return tuple(int(p) for p in str(raw).split(".") if p.isdigit())

    def close(self) -> None:
        self._session.close()


def literal(value: Any) -> Any:
    """A SQL literal for chDB, quoted exactly as clickhouse-driver quotes client-side params."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S") + "'"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(str(literal(v)) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return escape_param(value, None)


def _convert(value: Any, ch_type: str) -> Any:
    """JSONCompact values back to what clickhouse-driver returns for the same type."""
    if value is None:
        return None
    base = ch_type
    if base.startswith("Nullable("):
        base = base[len("Nullable(") : -1]
    if base.startswith("LowCardinality("):
        base = base[len("LowCardinality(") : -1]
    if base.startswith(("UInt", "Int")):
        return int(value)
    if base.startswith("Float") or base.startswith("Decimal"):
        return float(value)
    if base == "Date":
        return date.fromisoformat(value)
    if base.startswith("DateTime"):
        # Every DateTime column of the schema is DateTime('UTC'); match clickhouse-driver.
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if base.startswith("Array("):
        inner = base[len("Array(") : -1]
        return [_convert(v, inner) for v in value]
    return value


def connect(url: str) -> ClickHouse:
    return ServerClickHouse(url)
