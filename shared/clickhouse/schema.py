"""The ClickHouse schema as versioned migrations (documented for BI users in docs/clickhouse.md).

Rules that keep one schema valid on ClickHouse 18.16 and on current releases:
- only DateTime (no DateTime64), no LowCardinality, no SimpleAggregateFunction, no TTL in the base;
- aggregates live in AggregatingMergeTree tables fed by ``MATERIALIZED VIEW ... TO``;
- every time function gets an explicit 'UTC' so server and session time zones never matter.

``{on_cluster}`` and ``{engine:<table>}`` / ``{agg_engine:<table>}`` placeholders are filled by
``migrations.render`` for a single node or for a replicated cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Dimensions every aggregate is keyed by.
DIMENSIONS = "tenant_id, profile_id, criterion_key, tracking_number, pool_id"
# The per-profile aggregates drop number and pool: a profile's report in a non-UTC time zone
# merges hour rows, and a profile with many numbers would otherwise have many per hour.
PROFILE_DIMENSIONS = "tenant_id, profile_id, criterion_key"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]
    # Applied only where the server is at least this version (e.g. TTL); base schema has none.
    min_server: tuple[int, ...] = field(default=())
    # Run after `statements`, with {cutoff} = the server's now() taken just before them: fills
    # a new aggregate from rows inserted before its materialized view existed.
    backfill: list[str] = field(default_factory=list)


ANSWERS = """
CREATE TABLE IF NOT EXISTS answers {on_cluster} (
    tenant_id String,
    answer_id String,
    survey_id String,
    call_uuid String,
    profile_id String,
    profile_version UInt32,
    criterion_key String,
    criterion_index UInt8,
    tracking_number String,
    pool_id String,
    caller String,
    agent String,
    digits String,
    code String,
    label String,
    value Nullable(Float64),
    success UInt8,
    status Enum8('ok' = 1, 'invalid' = 2, 'timeout' = 3, 'hangup' = 4),
    attempts UInt8,
    answered_at DateTime('UTC'),
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = {engine:answers}
PARTITION BY toYYYYMM(answered_at)
ORDER BY (tenant_id, profile_id, answered_at, answer_id)
"""

SURVEYS = """
CREATE TABLE IF NOT EXISTS surveys {on_cluster} (
    tenant_id String,
    survey_id String,
    call_uuid String,
    profile_id String,
    profile_version UInt32,
    tracking_number String,
    pool_id String,
    caller String,
    agent String,
    status Enum8('complete' = 1, 'incomplete' = 2, 'no_profile' = 3),
    answers UInt8,
    started_at DateTime('UTC'),
    ended_at DateTime('UTC'),
    inserted_at DateTime('UTC') DEFAULT now()
) ENGINE = {engine:surveys}
PARTITION BY toYYYYMM(started_at)
ORDER BY (tenant_id, profile_id, started_at, survey_id)
"""


def _figures_table(name: str, bucket: str, dims: str = DIMENSIONS) -> str:
    dim_columns = ",\n    ".join(f"{d.strip()} String" for d in dims.split(","))
    order_rest = "".join(f", {d.strip()}" for d in dims.split(",")[3:])
    return f"""
CREATE TABLE IF NOT EXISTS {name} {{on_cluster}} (
    {dim_columns},
    {bucket},
    answers AggregateFunction(count),
    errors AggregateFunction(countIf, UInt8),
    successes AggregateFunction(countIf, UInt8),
    valued AggregateFunction(countIf, UInt8),
    value_sum AggregateFunction(sumIf, Float64, UInt8),
    value_min AggregateFunction(minIf, Float64, UInt8),
    value_max AggregateFunction(maxIf, Float64, UInt8)
) ENGINE = {{agg_engine:{name}}}
PARTITION BY toYYYYMM({bucket.split()[0]})
ORDER BY (tenant_id, profile_id, criterion_key, {bucket.split()[0]}{order_rest})
"""


def _figures_select(bucket_expr: str, bucket: str, dims: str = DIMENSIONS) -> str:
    return f"""
SELECT
    {dims},
    {bucket_expr} AS {bucket},
    countState() AS answers,
    countIfState(status != 'ok') AS errors,
    countIfState(status = 'ok' AND success = 1) AS successes,
    countIfState(status = 'ok' AND isNotNull(value)) AS valued,
    sumIfState(ifNull(value, 0.), status = 'ok' AND isNotNull(value)) AS value_sum,
    minIfState(ifNull(value, 0.), status = 'ok' AND isNotNull(value)) AS value_min,
    maxIfState(ifNull(value, 0.), status = 'ok' AND isNotNull(value)) AS value_max
FROM answers
"""


def _figures_view(
    name: str, target: str, bucket_expr: str, bucket: str, dims: str = DIMENSIONS, where: str = ""
) -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {{on_cluster}} TO {target} AS"
        + _figures_select(bucket_expr, bucket, dims)
        + (f"WHERE {where}\n" if where else "")
        + f"GROUP BY {dims}, {bucket}\n"
    )


def _labels_view(
    name: str, target: str, bucket_expr: str, bucket: str, dims: str = DIMENSIONS, where: str = ""
) -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {{on_cluster}} TO {target} AS"
        + _labels_select(bucket_expr, bucket, dims)
        + (f"AND {where}\n" if where else "")
        + f"GROUP BY {dims}, {bucket}, code, label\n"
    )


def _labels_table(name: str, bucket: str, dims: str = DIMENSIONS) -> str:
    col = bucket.split()[0]
    dim_columns = ",\n    ".join(f"{d.strip()} String" for d in dims.split(","))
    order_rest = "".join(f", {d.strip()}" for d in dims.split(",")[3:])
    return f"""
CREATE TABLE IF NOT EXISTS {name} {{on_cluster}} (
    {dim_columns},
    {bucket},
    code String,
    label String,
    answers AggregateFunction(count)
) ENGINE = {{agg_engine:{name}}}
PARTITION BY toYYYYMM({col})
ORDER BY (tenant_id, profile_id, criterion_key, {col}, code, label{order_rest})
"""


def _labels_select(bucket_expr: str, bucket: str, dims: str = DIMENSIONS) -> str:
    return f"""
SELECT
    {dims},
    {bucket_expr} AS {bucket},
    code, label,
    countState() AS answers
FROM answers
WHERE status = 'ok' AND label != ''
"""


SURVEYS_HOURLY = """
CREATE TABLE IF NOT EXISTS surveys_hourly {on_cluster} (
    tenant_id String,
    profile_id String,
    tracking_number String,
    pool_id String,
    hour DateTime('UTC'),
    status Enum8('complete' = 1, 'incomplete' = 2, 'no_profile' = 3),
    surveys AggregateFunction(count)
) ENGINE = {agg_engine:surveys_hourly}
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, profile_id, hour, status, tracking_number, pool_id)
"""

SURVEYS_HOURLY_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS surveys_hourly_mv {on_cluster} TO surveys_hourly AS
SELECT tenant_id, profile_id, tracking_number, pool_id,
    toStartOfHour(started_at, 'UTC') AS hour, status, countState() AS surveys
FROM surveys
GROUP BY tenant_id, profile_id, tracking_number, pool_id, hour, status
"""


