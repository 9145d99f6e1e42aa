"""Reports equal what was ingested, on clickhouse-server 18.16 and on chDB (current ClickHouse).

Answers and surveys are inserted straight into ClickHouse (the materialized views fill as in
production); the expected figures are computed here in Python from the same rows. Data spans the
European and US daylight-saving changes of the coming spring and a month end, so day, week and
month buckets in Europe/Berlin and America/New_York are exercised where they differ from UTC.
"""

from __future__ import annotations

import csv
import io
import random
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.reports.calls import Cursor, fetch_page, iter_calls
from services.api.reports.export_xlsx import write_xlsx
from services.api.reports.models import (
    CallAnswer,
    CallRow,
    CriterionHeader,
    SummaryReport,
)
from services.api.reports.plan import Segment, plan_segments
from services.api.reports.summary import CriterionSpec, SummaryQuery, summary
from shared.clickhouse.client import ClickHouse
from shared.clickhouse.rows import ANSWER_COLUMNS, SURVEY_COLUMNS, answer_row, survey_row
from shared.events import AnswerEvent, SurveyEvent
from shared.ids import answer_id, survey_id
from shared.stack import free_port

from api_support import expect_problem, settings_for

TENANT, PROFILE = "acme", "prof1"


def _next_march() -> datetime:
    """March 8 of the coming spring: the US changes clocks in the 2nd week of March, Europe on
    its last Sunday. Future dates, because current ClickHouse drops rows older than the 400-day
    retention (TTL) as they are inserted."""
    now = datetime.now(UTC)
    year = now.year if now < datetime(now.year, 3, 1, tzinfo=UTC) else now.year + 1
    return datetime(year, 3, 8, tzinfo=UTC)


START = _next_march()
DAYS = 26
MONTH_BEFORE, MONTH_AFTER = START - timedelta(days=7), START + timedelta(days=54)
NUMBERS = {"+4930100001": "pool-a", "+4930100002": "pool-a", "+4930100003": ""}
SUCCESS = [("1", "ERFOLGREICH", 1.0, True), ("2", "NICHT ERFOLGREICH", 0.0, False)]
GRADES = [
    (str(n), g, float(n), n <= 4)
    for n, g in enumerate(
        ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"], 1
    )
]
SPECS = [
    CriterionSpec(
        "success",
        "Erfolg",
        ["count", "error_rate", "success_rate", "distribution"],
        [(c, lbl) for c, lbl, _, _ in SUCCESS],
    ),
    CriterionSpec(
        "grade",
        "Note",
        ["count", "avg", "min", "max", "sum", "error_rate", "success_rate", "distribution"],
        [(c, lbl) for c, lbl, _, _ in GRADES],
    ),
    CriterionSpec(
        "order_value", "Auftragswert", ["count", "sum", "min", "max", "avg", "error_rate"]
    ),
]


@dataclass(frozen=True)
class Ingested:
    answers: list[AnswerEvent]
    surveys: list[SurveyEvent]


def generate(seed: int = 7, calls: int = 420) -> Ingested:
    rnd = random.Random(seed)
    answers, surveys = [], []
    for n in range(calls):
        call = f"call-{n:05d}"
        started = START + timedelta(seconds=rnd.randrange(DAYS * 86400))
        number = rnd.choice(sorted(NUMBERS))
        common: dict[str, Any] = {
            "tenant_id": TENANT,
            "call_uuid": call,
            "profile_id": PROFILE,
            "profile_version": 1,
            "tracking_number": number,
            "pool_id": NUMBERS[number],
            "caller": f"+49171{n:06d}",
            "agent": f"agent-{n % 5}",
        }
        sid = survey_id(call)
        t = started
        made = 0
        for index, key in enumerate(("success", "grade", "order_value")):
            t += timedelta(seconds=rnd.randrange(1, 9))
            status = rnd.choices(["ok", "invalid", "timeout", "hangup"], [80, 8, 8, 4])[0]
            fields: dict[str, Any] = {"digits": "", "code": "", "label": "", "value": None}
            success = False
            if status == "ok":
                if key == "order_value":
                    # Quarter euros: exactly representable, so sums are exact in any order.
                    value = rnd.randrange(0, 400_000) / 4 if rnd.random() > 0.1 else None
                    fields = {
                        "digits": "" if value is None else str(int(value)),
                        "code": "",
                        "label": "",
                        "value": value,
                    }
                else:
                    code, label, value, success = rnd.choice(
                        SUCCESS if key == "success" else GRADES
                    )
                    fields = {"digits": code, "code": code, "label": label, "value": value}
            elif status == "invalid":
                fields["digits"] = "9"
            answers.append(
                AnswerEvent(
                    **common,
                    answer_id=answer_id(call, key),
                    survey_id=sid,
                    criterion_key=key,
                    criterion_index=index,
                    success=success,
                    status=status,
                    attempts=1,
                    answered_at=t,
                    **fields,
                )
            )
            made += 1
            if status == "hangup":
                break
        surveys.append(
            SurveyEvent(
                **common,
                survey_id=sid,
                answers=made,
                started_at=started,
                ended_at=t + timedelta(seconds=2),
                status="incomplete" if answers[-1].status == "hangup" else "complete",
            )
        )
    return Ingested(answers, surveys)


