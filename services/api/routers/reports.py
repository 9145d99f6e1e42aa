"""``/v1/reports``: summary figures, the call list and its xlsx/csv export."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import AwareDatetime
from starlette.background import BackgroundTask

from services.api.ch_pool import ClickHousePool
from services.api.dependencies import Reader, StoresDep, state
from services.api.problems import NotFound, Unprocessable, responses
from services.api.reports.calls import BadCursor, Cursor, fetch_page, iter_calls
from services.api.reports.export_csv import csv_chunks
from services.api.reports.export_xlsx import write_xlsx
from services.api.reports.models import (
    CallPage,
    CriterionHeader,
    ExportFormat,
    GroupBy,
    SummaryReport,
)
from services.api.reports.plan import Interval
from services.api.reports.summary import (
    CriterionSpec,
    SummaryQuery,
    build_summary,
    combine,
    fetch_figures,
    fetch_labels,
    summary,
    wanted_aggregations,
)
from services.api.stores import Stores
from shared.domain import CodeInput, StoredProfile
from shared.ids import OBJECT_ID_RE
from shared.nats_names import kv_key

router = APIRouter(prefix="/v1/reports", tags=["reports"])

# ClickHouse DateTime covers 1970-2105; reports stay well inside.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_BUCKETS = {"hour": 24 * 400, "day": 366 * 10, "week": 53 * 20, "month": 12 * 50}
BUCKET_LENGTH = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=28),
}


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass(frozen=True)
class ReportScope:
    tenant_id: str
    profile: StoredProfile
    version: int
    start: datetime
    end: datetime
    tz: str


def _check_range(start: datetime, end: datetime) -> None:
    if not EARLIEST <= start <= LATEST:
        raise Unprocessable(
            "from must lie between 1970-01-02 and 2100-01-01", field="from", location="query"
        )
    if not EARLIEST <= end <= LATEST:
        raise Unprocessable(
            "to must lie between 1970-01-02 and 2100-01-01", field="to", location="query"
        )
    if end <= start:
        raise Unprocessable("to must be later than from", field="to", location="query")


async def report_scope(
    who: Reader,
    s: StoresDep,
    profile_id: Annotated[str, Query(pattern=OBJECT_ID_RE.pattern, description="profile id")],
    start: Annotated[
        AwareDatetime,
        Query(
            alias="from",
            description="ISO 8601 with offset, inclusive",
            examples=["2024-05-01T00:00:00+02:00"],
        ),
    ],
    end: Annotated[
        AwareDatetime,
        Query(
            alias="to",
            description="ISO 8601 with offset, exclusive",
            examples=["2024-06-01T00:00:00+02:00"],
        ),
    ],
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of the buckets")] = "UTC",
) -> ReportScope:
    if tz not in _zones():
        raise Unprocessable(
            f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)",
            field="tz",
            location="query",
        )
    _check_range(start, end)
    found = await s.profiles.get(kv_key(who.tenant_id, profile_id))
    if found is None:
        raise NotFound(f"no profile {profile_id}", field="profile_id", location="query")
    return ReportScope(
        who.tenant_id, found.value, found.revision, start.astimezone(UTC), end.astimezone(UTC), tz
    )


Scope = Annotated[ReportScope, Depends(report_scope)]


async def criterion_specs(s: Stores, profile: StoredProfile) -> list[CriterionSpec]:
    out = []
    for c in profile.criteria:
        entries = None
        if isinstance(c.input, CodeInput):
            code_map = c.input.code_map
            if code_map is None and c.input.code_map_id is not None:
                found = await s.code_maps.get(kv_key(profile.tenant_id, c.input.code_map_id))
                code_map = found.value if found else None
            if code_map is not None:
                entries = [(e.code, e.label) for e in code_map.entries]
        out.append(CriterionSpec(c.key, c.label, list(c.aggregations), entries))
    return out


def _headers(profile: StoredProfile) -> list[CriterionHeader]:
    return [CriterionHeader(key=c.key, label=c.label) for c in profile.criteria]


def _pool(request: Request) -> ClickHousePool:
    return state(request).clickhouse


@router.get(
    "/summary",
    response_model=SummaryReport,
    response_model_by_alias=True,
    responses=responses(401, 404, 422, 503),
    description="Figures per criterion over [from, to): totals and one row per time bucket "
    "(and per number or pool with group_by). Buckets follow `tz`; weeks are ISO weeks.",
)
async def summary_report(
    request: Request,
    scope: Scope,
    s: StoresDep,
    interval: Interval = "day",
    group_by: GroupBy = "none",
) -> SummaryReport:
    if (scope.end - scope.start) / BUCKET_LENGTH[interval] > MAX_BUCKETS[interval]:
        raise Unprocessable(
            f"the range holds more than {MAX_BUCKETS[interval]:,} {interval} buckets; "
            "choose a longer interval or a shorter range",
            field="interval",
            location="query",
        )
    specs = await criterion_specs(s, scope.profile)
    query = SummaryQuery(
        scope.tenant_id,
        scope.profile.id,
        scope.start,
        scope.end,
        interval,
        scope.tz,
        group_by,
        aggregations=wanted_aggregations(specs),
    )
    pool = _pool(request)
    # Figures and label counts are two independent queries: run them side by side.
    figures, labels = await asyncio.gather(
        pool.run(lambda ch: fetch_figures(ch, query)),
        pool.run(lambda ch: fetch_labels(ch, query)),
    )
    return build_summary(query, specs, combine(figures, labels), scope.version)


@router.get(
    "/calls",
    response_model=CallPage,
    responses=responses(401, 404, 422, 503),
    description="One row per survey, newest first. Pass `next_cursor` as `cursor` for the next "
    "page; keep the other parameters the same.",
)
async def calls_report(
    request: Request,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CallPage:
    after = None
    if cursor:
        try:
            after = Cursor.decode(cursor)
        except BadCursor as exc:
            raise Unprocessable(str(exc), field="cursor", location="query") from None
    tz = ZoneInfo(scope.tz)
    rows, nxt = await _pool(request).run(
        lambda ch: fetch_page(
            ch, scope.tenant_id, scope.profile.id, scope.start, scope.end, limit, after, "desc", tz
        )
    )
    return CallPage(
        criteria=_headers(scope.profile),
        items=rows,
        next_cursor=nxt.encode() if nxt else None,
    )


def _filename(scope: ReportScope, ext: str) -> str:
    return f"calls-{scope.profile.id}-{scope.start:%Y%m%d}-{scope.end:%Y%m%d}.{ext}"


@router.get(
    "/export",
    response_class=StreamingResponse,
    response_model=None,
    responses={
        200: {
            "description": "the calls (xlsx: Calls and Summary sheets)",
            "content": {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **responses(401, 404, 422, 503),
    },
    description="A download of every call of the range, oldest first. Memory stays constant "
    "for any number of rows (xlsx is built in a temporary file, csv is streamed).",
)
async def export_report(
    request: Request,
    scope: Scope,
    s: StoresDep,
    format: ExportFormat = "xlsx",
) -> StreamingResponse | FileResponse:
    pool = _pool(request)
    criteria = _headers(scope.profile)
    tz = ZoneInfo(scope.tz)
    if format == "csv":

        def chunks() -> Iterator[bytes]:
            with pool.connection() as ch:
                rows = iter_calls(ch, scope.tenant_id, scope.profile.id, scope.start, scope.end, tz)
                yield from csv_chunks(rows, criteria, scope.tz)

        return StreamingResponse(
            chunks(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_filename(scope, "csv")}"'},
        )

    specs = await criterion_specs(s, scope.profile)
    query = SummaryQuery(
        scope.tenant_id, scope.profile.id, scope.start, scope.end, "month", scope.tz
    )
    tmp = Path(tempfile.mkdtemp(prefix="ct-export-"))
    path = tmp / "export.xlsx"

    def build() -> None:
        with pool.connection() as ch:
            report = summary(ch, query, specs, scope.version)
            rows = iter_calls(ch, scope.tenant_id, scope.profile.id, scope.start, scope.end, tz)
            write_xlsx(path, rows, criteria, report)

    try:
        from anyio import to_thread

        await to_thread.run_sync(build)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=_filename(scope, "xlsx"),
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