def _bi_figures_view(name: str, source: str, bucket: str) -> str:
    return f"""
CREATE VIEW IF NOT EXISTS {name} {{on_cluster}} AS
SELECT
    tenant_id, profile_id, criterion_key, tracking_number, pool_id, {bucket},
    countMerge(answers) AS answers,
    countIfMerge(errors) AS errors,
    errors / answers AS error_rate,
    countIfMerge(successes) AS successes,
    successes / answers AS success_rate,
    countIfMerge(valued) AS valued_answers,
    sumIfMerge(value_sum) AS value_sum,
    if(valued_answers > 0, minIfMerge(value_min), NULL) AS value_min,
    if(valued_answers > 0, maxIfMerge(value_max), NULL) AS value_max,
    if(valued_answers > 0, value_sum / valued_answers, NULL) AS value_avg
FROM {source}
GROUP BY tenant_id, profile_id, criterion_key, tracking_number, pool_id, {bucket}
"""


def _bi_labels_view(name: str, source: str, bucket: str) -> str:
    return f"""
CREATE VIEW IF NOT EXISTS {name} {{on_cluster}} AS
SELECT tenant_id, profile_id, criterion_key, tracking_number, pool_id, {bucket}, code, label,
    countMerge(answers) AS answers
FROM {source}
GROUP BY tenant_id, profile_id, criterion_key, tracking_number, pool_id, {bucket}, code, label
"""