DATA = generate()


def ingest(ch: ClickHouse, data: Ingested = DATA) -> None:
    # Several inserts, like the aggregator's batches: the views then hold unmerged partial states.
    for n in range(0, len(data.answers), 300):
        ch.insert("answers", ANSWER_COLUMNS, [answer_row(a) for a in data.answers[n : n + 300]])
    ch.insert("surveys", SURVEY_COLUMNS, [survey_row(s) for s in data.surveys])


@pytest.fixture(params=["clickhouse-18.16", "chdb"])
def ch(request: pytest.FixtureRequest) -> Iterator[ClickHouse]:
    conn: ClickHouse = request.getfixturevalue("server_ch" if "18" in request.param else "chdb_ch")
    ingest(conn)
    yield conn


# --- expectations computed in Python --------------------------------------------------------


def bucket_of(t: datetime, interval: str, tz: ZoneInfo) -> datetime | date:
    local = t.astimezone(tz)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    d = local.date()
    if interval == "week":
        return d - timedelta(days=d.weekday())
    if interval == "month":
        return d.replace(day=1)
    return d


def report_bucket(bucket: datetime, interval: str) -> datetime | date:
    return bucket.astimezone(UTC) if interval == "hour" else bucket.date()


def expected(
    start: datetime, end: datetime, interval: str, tz: str, group_by: str = "none"
) -> tuple[dict[str, dict[str, Any]], dict[tuple[Any, str], dict[str, dict[str, Any]]]]:
    zone = ZoneInfo(tz)
    picked = [a for a in DATA.answers if start <= a.answered_at < end]
    by_cell: dict[tuple[Any, str], list[AnswerEvent]] = defaultdict(list)
    for a in picked:
        grp = {"none": "", "number": a.tracking_number, "pool": a.pool_id}[group_by]
        by_cell[(bucket_of(a.answered_at, interval, zone), grp)].append(a)
    totals = {s.key: figures_of([a for a in picked if a.criterion_key == s.key], s) for s in SPECS}
    cells = {
        cell: {s.key: figures_of([a for a in rows if a.criterion_key == s.key], s) for s in SPECS}
        for cell, rows in by_cell.items()
    }
    return totals, cells


def figures_of(rows: list[AnswerEvent], spec: CriterionSpec) -> dict[str, Any]:
    n = len(rows)
    ok = [a for a in rows if a.status == "ok"]
    valued = [a.value for a in ok if a.value is not None]
    out: dict[str, Any] = {
        "count": n,
        "error_rate": (n - len(ok)) / n if n else None,
        "success_rate": sum(a.success for a in ok) / n if n else None,
        "sum": float(sum(valued)),
        "min": min(valued) if valued else None,
        "max": max(valued) if valued else None,
        "avg": sum(valued) / len(valued) if valued else None,
    }
    if spec.entries is not None:
        out["distribution"] = [
            (
                code,
                label,
                sum(1 for a in ok if a.code == code),
                (sum(1 for a in ok if a.code == code) / n) if n else None,
            )
            for code, label in spec.entries
        ]
    return {k: v for k, v in out.items() if k == "count" or k in spec.aggregations}


