"""The ClickHouse schema on both targets: clickhouse-server 18.16 and chDB (current ClickHouse).

The aggregate figures themselves are proven equal on both targets in test_pipeline.py; here:
migrations are idempotent, recorded, and leave the same objects on both servers.
"""

from __future__ import annotations

from typing import cast

import pytest

from shared.clickhouse.client import ClickHouse
from shared.clickhouse.migrations import Target, applied_versions, migrate, pending, render_all
from shared.clickhouse.schema import MIGRATIONS

OBJECTS = {
    "answers", "surveys", "schema_migrations",
    "answers_hourly", "answers_daily", "answer_labels_hourly", "answer_labels_daily",
    "surveys_hourly",
    "answers_hourly_mv", "answers_daily_mv", "answer_labels_hourly_mv", "answer_labels_daily_mv",
    "surveys_hourly_mv",
    "conversion_hourly", "conversion_daily", "conversion_labels_hourly", "conversion_labels_daily",
}  # fmt: skip


@pytest.fixture(params=["server", "chdb"])
def ch(request: pytest.FixtureRequest) -> ClickHouse:
    fixture = "server_ch" if request.param == "server" else "chdb_ch"
    return cast(ClickHouse, request.getfixturevalue(fixture))


def _tables(ch: ClickHouse) -> set[str]:
    return {
        str(r[0])
        for r in ch.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }


def test_every_migration_applied_and_recorded(ch: ClickHouse) -> None:
    assert applied_versions(ch) == {m.version for m in MIGRATIONS}
    assert pending(ch) == []
    assert _tables(ch) >= OBJECTS


def test_migrate_again_changes_nothing(ch: ClickHouse) -> None:
    before = ch.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    assert migrate(ch) == []
    after = ch.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    assert before == after


def test_retention_ttl_only_where_the_server_has_ttl(ch: ClickHouse) -> None:
    ddl = str(ch.execute("SELECT create_table_query FROM system.tables WHERE name = 'answers'"
                         " AND database = currentDatabase()")[0][0])  # fmt: skip
    has_ttl = ch.server_version() >= (19, 6)
    assert ("TTL" in ddl) == has_ttl


def test_cluster_variant_renders_replicated_engines() -> None:
    statements = render_all(Target(cluster="ct"))
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    assert creates and all("ON CLUSTER ct" in s for s in creates)
    assert all("Replicated" in s for s in creates)
