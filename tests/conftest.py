"""Fixtures on real servers: nats-server and clickhouse-server through the project's launcher,
chDB (current ClickHouse) in-process. Every server listens on a free loopback port."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.clickhouse.client import ChdbClickHouse, ClickHouse, ServerClickHouse
from shared.clickhouse.migrations import migrate
from shared.nats_bootstrap import bootstrap_url
from shared.stack import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One NATS + ClickHouse for the session; tests isolate by database / fresh NATS."""
    s = LocalStack(tmp_path_factory.mktemp("stack"))
    s.up()
    yield s
    s.down()


@pytest.fixture
def nats_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A private nats-server (bootstrapped) for one test: fresh streams, free to kill."""
    s = LocalStack(tmp_path / "nats-stack")
    s.start_nats()
    asyncio.run(bootstrap_url([s.nats_url]))
    yield s
    s.stop_nats(kill=True)


@pytest.fixture
def nats_url(nats_stack: LocalStack) -> str:
    return nats_stack.nats_url


@pytest.fixture
def clickhouse_url(stack: LocalStack) -> Iterator[str]:
    """A fresh, migrated database on the shared clickhouse-server."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    admin = ServerClickHouse(stack.clickhouse_url)
    admin.execute(f"CREATE DATABASE {db}")
    url = stack.clickhouse_url.rsplit("/", 1)[0] + f"/{db}"
    ch = ServerClickHouse(url)
    migrate(ch)
    ch.close()
    yield url
    admin.execute(f"DROP DATABASE IF EXISTS {db}")
    admin.close()


@pytest.fixture
def server_ch(clickhouse_url: str) -> Iterator[ClickHouse]:
    ch = ServerClickHouse(clickhouse_url)
    yield ch
    ch.close()


@pytest.fixture
def chdb_ch(tmp_path: Path) -> Iterator[ClickHouse]:
    """Current ClickHouse (chDB 26.x) with the same migrations."""
    ch = ChdbClickHouse(str(tmp_path / "chdb"))
    migrate(ch)
    yield ch
    ch.close()


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """NATS and ClickHouse of one test's own, for fault tests that stop and restart them."""
    s = LocalStack(tmp_path / "private-stack")
    s.up()
    asyncio.run(bootstrap_url([s.nats_url]))
    ch = ServerClickHouse(s.clickhouse_url)
    migrate(ch)
    ch.close()
    yield s
    s.stop_nats(kill=True)
    s.stop_clickhouse(kill=True)