def actual(f: Any) -> dict[str, Any]:
    out = {
        k: getattr(f, k)
        for k in ("count", "error_rate", "success_rate", "sum", "min", "max", "avg")
    }
    if f.distribution is not None:
        out["distribution"] = [(d.code, d.label, d.count, d.share) for d in f.distribution]
    return {k: v for k, v in out.items() if k == "count" or k in f.aggregations}


def assert_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        if k in ("sum", "min", "max", "count"):
            assert got[k] == v, k  # exact: integers and quarter euros
        elif k == "distribution":
            assert [d[:3] for d in got[k]] == [d[:3] for d in v]
            assert [d[3] for d in got[k]] == pytest.approx([d[3] for d in v])
        else:
            assert got[k] == pytest.approx(v), k


def run_summary(
    ch: ClickHouse,
    start: datetime,
    end: datetime,
    interval: str,
    tz: str,
    group_by: str = "none",
    raw_only: bool = False,
) -> Any:
    q = SummaryQuery(TENANT, PROFILE, start, end, interval, tz, group_by, raw_only)  # type: ignore[arg-type]
    return summary(ch, q, SPECS, 1)


def check(
    ch: ClickHouse, start: datetime, end: datetime, interval: str, tz: str, group_by: str = "none"
) -> None:
    report = run_summary(ch, start, end, interval, tz, group_by)
    totals, cells = expected(start, end, interval, tz, group_by)
    for f in report.criteria:
        assert_figures(actual(f), totals[f.key])
    got_cells = {}
    for row in report.rows:
        grp = (
            row.tracking_number
            if group_by == "number"
            else row.pool_id
            if group_by == "pool"
            else ""
        )
        assert row.bucket.utcoffset() == row.bucket.astimezone(ZoneInfo(tz)).utcoffset()
        got_cells[(report_bucket(row.bucket, interval), grp or "")] = {
            f.key: actual(f) for f in row.criteria
        }
    assert got_cells.keys() == cells.keys()
    for cell, want in cells.items():
        for key, figs in want.items():
            assert_figures(got_cells[cell][key], figs)


# --- tests ----------------------------------------------------------------------------------

WHOLE = (START, START + timedelta(days=DAYS))


