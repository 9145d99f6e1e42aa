"""The call list: one row per survey with every answer, keyset-paginated.

Pages are ordered by (started_at, survey_id), the tail of the surveys table's sort key, and a
cursor names the last row seen, so page N costs the same as page 1 and rows inserted meanwhile
never shift a page. Answers of a page are read by time range (a survey's answers lie between its
start and end) plus tenant and profile, which is what the answers table is sorted by.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from services.api.reports.models import CallAnswer, CallRow
from shared.clickhouse.client import ClickHouse

Order = Literal["asc", "desc"]

# Answers carry the IVR's clock at whole seconds, like the survey's start and end.
ANSWER_SLACK = timedelta(seconds=1)
# The survey ids of a page go into an IN list only for small pages (query size stays small).
MAX_IN_LIST = 1000


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    started_at: datetime
    survey_id: str

    def encode(self) -> str:
        raw = json.dumps([int(self.started_at.timestamp()), self.survey_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, survey_id = json.loads(raw)
            if not isinstance(ts, int) or not isinstance(survey_id, str) or len(survey_id) > 64:
                raise ValueError("wrong shape")
            return cls(datetime.fromtimestamp(ts, UTC), survey_id)
        except (ValueError, TypeError, binascii.Error, OverflowError, OSError) as exc:
            raise BadCursor("cursor is not one this API returned") from exc


SURVEY_COLUMNS = """survey_id, call_uuid, started_at, ended_at, tracking_number, pool_id, caller,
    agent, status, profile_version"""


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def fetch_page(
    ch: ClickHouse,
    tenant_id: str,
    profile_id: str,
    start: datetime,
    end: datetime,
    limit: int,
    after: Cursor | None,
    order: Order,
    tz: ZoneInfo,
) -> tuple[list[CallRow], Cursor | None]:
    """One page of calls and the cursor of the next page (None when this was the last)."""
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "profile": profile_id,
        "from": _naive_utc(start),
        "to": _naive_utc(end),
    }
    cmp, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
    keyset = ""
    if after is not None:
        params["c_t"], params["c_id"] = _naive_utc(after.started_at), after.survey_id
        keyset = (
            f" AND (started_at {cmp} toDateTime(%(c_t)s, 'UTC')"
            f" OR (started_at = toDateTime(%(c_t)s, 'UTC') AND survey_id {cmp} %(c_id)s))"
        )
    # LIMIT 1 BY drops a survey row stored twice; limit + 1 tells whether another page exists.
    sql = (
        f"SELECT {SURVEY_COLUMNS} FROM surveys"
        " WHERE tenant_id = %(tenant)s AND profile_id = %(profile)s"
        " AND started_at >= toDateTime(%(from)s, 'UTC') AND started_at < toDateTime(%(to)s, 'UTC')"
        f"{keyset}"
        f" ORDER BY started_at {direction}, survey_id {direction}"
        f" LIMIT 1 BY survey_id LIMIT {int(limit) + 1}"
    )
    surveys = ch.execute(sql, params)
    more = len(surveys) > limit
    surveys = surveys[:limit]
    answers = _answers_for(ch, tenant_id, profile_id, surveys)
    rows = [_row(s, answers.get(s[0], {}), tz) for s in surveys]
    next_cursor = Cursor(surveys[-1][2], surveys[-1][0]) if more and surveys else None
    return rows, next_cursor


def _answers_for(
    ch: ClickHouse, tenant_id: str, profile_id: str, surveys: list[tuple[Any, ...]]
) -> dict[str, dict[str, CallAnswer]]:
    if not surveys:
        return {}
    ids = {s[0] for s in surveys}
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "profile": profile_id,
        "lo": _naive_utc(min(s[2] for s in surveys) - ANSWER_SLACK),
        "hi": _naive_utc(max(max(s[2], s[3]) for s in surveys) + ANSWER_SLACK),
    }
    in_list = ""
    if len(ids) <= MAX_IN_LIST:
        params["ids"] = tuple(sorted(ids))
        in_list = " AND survey_id IN %(ids)s"
    sql = (
        "SELECT survey_id, criterion_key, digits, code, label, value, status FROM answers"
        " WHERE tenant_id = %(tenant)s AND profile_id = %(profile)s"
        " AND answered_at >= toDateTime(%(lo)s, 'UTC') AND answered_at <= toDateTime(%(hi)s, 'UTC')"
        f"{in_list} ORDER BY answered_at"
    )
    out: dict[str, dict[str, CallAnswer]] = {}
    for survey_id, key, digits, code, label, value, status in ch.execute(sql, params):
        if survey_id in ids:
            out.setdefault(survey_id, {})[key] = CallAnswer(
                digits=digits, code=code, label=label, value=value, status=status
            )
    return out


def _row(s: tuple[Any, ...], answers: dict[str, CallAnswer], tz: ZoneInfo) -> CallRow:
    survey_id, call_uuid, started, ended, number, pool, caller, agent, status, version = s
    return CallRow(
        survey_id=survey_id,
        call_uuid=call_uuid,
        time=_aware(started).astimezone(tz),
        ended_at=_aware(ended).astimezone(tz),
        tracking_number=number,
        pool_id=pool,
        caller=caller,
        agent=agent,
        status=status,
        profile_version=int(version),
        answers=answers,
    )


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def iter_calls(
    ch: ClickHouse,
    tenant_id: str,
    profile_id: str,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    page_size: int = 5000,
) -> Iterator[CallRow]:
    """Every call of the range, oldest first, one page in memory at a time (for exports)."""
    cursor: Cursor | None = None
    while True:
        rows, cursor = fetch_page(
            ch, tenant_id, profile_id, start, end, page_size, cursor, "asc", tz
        )
        yield from rows
        if cursor is None:
            return
