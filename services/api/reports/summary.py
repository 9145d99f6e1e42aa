"""The summary report: per criterion count, error/success rate, sum/min/max/avg, distribution.

Figures are built from mergeable partials (counts, sums, minima, maxima, label counts), one
partial per (criterion, bucket, group) and time segment (see plan.py). Partials of the same key
from different segments are merged in Python, and so are the totals, so every figure is exact
whatever mix of raw, hourly and daily rows answered it.

Everything the user chooses reaches ClickHouse as a parameter (``%(name)s``); the only text
spliced into SQL comes from the fixed tables below, picked by validated enums.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.api.reports.models import (
    CriterionFigures,
    DistributionEntry,
    GroupBy,
    SummaryReport,
    SummaryRow,
)
from services.api.reports.plan import Interval, Segment, Source, plan_segments
from shared.clickhouse.client import ClickHouse
from shared.domain import Aggregation

FIGURE_TABLE: dict[Source, str] = {
    "raw": "answers",
    "hourly": "answers_hourly",
    "daily": "answers_daily",
}
LABEL_TABLE: dict[Source, str] = {
    "raw": "answers",
    "hourly": "answer_labels_hourly",
    "daily": "answer_labels_daily",
}
# Without grouping, hour rows come from the per-profile tables (no number/pool dimension): a
# profile with many numbers has far fewer rows to merge there (schema migration 5).
PROFILE_HOURLY_FIGURES = "answers_profile_hourly"
PROFILE_HOURLY_LABELS = "answer_labels_profile_hourly"
TIME_COLUMN: dict[Source, str] = {"raw": "answered_at", "hourly": "hour", "daily": "day"}


def figure_table(source: Source, group_by: GroupBy) -> str:
    if source == "hourly" and group_by == "none":
        return PROFILE_HOURLY_FIGURES
    return FIGURE_TABLE[source]


def label_table(source: Source, group_by: GroupBy) -> str:
    if source == "hourly" and group_by == "none":
        return PROFILE_HOURLY_LABELS
    return LABEL_TABLE[source]


GROUP_COLUMN: dict[GroupBy, str] = {"none": "''", "number": "tracking_number", "pool": "pool_id"}

# Partial figures, in the order Partial.add reads them: (name, from aggregate states, from raw
# rows with the conditions of the materialized views in schema.py, what it is when skipped).
_VALUED = "status = 'ok' AND isNotNull(value)"
PARTIALS: list[tuple[str, str, str, str]] = [
    ("n", "countMerge(answers)", "count()", ""),
    ("errors", "countIfMerge(errors)", "countIf(status != 'ok')", "toUInt64(0)"),
    ("successes", "countIfMerge(successes)", "countIf(status = 'ok' AND success = 1)",
     "toUInt64(0)"),
    ("valued", "countIfMerge(valued)", f"countIf({_VALUED})", "toUInt64(0)"),
    ("vsum", "sumIfMerge(value_sum)", f"sumIf(ifNull(value, 0.), {_VALUED})", "toFloat64(0)"),
    ("vmin", "minIfMerge(value_min)", f"minIf(ifNull(value, 0.), {_VALUED})", "toFloat64(0)"),
    ("vmax", "maxIfMerge(value_max)", f"maxIf(ifNull(value, 0.), {_VALUED})", "toFloat64(0)"),
]  # fmt: skip
# Which partials a figure needs. Merging aggregate states is the bulk of a report's cost, so
# partials no criterion asks for are not merged at all.
NEEDS: dict[str, set[str]] = {
    "count": {"n"},
    "error_rate": {"errors"},
    "success_rate": {"successes"},
    "sum": {"valued", "vsum"},
    "avg": {"valued", "vsum"},
    "min": {"valued", "vmin"},
    "max": {"valued", "vmax"},
    "distribution": set(),
}


def partial_columns(aggregations: set[str], raw: bool) -> str:
    wanted = {"n"}.union(*(NEEDS[a] for a in aggregations))
    columns = []
    for name, from_states, from_raw, skipped in PARTIALS:
        expr = (from_raw if raw else from_states) if name in wanted else skipped
        columns.append(f"{expr} AS {name}")
    return ", ".join(columns)


def computable(aggregations: set[str]) -> list[Aggregation]:
    """The figures the partials fetched for ``aggregations`` can give."""
    return [a for a in ALL_AGGREGATIONS if a in aggregations or a == "count"]


def bucket_expression(source: Source, interval: Interval) -> str:
    """Start of the bucket holding a row: UInt32 epoch seconds for hours, a Date otherwise."""
    if source == "daily":  # only planned for tz=UTC, where the stored day is the bucket's day
        return {"hour": "", "day": "day", "week": "toMonday(day)", "month": "toStartOfMonth(day)"}[
            interval
        ]
    col = TIME_COLUMN[source]
    return {
        "hour": f"toUInt32(toStartOfHour({col}, %(tz)s))",
        "day": f"toDate({col}, %(tz)s)",
        "week": f"toMonday({col}, %(tz)s)",
        "month": f"toStartOfMonth({col}, %(tz)s)",
    }[interval]


def _range_condition(segment: Segment, n: int, params: dict[str, Any]) -> str:
    col = TIME_COLUMN[segment.source]
    lo, hi = f"s{n}_from", f"s{n}_to"
    if segment.source == "daily":
        params[lo], params[hi] = segment.start.date(), segment.end.date()
        return f"{col} >= toDate(%({lo})s) AND {col} < toDate(%({hi})s)"
    # Naive UTC datetimes: both clients render them as text that toDateTime(.., 'UTC') reads.
    params[lo] = segment.start.astimezone(UTC).replace(tzinfo=None)
    params[hi] = segment.end.astimezone(UTC).replace(tzinfo=None)
    return f"{col} >= toDateTime(%({lo})s, 'UTC') AND {col} < toDateTime(%({hi})s, 'UTC')"


@dataclass(frozen=True)
class SummaryQuery:
    tenant_id: str
    profile_id: str
    start: datetime
    end: datetime
    interval: Interval
    tz: str
    group_by: GroupBy = "none"
    raw_only: bool = False  # the benchmark's baseline: the same figures from the raw table
    # Figures the report needs; partials nobody needs are skipped. Default: every figure.
    aggregations: frozenset[str] = frozenset(NEEDS)

    def segments(self) -> list[Segment]:
        return plan_segments(self.start, self.end, self.interval, ZoneInfo(self.tz), self.raw_only)

    def _base_params(self) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "profile": self.profile_id, "tz": self.tz}

    def figures_sql(self) -> tuple[str, dict[str, Any]]:
        params = self._base_params()
        parts = []
        for n, seg in enumerate(self.segments()):
            figures = partial_columns(set(self.aggregations), raw=seg.source == "raw")
            parts.append(
                f"SELECT criterion_key, {bucket_expression(seg.source, self.interval)} AS bucket,"
                f" {GROUP_COLUMN[self.group_by]} AS grp, {figures}"
                f" FROM {figure_table(seg.source, self.group_by)}"
                f" WHERE tenant_id = %(tenant)s AND profile_id = %(profile)s"
                f" AND {_range_condition(seg, n, params)}"
                f" GROUP BY criterion_key, bucket, grp"
            )
        return "\nUNION ALL\n".join(parts), params

    def labels_sql(self) -> tuple[str, dict[str, Any]]:
        params = self._base_params()
        parts = []
        for n, seg in enumerate(self.segments()):
            raw = seg.source == "raw"
            parts.append(
                f"SELECT criterion_key, {bucket_expression(seg.source, self.interval)} AS bucket,"
                f" {GROUP_COLUMN[self.group_by]} AS grp, code, label,"
                f" {'count()' if raw else 'countMerge(answers)'} AS n"
                f" FROM {label_table(seg.source, self.group_by)}"
                f" WHERE tenant_id = %(tenant)s AND profile_id = %(profile)s"
                f" AND {_range_condition(seg, n, params)}"
                + (" AND status = 'ok' AND label != ''" if raw else "")
                + " GROUP BY criterion_key, bucket, grp, code, label"
            )
        return "\nUNION ALL\n".join(parts), params


@dataclass
class Partial:
    """Mergeable figures of one criterion in one bucket (and group)."""

    n: int = 0
    errors: int = 0
    successes: int = 0
    valued: int = 0
    vsum: float = 0.0
    vmin: float | None = None
    vmax: float | None = None
    labels: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, row: Sequence[Any]) -> None:
        n, errors, successes, valued, vsum, vmin, vmax = row
        self.n += int(n)
        self.errors += int(errors)
        self.successes += int(successes)
        if int(valued):
            # minIf/maxIf of no rows is 0 in ClickHouse, so they only count when valued > 0.
            self.valued += int(valued)
            self.vsum += float(vsum)
            self.vmin = float(vmin) if self.vmin is None else min(self.vmin, float(vmin))
            self.vmax = float(vmax) if self.vmax is None else max(self.vmax, float(vmax))

    def merge(self, other: Partial) -> None:
        self.n += other.n
        self.errors += other.errors
        self.successes += other.successes
        if other.valued:
            self.valued += other.valued
            self.vsum += other.vsum
            assert other.vmin is not None and other.vmax is not None
            self.vmin = other.vmin if self.vmin is None else min(self.vmin, other.vmin)
            self.vmax = other.vmax if self.vmax is None else max(self.vmax, other.vmax)
        for k, v in other.labels.items():
            self.labels[k] += v


BucketKey = int | date
PartialKey = tuple[str, BucketKey, str]  # criterion key, bucket, group


Partials = dict[PartialKey, Partial]


def fetch_figures(ch: ClickHouse, query: SummaryQuery) -> Partials:
    out: Partials = defaultdict(Partial)
    if query.segments():
        sql, params = query.figures_sql()
        for key, bucket, grp, *figures in ch.execute(sql, params):
            out[(key, bucket, grp)].add(figures)
    return out


def fetch_labels(ch: ClickHouse, query: SummaryQuery) -> Partials:
    """Label counts, only when a distribution is asked for (else nothing)."""
    out: Partials = defaultdict(Partial)
    if query.segments() and "distribution" in query.aggregations:
        sql, params = query.labels_sql()
        for key, bucket, grp, code, label, n in ch.execute(sql, params):
            out[(key, bucket, grp)].labels[(code, label)] += int(n)
    return out


def combine(figures: Partials, labels: Partials) -> Partials:
    out: Partials = defaultdict(Partial, figures)
    for key, p in labels.items():
        out[key].merge(p)
    return out


@dataclass(frozen=True)
class CriterionSpec:
    """What the report needs to know about a criterion of the profile."""

    key: str
    label: str
    aggregations: list[Aggregation]
    entries: list[tuple[str, str]] | None = None  # code map (code, label) for the distribution


ALL_AGGREGATIONS: list[Aggregation] = [
    "count", "error_rate", "success_rate", "sum", "min", "max", "avg", "distribution",
]  # fmt: skip


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(spec: CriterionSpec, p: Partial) -> CriterionFigures:
    chosen = set(spec.aggregations)
    f = CriterionFigures(key=spec.key, label=spec.label, aggregations=spec.aggregations, count=p.n)
    if "error_rate" in chosen:
        f.error_rate = _rate(p.errors, p.n)
    if "success_rate" in chosen:
        f.success_rate = _rate(p.successes, p.n)
    if "sum" in chosen:
        f.sum = p.vsum
    if "min" in chosen:
        f.min = p.vmin
    if "max" in chosen:
        f.max = p.vmax
    if "avg" in chosen:
        f.avg = p.vsum / p.valued if p.valued else None
    if "distribution" in chosen:
        pairs = list(spec.entries or [])
        # Labels found in the data but no longer in the code map (an older profile version).
        pairs += sorted(k for k in p.labels if k not in set(pairs))
        f.distribution = [
            DistributionEntry(
                code=code, label=label, count=p.labels.get((code, label), 0),
                share=_rate(p.labels.get((code, label), 0), p.n),
            )
            for code, label in pairs
        ]  # fmt: skip
    return f


def bucket_start(bucket: BucketKey, tz: ZoneInfo) -> datetime:
    if isinstance(bucket, int):
        return datetime.fromtimestamp(bucket, UTC).astimezone(tz)
    return datetime(bucket.year, bucket.month, bucket.day, tzinfo=tz)


def build_summary(
    query: SummaryQuery,
    specs: list[CriterionSpec],
    partials: dict[PartialKey, Partial],
    profile_version: int,
) -> SummaryReport:
    tz = ZoneInfo(query.tz)
    known = {s.key for s in specs}
    # Criteria present in the data but not in the current profile (removed since): shown after
    # the current ones with every figure fetched for the others (their own choice is unknown).
    extra = sorted({k for k, _, _ in partials} - known)
    fetched = computable(set(query.aggregations))
    all_specs = specs + [CriterionSpec(k, k, fetched) for k in extra]

    totals: dict[str, Partial] = defaultdict(Partial)
    cells: dict[tuple[BucketKey, str], dict[str, Partial]] = defaultdict(dict)
    for (key, bucket, grp), p in partials.items():
        totals[key].merge(p)
        cells[(bucket, grp)][key] = p

    rows = []
    for bucket, grp in sorted(cells, key=lambda c: (bucket_start(c[0], tz), c[1])):
        by_key = cells[(bucket, grp)]
        rows.append(
            SummaryRow(
                bucket=bucket_start(bucket, tz),
                tracking_number=grp if query.group_by == "number" else None,
                pool_id=grp if query.group_by == "pool" else None,
                criteria=[figures(s, by_key.get(s.key, Partial())) for s in all_specs],
            )
        )
    return SummaryReport(
        profile_id=query.profile_id,
        profile_version=profile_version,
        from_=query.start.astimezone(tz),
        to=query.end.astimezone(tz),
        tz=query.tz,
        interval=query.interval,
        group_by=query.group_by,
        criteria=[figures(s, totals.get(s.key, Partial())) for s in all_specs],
        rows=rows,
    )


def wanted_aggregations(specs: list[CriterionSpec]) -> frozenset[str]:
    """What the criteria ask for; a profile without criteria (never stored) gets everything."""
    return frozenset(a for s in specs for a in s.aggregations) if specs else frozenset(NEEDS)


def summary(
    ch: ClickHouse, query: SummaryQuery, specs: list[CriterionSpec], profile_version: int
) -> SummaryReport:
    """Both queries one after the other on one connection (the API runs them in parallel)."""
    query = replace(query, aggregations=wanted_aggregations(specs))
    partials = combine(fetch_figures(ch, query), fetch_labels(ch, query))
    return build_summary(query, specs, partials, profile_version)
