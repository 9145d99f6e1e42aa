"""API benchmark (``make bench``): summary reports from the materialized views vs a raw scan,
and CRUD requests per second. Not a test: it prints figures.

In one run, on its own LocalStack (NATS + clickhouse-server 18.16) in a temporary directory:

1. load    - 10,000,000 answers are generated server-side (INSERT ... SELECT FROM numbers(), in
             1,000,000-row batches, so the materialized views fill as they would in production):
             one profile, three criteria, 90 days, 50 tracking numbers in 5 pools;
2. summary - the API (uvicorn, real HTTP) answers GET /v1/reports/summary for the whole 90 days
             (interval=day, tz=UTC: daily views; tz=Europe/Berlin: hourly views); p50/p99 over
             many requests;
3. raw     - the same figures computed from the raw answers table (the report code with
             raw_only=True), in the same run; the figures must be identical; ratio = raw / views;
4. crud    - code map create / read / replace / delete over HTTP, one client, requests/s.

Goals on a 2-core machine: summary p50 <= 50 ms and >= 10x faster than the raw scan.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from services.api.app import create_app
from services.api.reports.summary import CriterionSpec, SummaryQuery, summary
from shared.clickhouse.client import ServerClickHouse
from shared.clickhouse.migrations import migrate
from shared.nats_bootstrap import bootstrap_url
from shared.settings import Settings
from shared.stack import LocalStack, free_port

ANSWERS = 10_000_000
BATCH = 1_000_000
DAYS = 90
START = datetime(2025, 1, 1, tzinfo=UTC)
SUMMARY_REQUESTS = 60
RAW_RUNS = 5
CRUD_SECONDS = 10.0
GOALS = {"summary_p50_ms": 50.0, "ratio": 10.0}
KEY = "bench-key"

# One row per answer; criterion, code, status and value follow from the row number, so the load
# needs no client-side data at all. 1 in 17 answers is invalid, 1 in 19 a timeout.
LOAD_SQL = """
INSERT INTO answers (tenant_id, answer_id, survey_id, call_uuid, profile_id, profile_version,
    criterion_key, criterion_index, tracking_number, pool_id, caller, agent, digits, code, label,
    value, success, status, attempts, answered_at)
SELECT 'bench', toString(number), toString(intDiv(number, 3)), toString(intDiv(number, 3)),
    %(profile)s, 1, ['success', 'grade', 'order_value'][k + 1], k, n,
    concat('pool-', toString(intDiv(modulo(number, 50), 10))), '', '', digits, code, label,
    value, success,
    CAST(st, 'Enum8(\\'ok\\' = 1, \\'invalid\\' = 2, \\'timeout\\' = 3, \\'hangup\\' = 4)'), 1,
    toDateTime(%(start)s + intDiv(number * %(span)s, %(total)s), 'UTC')
FROM (
    SELECT number, modulo(number, 3) AS k,
        concat('+4930100', toString(10 + modulo(number, 50))) AS n,
        multiIf(modulo(number, 17) = 0, 'invalid', modulo(number, 19) = 0, 'timeout', 'ok') AS st,
        modulo(intDiv(number, 3), 6) + 1 AS grade, modulo(intDiv(number, 3), 2) + 1 AS yes_no,
        multiIf(st != 'ok', '', k = 2, toString(modulo(number, 100000)), k = 1, toString(grade),
           toString(yes_no)) AS digits,
        if(st != 'ok' OR k = 2, '', digits) AS code,
        multiIf(st != 'ok' OR k = 2, '', k = 0,
           ['ERFOLGREICH', 'NICHT ERFOLGREICH'][yes_no],
           ['sehr gut', 'gut', 'befriedigend', 'ausreichend', 'mangelhaft', 'ungenügend'][grade]
        ) AS label,
        if(st != 'ok', CAST(NULL AS Nullable(Float64)),
           CAST(toFloat64(multiIf(k = 2, modulo(number, 100000), k = 1, grade, 2 - yes_no))
                AS Nullable(Float64))) AS value,
        toUInt8(st = 'ok' AND ((k = 0 AND yes_no = 1) OR (k = 1 AND grade <= 4))) AS success
    FROM numbers(%(offset)s, %(count)s)
)
"""

# Surveys for the first answers (survey n holds answers 3n..3n+2), for the export figures.
SURVEYS_SQL = """
INSERT INTO surveys (tenant_id, survey_id, call_uuid, profile_id, profile_version,
    tracking_number, pool_id, caller, agent, status, answers, started_at, ended_at)
SELECT 'bench', toString(number), toString(number), %(profile)s, 1,
    concat('+4930100', toString(10 + modulo(number * 3, 50))),
    concat('pool-', toString(intDiv(modulo(number * 3, 50), 10))), '', '',
    CAST('complete', 'Enum8(\\'complete\\' = 1, \\'incomplete\\' = 2, \\'no_profile\\' = 3)'), 3,
    toDateTime(%(start)s + intDiv(number * 3 * %(span)s, %(total)s), 'UTC'),
    toDateTime(%(start)s + intDiv((number * 3 + 2) * %(span)s, %(total)s), 'UTC')
