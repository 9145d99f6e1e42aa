"""Migrations: idempotent, recorded, identical on ClickHouse 18.16 and current (chDB)."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.clickhouse.client import ClickHouse
from shared.clickhouse.migrations import Target, applied_versions, migrate, render_all
from shared.clickhouse.schema import MIGRATIONS
from shared.stack import LocalStack

TABLES = {
    "answers", "surveys", "answers_hourly", "answers_daily", "answer_labels_hourly",
    "answer_labels_daily", "surveys_hourly", "conversion_hourly", "conversion_daily",
    "conversion_labels_hourly", "conversion_labels_daily", "schema_migrations",
}  # fmt: skip


def _tables(ch: ClickHouse) -> set[str]:
    return {
        r[0]
        for r in ch.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }


def test_migrations_apply_once_on_both_targets(server_ch: ClickHouse, chdb_ch: ClickHouse) -> None:
    for ch in (server_ch, chdb_ch):
        assert _tables(ch) >= TABLES
        assert applied_versions(ch) == {m.version for m in MIGRATIONS}
        assert migrate(ch) == []  # second run: nothing pending
        rows = ch.execute("SELECT count() FROM schema_migrations")
        assert rows[0][0] == len(MIGRATIONS)


def test_ttl_only_where_the_server_supports_it(server_ch: ClickHouse, chdb_ch: ClickHouse) -> None:
    def create_sql(ch: ClickHouse) -> str:
        return str(ch.execute("SHOW CREATE TABLE answers")[0][0])

    assert "TTL" not in create_sql(server_ch)  # 18.16 has no TTL
    assert "TTL" in create_sql(chdb_ch)


def test_cluster_variant_uses_replicated_engines_on_cluster() -> None:
    sql = "\n".join(render_all(Target(cluster="ct")))
    assert "ON CLUSTER ct" in sql
    path = "'/clickhouse/tables/{shard}/ct/answers_hourly', '{replica}'"
    assert f"ReplicatedAggregatingMergeTree({path})" in sql
    assert "ENGINE = MergeTree()" not in sql
    single = "\n".join(render_all(Target()))
    assert "ON CLUSTER" not in single and "Replicated" not in single


def test_convtrack_migrate_and_stack_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack_dir = tmp_path / "cli-stack"
    cli = [sys.executable, "-m", "convtrack"]
    up = subprocess.run(
        [*cli, "stack", "up", "--dir", str(stack_dir)], capture_output=True, text=True, timeout=120
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        env_lines = (stack_dir / "env").read_text().split()
        assert env_lines[0].startswith("CT_NATS_URL=nats://127.0.0.1:")
        assert env_lines[1].startswith("CT_CLICKHOUSE_URL=clickhouse://")
        assert env_lines[0] in up.stdout
        env = {**os.environ, **dict(line.split("=", 1) for line in env_lines)}
        first = subprocess.run(
            [*cli, "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stderr
        assert "applied 1 raw answers and surveys" in first.stdout
        second = subprocess.run(
            [*cli, "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert "applied" not in second.stdout and second.returncode == 0
        status = subprocess.run(
            [*cli, "stack", "status", "--dir", str(stack_dir)], capture_output=True, text=True
        )
        assert status.returncode == 0 and "nats: running" in status.stdout
    finally:
        down = subprocess.run(
            [*cli, "stack", "down", "--dir", str(stack_dir)], capture_output=True, text=True
        )
    assert "nats: stopped" in down.stdout and "clickhouse: stopped" in down.stdout
    assert not LocalStack(stack_dir).status()["nats"]["running"]
    after = subprocess.run(
        [*cli, "stack", "status", "--dir", str(stack_dir)], capture_output=True, text=True
    )
    assert after.returncode == 3


def test_new_aggregate_backfills_rows_inserted_before_it(server_ch: ClickHouse) -> None:
    """Migration 5 on a database that already holds answers: exact, nothing counted twice."""
    from datetime import UTC, datetime

    from shared.clickhouse.migrations import _apply
    from shared.clickhouse.rows import ANSWER_COLUMNS, answer_row
    from shared.events import AnswerEvent

    def event(i: int) -> AnswerEvent:
        return AnswerEvent(
            tenant_id="acme", call_uuid=f"c{i}", answer_id=f"a{i}", survey_id=f"s{i}",
            criterion_key="grade", profile_id="p1", status="ok" if i % 4 else "invalid",
            code=str(i % 6 + 1), label=f"L{i % 6 + 1}", value=float(i % 6 + 1),
            answered_at=datetime(2026, 3, 2, i % 24, 5, tzinfo=UTC),
        )  # fmt: skip

    five = next(m for m in MIGRATIONS if m.version == 5)
    for table in ("answers_profile_hourly_mv", "answer_labels_profile_hourly_mv"):
        server_ch.execute(f"DROP TABLE {table}")
    for table in ("answers_profile_hourly", "answer_labels_profile_hourly"):
        server_ch.execute(f"DROP TABLE {table}")
    server_ch.insert("answers", ANSWER_COLUMNS, [answer_row(event(i)) for i in range(100)])
    _apply(server_ch, Target(), five)
    server_ch.insert("answers", ANSWER_COLUMNS, [answer_row(event(i)) for i in range(100, 150)])

    def totals(table: str, figures: str) -> list[tuple[object, ...]]:
        return server_ch.execute(f"SELECT {figures} FROM {table} WHERE profile_id = 'p1'")

    merged = "countMerge(answers), countIfMerge(errors), sumIfMerge(value_sum)"
    raw = "count(), countIf(status != 'ok'), sumIf(value, status = 'ok')"
    assert totals("answers_profile_hourly", merged) == totals("answers", raw)
    assert totals("answers_profile_hourly", merged)[0][0] == 150
    labels = "SELECT label, countMerge(answers) FROM answer_labels_profile_hourly GROUP BY label"
    raw_labels = "SELECT label, count() FROM answers WHERE status = 'ok' GROUP BY label"
    assert sorted(server_ch.execute(labels)) == sorted(server_ch.execute(raw_labels))