# A new aggregate over existing rows: its view takes rows inserted from {cutoff} on, the
# migration's backfill those before, so none is missed or counted twice while inserts go on.
AFTER_CUTOFF = "inserted_at >= toDateTime('{cutoff}', 'UTC')"

HOUR = "hour DateTime('UTC')"
DAY = "day Date"
HOUR_EXPR = "toStartOfHour(answered_at, 'UTC')"
DAY_EXPR = "toDate(answered_at, 'UTC')"

MIGRATIONS: list[Migration] = [
    Migration(1, "raw answers and surveys", [ANSWERS, SURVEYS]),
    Migration(
        2,
        "hour and day aggregates with materialized views",
        [
            _figures_table("answers_hourly", HOUR),
            _figures_view("answers_hourly_mv", "answers_hourly", HOUR_EXPR, "hour"),
            _figures_table("answers_daily", DAY),
            _figures_view("answers_daily_mv", "answers_daily", DAY_EXPR, "day"),
            _labels_table("answer_labels_hourly", HOUR),
            _labels_view("answer_labels_hourly_mv", "answer_labels_hourly", HOUR_EXPR, "hour"),
            _labels_table("answer_labels_daily", DAY),
            _labels_view("answer_labels_daily_mv", "answer_labels_daily", DAY_EXPR, "day"),
            SURVEYS_HOURLY,
            SURVEYS_HOURLY_MV,
        ],
    ),
    Migration(
        3,
        "readable views for BI tools",
        [
            _bi_figures_view("conversion_hourly", "answers_hourly", "hour"),
            _bi_figures_view("conversion_daily", "answers_daily", "day"),
            _bi_labels_view("conversion_labels_hourly", "answer_labels_hourly", "hour"),
            _bi_labels_view("conversion_labels_daily", "answer_labels_daily", "day"),
        ],
    ),
    Migration(
        4,
        "retention: raw rows kept 400 days (servers with TTL only)",
        [
            "ALTER TABLE answers {on_cluster} MODIFY TTL answered_at + INTERVAL 400 DAY",
            "ALTER TABLE surveys {on_cluster} MODIFY TTL started_at + INTERVAL 400 DAY",
        ],
        min_server=(19, 6),
    ),
    Migration(
        5,
        "per-profile hour aggregates (reports in any time zone without number/pool rows)",
        [
            _figures_table("answers_profile_hourly", HOUR, PROFILE_DIMENSIONS),
            _figures_view(
                "answers_profile_hourly_mv",
                "answers_profile_hourly",
                HOUR_EXPR,
                "hour",
                PROFILE_DIMENSIONS,
                AFTER_CUTOFF,
            ),
            _labels_table("answer_labels_profile_hourly", HOUR, PROFILE_DIMENSIONS),
            _labels_view(
                "answer_labels_profile_hourly_mv",
                "answer_labels_profile_hourly",
                HOUR_EXPR,
                "hour",
                PROFILE_DIMENSIONS,
                AFTER_CUTOFF,
            ),
        ],
        backfill=[
            "INSERT INTO answers_profile_hourly"
            + _figures_select(HOUR_EXPR, "hour", PROFILE_DIMENSIONS)
            + f"WHERE NOT ({AFTER_CUTOFF})\n"
            + f"GROUP BY {PROFILE_DIMENSIONS}, hour",
            "INSERT INTO answer_labels_profile_hourly"
            + _labels_select(HOUR_EXPR, "hour", PROFILE_DIMENSIONS)
            + f"AND NOT ({AFTER_CUTOFF})\n"
            + f"GROUP BY {PROFILE_DIMENSIONS}, hour, code, label",
        ],
    ),
]
