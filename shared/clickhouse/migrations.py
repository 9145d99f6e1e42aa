"""Versioned, idempotent migrations; applied versions are recorded in ``schema_migrations``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.clickhouse.client import ClickHouse
from shared.clickhouse.schema import MIGRATIONS, Migration

LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations {on_cluster} (
    version UInt32,
    name String,
    applied_at DateTime('UTC') DEFAULT now()
) ENGINE = {engine:schema_migrations}
ORDER BY version
"""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLACEHOLDER = re.compile(r"\{(engine|agg_engine):([a-z_]+)\}")


@dataclass(frozen=True)
class Target:
    """Single node (``cluster=""``) or a replicated cluster (Replicated* engines, ON CLUSTER)."""

    cluster: str = ""

    def render(self, statement: str) -> str:
        def engine(match: re.Match[str]) -> str:
            kind, table = match.group(1), match.group(2)
            base = "MergeTree()" if kind == "engine" else "AggregatingMergeTree()"
            if not self.cluster:
                return base
            name = base.removesuffix("()")
            return f"Replicated{name}('/clickhouse/tables/{{shard}}/ct/{table}', '{{replica}}')"

        on_cluster = f"ON CLUSTER {self.cluster}" if self.cluster else ""
        return _PLACEHOLDER.sub(engine, statement).replace("{on_cluster}", on_cluster).strip()


def applied_versions(ch: ClickHouse) -> set[int]:
    return {int(row[0]) for row in ch.execute("SELECT version FROM schema_migrations")}


def pending(ch: ClickHouse, migrations: list[Migration] = MIGRATIONS) -> list[Migration]:
    done = applied_versions(ch)
    return [m for m in migrations if m.version not in done]


def render_all(target: Target, migrations: list[Migration] = MIGRATIONS) -> list[str]:
    """Every statement for ``target`` (``convtrack migrate --print``)."""
    out = [target.render(LEDGER)]
    for migration in migrations:
        out.extend(target.render(s) for s in migration.statements)
        out.extend(target.render(s) for s in migration.backfill)
    return out


def _server_now(ch: ClickHouse) -> datetime:
    return datetime.fromtimestamp(int(ch.execute("SELECT toUInt32(now())")[0][0]), UTC)


def _apply(ch: ClickHouse, target: Target, migration: Migration) -> None:
    if not migration.backfill:
        for statement in migration.statements:
            ch.execute(target.render(statement))
        return
    # The views start counting at a cutoff slightly in the future; once the server clock has
    # passed it, the backfill adds exactly the rows inserted before it.
    # On a database without answers (a new install, every test) they count from the start.
    empty = int(ch.execute("SELECT count() FROM answers")[0][0]) == 0
    cutoff = EPOCH if empty else _server_now(ch) + timedelta(seconds=2)
    stamp = cutoff.strftime("%Y-%m-%d %H:%M:%S")
    for statement in migration.statements:
        ch.execute(target.render(statement).replace("{cutoff}", stamp))
    while not empty and _server_now(ch) <= cutoff:
        time.sleep(0.2)
    for statement in migration.backfill:
        ch.execute(target.render(statement).replace("{cutoff}", stamp))


def migrate(
    ch: ClickHouse, target: Target = Target(), migrations: list[Migration] = MIGRATIONS
) -> list[str]:
    """Apply what is missing; returns the names applied (or skipped for the server version)."""
    ch.execute(target.render(LEDGER))
    version = ch.server_version()
    applied: list[str] = []
    for migration in pending(ch, migrations):
        if migration.min_server and version < migration.min_server:
            # Recorded as applied: this server cannot have the feature, and re-checking on every
            # start would only repeat the skip. There is no `--force`: after a server upgrade,
            # delete the version's schema_migrations row and run `convtrack migrate` again.
            applied.append(f"{migration.version} {migration.name} (skipped on {version})")
        else:
            _apply(ch, target, migration)
            applied.append(f"{migration.version} {migration.name}")
        ch.insert("schema_migrations", ["version", "name"], [(migration.version, migration.name)])
    return applied