FROM numbers(%(count)s)
"""
EXPORT_CALLS = 200_000

SUCCESS = [("1", "ERFOLGREICH", 1, True), ("2", "NICHT ERFOLGREICH", 0, False)]
GRADES = ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"]
PROFILE: dict[str, Any] = {
    "name": "Bench",
    "criteria": [
        {"key": "success", "label": "Erfolg",
         "aggregations": ["count", "error_rate", "success_rate", "distribution"],
         "input": {"type": "code", "code_map": {"name": "e", "entries": [
             {"code": c, "label": lbl, "value": v, "success": s} for c, lbl, v, s in SUCCESS]}}},
        {"key": "grade", "label": "Note",
         "aggregations": ["count", "avg", "min", "max", "error_rate", "distribution"],
         "input": {"type": "code", "code_map": {"name": "g", "entries": [
             {"code": str(n), "label": g, "value": n, "success": n <= 4}
             for n, g in enumerate(GRADES, 1)]}}},
        {"key": "order_value", "label": "Auftragswert",
         "aggregations": ["count", "sum", "max", "avg", "error_rate"],
         "input": {"type": "number", "max_digits": 9}},
    ],
}  # fmt: skip


class Server:
    """uvicorn in a thread on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(ch: ServerClickHouse, profile_id: str, answers: int) -> float:
    started = time.perf_counter()
    for offset in range(0, answers, BATCH):
        ch.execute(
            LOAD_SQL,
            {
                "profile": profile_id,
                "start": int(START.timestamp()),
                "span": DAYS * 86400,
                "total": answers,
                "offset": offset,
                "count": min(BATCH, answers - offset),
            },
        )
        done = min(offset + BATCH, answers)
        print(f"  loaded {done:,} answers ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def time_summaries(api: httpx.Client, params: dict[str, Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = api.get("/v1/reports/summary", params=params)
        out.append(time.perf_counter() - t)
        r.raise_for_status()
    return out


def specs() -> list[CriterionSpec]:
    out = []
    for c in PROFILE["criteria"]:
        entries = c["input"].get("code_map", {}).get("entries")
        out.append(
            CriterionSpec(
                c["key"], c["label"], c["aggregations"],
                [(e["code"], e["label"]) for e in entries] if entries else None,
            )
        )  # fmt: skip
    return out


def crud_rate(api: httpx.Client) -> tuple[float, int]:
    body = {"name": "m", "entries": [{"code": "1", "label": "a", "value": 1}]}
    done = 0
    deadline = time.perf_counter() + CRUD_SECONDS
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        created = api.post("/v1/code-maps", json=body)
        created.raise_for_status()
        url = f"/v1/code-maps/{created.json()['id']}"
        api.get(url).raise_for_status()
        etag = api.get(url).headers["etag"]
        api.put(url, json=body, headers={"If-Match": etag}).raise_for_status()
        api.delete(url).raise_for_status()
        done += 5
    return done / (time.perf_counter() - started), done


def export_once(api: httpx.Client, params: dict[str, Any]) -> tuple[float, int, float]:
    """Seconds, bytes and growth of the process's peak RSS (MB) for one streamed download."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    size = 0
    with api.stream("GET", "/v1/reports/export", params=params) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            size += len(chunk)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return time.perf_counter() - t, size, grown / 1024


def export_figures(
    ch: ServerClickHouse, api: httpx.Client, profile_id: str, answers: int
) -> dict[str, Any]:
    """Exports of a small and a 4x larger range: if memory were not constant, the larger one
    would push the (high-water mark) peak RSS further up."""
    calls = min(EXPORT_CALLS, answers // 3)
    ch.execute(
        SURVEYS_SQL,
        {"profile": profile_id, "start": int(START.timestamp()), "span": DAYS * 86400,
         "total": answers, "count": calls},
    )  # fmt: skip

    def params(n: int, fmt: str) -> dict[str, Any]:
        last = START + timedelta(seconds=(n * 3 * DAYS * 86400) // answers)
        return {"profile_id": profile_id, "from": START.isoformat(), "to": last.isoformat(),
                "format": fmt}  # fmt: skip

    out: dict[str, Any] = {"export_calls": calls}
    for fmt in ("xlsx", "csv"):
        _, _, small_growth = export_once(api, params(calls // 4, fmt))
        seconds, size, large_growth = export_once(api, params(calls, fmt))
        out[f"export_{fmt}_s"] = round(seconds, 1)
        out[f"export_{fmt}_rows_per_s"] = round(calls / seconds)
        out[f"export_{fmt}_mb"] = round(size / 1e6, 1)
        out[f"export_{fmt}_rss_growth_quarter_mb"] = round(small_growth, 1)
        out[f"export_{fmt}_rss_growth_full_mb"] = round(large_growth, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=ANSWERS, help="answers to store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ct-bench-api-") as tmp:
        stack = LocalStack(Path(tmp))
        stack.up()
        try:
            return run(stack, args.answers)
        finally:
            stack.down()


def run(stack: LocalStack, answers: int) -> int:
    asyncio.run(bootstrap_url([stack.nats_url]))
    ch = ServerClickHouse(stack.clickhouse_url, send_receive_timeout=600)
    migrate(ch)
    settings = Settings(
        nats_url=stack.nats_url, clickhouse_url=stack.clickhouse_url, api_keys=f"bench:{KEY}"
    )
    figures: dict[str, Any] = {"answers": answers, "days": DAYS}
    with (
        Server(settings) as server,
        httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=600,
        ) as api,
    ):
        created = api.post("/v1/profiles", json=PROFILE)
        created.raise_for_status()
        profile_id = created.json()["id"]
        version = ".".join(map(str, ch.server_version()))
        print(f"loading {answers:,} answers into ClickHouse {version} ...")
        figures["load_s"] = round(load(ch, profile_id, answers), 1)
        stored = ch.execute("SELECT count() FROM answers")[0][0]
        assert stored == answers, stored

        end = START + timedelta(days=DAYS)
        base = {"profile_id": profile_id, "from": START.isoformat(), "to": end.isoformat()}
        utc = {**base, "interval": "day", "tz": "UTC"}
        berlin = {**base, "interval": "day", "tz": "Europe/Berlin"}
        time_summaries(api, utc, 3)  # warm caches and connections
        views_utc = time_summaries(api, utc, SUMMARY_REQUESTS)
        views_berlin = time_summaries(api, berlin, SUMMARY_REQUESTS // 2)

        # The same figures from the raw table, and from the views, without HTTP in between.
        query = SummaryQuery("bench", profile_id, START, end, "day", "UTC")
        raw_query = SummaryQuery("bench", profile_id, START, end, "day", "UTC", raw_only=True)
        from_views = summary(ch, query, specs(), 1)
        raw_times, from_raw = [], None
        for _ in range(RAW_RUNS):
            t = time.perf_counter()
            from_raw = summary(ch, raw_query, specs(), 1)
            raw_times.append(time.perf_counter() - t)
        direct_views = []
        for _ in range(RAW_RUNS * 4):
            t = time.perf_counter()
            summary(ch, query, specs(), 1)
            direct_views.append(time.perf_counter() - t)
        assert from_raw is not None and from_raw.model_dump() == from_views.model_dump(), (
            "views and raw scan disagree"
        )
        total = sum(c.count for c in from_views.criteria)
        assert total == answers, total

        crud_rps, crud_requests = crud_rate(api)
        figures.update(export_figures(ch, api, profile_id, answers))

    ms = 1000.0
    figures.update(
        summary_p50_ms=round(statistics.median(views_utc) * ms, 1),
        summary_p99_ms=round(pct(views_utc, 0.99) * ms, 1),
        summary_berlin_p50_ms=round(statistics.median(views_berlin) * ms, 1),
        summary_berlin_p99_ms=round(pct(views_berlin, 0.99) * ms, 1),
        views_direct_p50_ms=round(statistics.median(direct_views) * ms, 1),
        raw_scan_p50_ms=round(statistics.median(raw_times) * ms, 1),
        raw_scan_max_ms=round(max(raw_times) * ms, 1),
        crud_rps=round(crud_rps, 1),
        crud_requests=crud_requests,
    )
    figures["ratio"] = round(figures["raw_scan_p50_ms"] / figures["views_direct_p50_ms"], 1)
    figures["goals_met"] = (
        figures["summary_p50_ms"] <= GOALS["summary_p50_ms"] and figures["ratio"] >= GOALS["ratio"]
    )
    rows = [
        ("answers stored", f"{answers:,} (loaded in {figures['load_s']} s)"),
        ("summary via HTTP, tz=UTC (daily views)",
         f"p50 {figures['summary_p50_ms']} ms, p99 {figures['summary_p99_ms']} ms"),
        ("summary via HTTP, tz=Europe/Berlin (hourly views)",
         f"p50 {figures['summary_berlin_p50_ms']} ms, p99 {figures['summary_berlin_p99_ms']} ms"),
        ("same query from the views, no HTTP", f"p50 {figures['views_direct_p50_ms']} ms"),
        ("same figures from the raw table", f"p50 {figures['raw_scan_p50_ms']} ms"),
        ("raw scan / views", f"{figures['ratio']}x (goal >= {GOALS['ratio']:.0f}x)"),
        ("CRUD (code maps, create/get/get/put/delete)", f"{figures['crud_rps']} requests/s"),
        *[
            (
                f"export {fmt} of {figures['export_calls']:,} calls",
                f"{figures[f'export_{fmt}_s']} s ({figures[f'export_{fmt}_rows_per_s']:,} rows/s,"
                f" {figures[f'export_{fmt}_mb']} MB); peak RSS"
                f" +{figures[f'export_{fmt}_rss_growth_quarter_mb']} MB for a quarter of it,"
                f" then +{figures[f'export_{fmt}_rss_growth_full_mb']} MB for all",
            )
            for fmt in ("xlsx", "csv")
        ],
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"bench": "api", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