@pytest.mark.parametrize("interval", ["day", "week", "month"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_figures_per_interval_and_time_zone(ch: ClickHouse, interval: str, tz: str) -> None:
    check(ch, *WHOLE, interval, tz)


def test_hour_buckets_and_unaligned_edges(ch: ClickHouse) -> None:
    # Edges inside hours and days: raw rows for the minutes, hourly/daily views for the rest.
    start = START + timedelta(days=1, hours=22, minutes=17, seconds=5)
    end = START + timedelta(days=23, hours=3, minutes=41, seconds=59)
    check(ch, start, end, "hour", "Europe/Berlin")
    check(ch, start, end, "day", "UTC")
    check(ch, start, end, "day", "America/New_York")
    # A range shorter than an hour is answered from raw rows alone.
    short = START + timedelta(days=4, hours=10, minutes=5)
    check(ch, short, short + timedelta(minutes=50), "hour", "UTC")


def test_grouped_by_number_and_pool(ch: ClickHouse) -> None:
    check(ch, *WHOLE, "week", "Europe/Berlin", "number")
    check(ch, *WHOLE, "month", "UTC", "pool")


def test_half_hour_zone_is_exact_from_raw_rows(ch: ClickHouse) -> None:
    start, end = WHOLE
    assert plan_segments(start, end, "day", ZoneInfo("Asia/Kolkata")) == [
        Segment("raw", start, end)
    ]
    check(ch, start, end, "day", "Asia/Kolkata")


def test_views_and_raw_scan_agree(ch: ClickHouse) -> None:
    start, end = (
        START + timedelta(days=1, hours=5, minutes=30),
        START + timedelta(days=25, hours=12),
    )
    views = run_summary(ch, start, end, "day", "UTC")
    raw = run_summary(ch, start, end, "day", "UTC", raw_only=True)
    assert views.model_dump() == raw.model_dump()


def test_empty_range_and_labels_of_zero(ch: ClickHouse) -> None:
    report = run_summary(ch, MONTH_BEFORE - timedelta(days=30), MONTH_BEFORE, "day", "UTC")
    assert report.rows == []
    success = report.criteria[0]
    assert success.count == 0 and success.error_rate is None
    assert [(d.label, d.count, d.share) for d in success.distribution or []] == [
        ("ERFOLGREICH", 0, None),
        ("NICHT ERFOLGREICH", 0, None),
    ]


def test_plan_uses_daily_rows_only_for_utc_days() -> None:
    start, end = datetime(2024, 3, 1, 6, 30, tzinfo=UTC), datetime(2024, 3, 5, 7, 0, tzinfo=UTC)
    assert [s.source for s in plan_segments(start, end, "day", ZoneInfo("UTC"))] == [
        "raw",
        "hourly",
        "daily",
        "hourly",
    ]
    assert [s.source for s in plan_segments(start, end, "day", ZoneInfo("Europe/Berlin"))] == [
        "raw",
        "hourly",
    ]
    assert [s.source for s in plan_segments(start, end, "hour", ZoneInfo("UTC"))] == [
        "raw",
        "hourly",
    ]


def test_call_list_pages_cover_every_survey_once(ch: ClickHouse) -> None:
    start, end = WHOLE
    tz = ZoneInfo("Europe/Berlin")
    seen: list[str] = []
    cursor: Cursor | None = None
    pages = 0
    while True:
        rows, cursor = fetch_page(ch, TENANT, PROFILE, start, end, 50, cursor, "desc", tz)
        seen += [r.survey_id for r in rows]
        pages += 1
        if cursor is None:
            break
    by_id = {s.survey_id: s for s in DATA.surveys}
    want = sorted(by_id, key=lambda i: (by_id[i].started_at, i), reverse=True)
    assert seen == want and pages == -(-len(want) // 50)
    row = fetch_page(ch, TENANT, PROFILE, start, end, 1, None, "desc", tz)[0][0]
    survey = by_id[row.survey_id]
    assert row.time == survey.started_at and row.time.tzinfo is not None
    assert (row.tracking_number, row.pool_id, row.caller, row.agent, row.status) == (
        survey.tracking_number,
        survey.pool_id,
        survey.caller,
        survey.agent,
        survey.status,
    )
    answers = {a.criterion_key: a for a in DATA.answers if a.survey_id == row.survey_id}
    assert set(row.answers) == set(answers)
    for key, a in answers.items():
        got = row.answers[key]
        assert (got.digits, got.label, got.value, got.status) == (
            a.digits,
            a.label,
            a.value,
            a.status,
        )
    assert sum(1 for _ in iter_calls(ch, TENANT, PROFILE, start, end, tz, page_size=64)) == len(
        want
    )


# --- over HTTP: the routes, the exports -----------------------------------------------------


@pytest.fixture
def http(nats_url: str, clickhouse_url: str, server_ch: ClickHouse) -> Iterator[TestClient]:
    ingest(server_ch)
    with TestClient(create_app(settings_for(nats_url, clickhouse_url))) as client:
        yield client


def profile_with_id(client: TestClient) -> str:
    """A profile whose criteria match the ingested rows; the rows are re-keyed to its id."""
    body = {
        "name": "Umfrage",
        "criteria": [
            {
                "key": "success",
                "label": "Erfolg",
                "aggregations": SPECS[0].aggregations,
                "input": {
                    "type": "code",
                    "code_map": {
                        "name": "e",
                        "entries": [
                            {"code": c, "label": lbl, "value": v, "success": s}
                            for c, lbl, v, s in SUCCESS
                        ],
                    },
                },
            },
            {
                "key": "grade",
                "label": "Note",
                "aggregations": SPECS[1].aggregations,
                "input": {
                    "type": "code",
                    "code_map": {
                        "name": "g",
                        "entries": [
                            {"code": c, "label": lbl, "value": v, "success": s}
                            for c, lbl, v, s in GRADES
                        ],
                    },
                },
            },
            {
                "key": "order_value",
                "label": "Auftragswert",
                "aggregations": SPECS[2].aggregations,
                "input": {"type": "number", "max_digits": 9},
            },
        ],
    }
    r = client.post("/v1/profiles", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


AUTH = {"Authorization": "Bearer acme-key"}


def rekey(ch: ClickHouse, profile_id: str) -> None:
    answers = [a.model_copy(update={"profile_id": profile_id}) for a in DATA.answers]
    surveys = [s.model_copy(update={"profile_id": profile_id}) for s in DATA.surveys]
    ingest(ch, Ingested(answers, surveys))


def test_summary_over_http(http: TestClient, server_ch: ClickHouse) -> None:
    pid = profile_with_id(http)
    rekey(server_ch, pid)
    berlin = ZoneInfo("Europe/Berlin")
    params = {
        "profile_id": pid,
        "from": START.astimezone(berlin).isoformat(),
        "to": WHOLE[1].isoformat(),
        "interval": "week",
        "tz": "Europe/Berlin",
    }
    r = http.get("/v1/reports/summary", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["interval"]) == (START.astimezone(berlin).isoformat(), "week")
    assert [c["key"] for c in body["criteria"]] == ["success", "grade", "order_value"]
    totals, cells = expected(*WHOLE, "week", "Europe/Berlin")
    assert body["criteria"][2]["sum"] == totals["order_value"]["sum"]
    assert body["criteria"][0]["distribution"][0]["label"] == "ERFOLGREICH"
    mondays = sorted(d for d, _ in cells)
    assert [row["bucket"][:10] for row in body["rows"]] == [d.isoformat() for d in mondays]
    # Monday midnight in Berlin: +01:00 before the clocks change, +02:00 after.
    assert body["rows"][0]["bucket"].endswith("T00:00:00+01:00")
    assert body["rows"][-1]["bucket"].endswith("T00:00:00+02:00")
    for bad, field in (
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"interval": "year"}, "interval"),
        ({"from": "2024-03-08T00:00:00"}, "from"),
        ({"to": "2024-03-01T00:00:00Z"}, "to"),
        ({"group_by": "agent"}, "group_by"),
        ({"profile_id": "a b"}, "profile_id"),
        ({"interval": "hour", "from": "2000-01-01T00:00:00Z"}, "interval"),
    ):
        expect_problem(
            http.get("/v1/reports/summary", params={**params, **bad}, headers=AUTH), 422, field
        )
    expect_problem(
        http.get("/v1/reports/summary", params={**params, "profile_id": "nope"}, headers=AUTH), 404
    )


def test_calls_over_http_with_cursor(http: TestClient, server_ch: ClickHouse) -> None:
    pid = profile_with_id(http)
    rekey(server_ch, pid)
    params: dict[str, Any] = {
        "profile_id": pid,
        "from": MONTH_BEFORE.isoformat(),
        "to": MONTH_AFTER.isoformat(),
        "limit": 150,
    }
    ids: list[str] = []
    while True:
        body = http.get("/v1/reports/calls", params=params, headers=AUTH).json()
        assert [c["key"] for c in body["criteria"]] == ["success", "grade", "order_value"]
        ids += [row["survey_id"] for row in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert len(ids) == len(set(ids)) == len(DATA.surveys)
    expect_problem(
        http.get("/v1/reports/calls", params={**params, "cursor": "!!"}, headers=AUTH),
        422,
        "cursor",
    )
    expect_problem(
        http.get("/v1/reports/calls", params={**params, "limit": 0}, headers=AUTH), 422, "limit"
    )


def test_xlsx_export(http: TestClient, server_ch: ClickHouse) -> None:
    pid = profile_with_id(http)
    rekey(server_ch, pid)
    params = {
        "profile_id": pid,
        "from": MONTH_BEFORE.isoformat(),
        "to": MONTH_AFTER.isoformat(),
        "format": "xlsx",
        "tz": "Europe/Berlin",
    }
    r = http.get("/v1/reports/export", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["Calls", "Summary"]
    calls = wb["Calls"]
    assert calls.freeze_panes == "A2"
    head = [c.value for c in calls[1]]
    assert head[:3] == ["Time (Europe/Berlin)", "Ended (Europe/Berlin)", "Tracking number"]
    assert "Auftragswert: value" in head and "Note: answer" in head
    assert calls.max_row == len(DATA.surveys) + 1
    first = min(DATA.surveys, key=lambda s: (s.started_at, s.survey_id))
    row = [c.value for c in calls[2]]
    assert isinstance(row[0], datetime)
    assert row[0] == first.started_at.astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None)
    assert row[2] == first.tracking_number and row[6] == first.status
    values = {a.criterion_key: a for a in DATA.answers if a.survey_id == first.survey_id}
    col = head.index("Auftragswert: value")
    if "order_value" in values and values["order_value"].value is not None:
        assert calls.cell(2, col + 1).value == values["order_value"].value
    numeric = [calls.cell(n, col + 1).value for n in range(2, calls.max_row + 1)]
    assert all(v is None or isinstance(v, (int, float)) for v in numeric)
    totals, _ = expected(MONTH_BEFORE, MONTH_AFTER, "month", "UTC")
    assert sum(v for v in numeric if v is not None) == totals["order_value"]["sum"]

    summary_ws = wb["Summary"]
    assert summary_ws.freeze_panes == "A2"
    assert [c.value for c in summary_ws[1]][:4] == [
        "Criterion",
        "Count",
        "Error rate",
        "Success rate",
    ]
    by_label = {summary_ws.cell(n, 1).value: n for n in range(2, 5)}
    assert summary_ws.cell(by_label["Auftragswert"], 2).value == totals["order_value"]["count"]
    assert summary_ws.cell(by_label["Auftragswert"], 5).value == totals["order_value"]["sum"]
    assert summary_ws.cell(by_label["Erfolg"], 4).value == pytest.approx(
        totals["success"]["success_rate"]
    )
    assert summary_ws.cell(by_label["Erfolg"], 3).number_format == "0.0%"


def test_csv_export(http: TestClient, server_ch: ClickHouse) -> None:
    pid = profile_with_id(http)
    rekey(server_ch, pid)
    params = {
        "profile_id": pid,
        "from": MONTH_BEFORE.isoformat(),
        "to": MONTH_AFTER.isoformat(),
        "format": "csv",
    }
    r = http.get("/v1/reports/export", params=params, headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][0] == "Time (UTC)" and len(rows) == len(DATA.surveys) + 1
    times = [datetime.fromisoformat(row[0]) for row in rows[1:]]
    assert times == sorted(times) and times[0].tzinfo is not None


def test_xlsx_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    """constant_memory: ten times the rows must not need (anywhere near) ten times the memory."""
    criteria = [CriterionHeader(key=s.key, label=s.label) for s in SPECS]
    report = SummaryReport(
        profile_id=PROFILE, profile_version=1, from_=START, to=START, tz="UTC", interval="month",
        group_by="none", criteria=[], rows=[],
    )  # fmt: skip

    def rows(n: int) -> Iterator[CallRow]:
        answer = CallAnswer(digits="1", code="1", label="ERFOLGREICH", value=1.0, status="ok")
        for i in range(n):
            yield CallRow(
                survey_id=f"s{i}", call_uuid=f"c{i}", time=START, ended_at=START,
                tracking_number="+4930100001", pool_id="pool-a", caller="+49171", agent="a",
                status="complete", profile_version=1, answers={"success": answer},
            )  # fmt: skip

    def peak(n: int) -> int:
        tracemalloc.start()
        assert write_xlsx(tmp_path / f"{n}.xlsx", rows(n), criteria, report) == n
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2_000), peak(20_000)
    assert large < small * 2, (small, large)
    wb = openpyxl.load_workbook(tmp_path / "20000.xlsx", read_only=True)
    assert wb["Calls"].max_row == 20_001


def test_clickhouse_down_is_a_503(nats_url: str) -> None:
    dead = f"clickhouse://default:@127.0.0.1:{free_port()}/default"
    with TestClient(create_app(settings_for(nats_url, dead))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "degraded", "nats": "up", "clickhouse": "down"}
        pid = client.post("/v1/profiles", json={"template": "success"}, headers=AUTH).json()["id"]
        params = {"profile_id": pid, "from": START.isoformat(), "to": WHOLE[1].isoformat()}
        r = client.get("/v1/reports/summary", params=params, headers=AUTH)
        assert expect_problem(r, 503)["detail"].startswith("ClickHouse is unavailable")
        assert r.headers["retry-after"] == "1"
