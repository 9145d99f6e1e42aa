"""Never count an event twice (design §6).

The materialized views count whatever is inserted, so duplicates must be removed *before* the
insert: within a batch by key, and against ClickHouse for events that may have been inserted
already (redeliveries after a crash between insert and ack, or a retried insert whose first try
reached the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.clickhouse.client import ClickHouse
from shared.events import AnswerEvent, SurveyEvent

Key = tuple[str, str, str]  # (table, tenant_id, id), see decode.event_key

# Ids per lookup query: keeps each query far below ClickHouse's max_query_size (256 KiB).
LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class _Lookup:
    """How to find stored ids of one table; the time column narrows the primary-key range."""

    id_column: str
    time_column: str


_LOOKUPS = {
    "answers": _Lookup("answer_id", "answered_at"),
    "surveys": _Lookup("survey_id", "started_at"),
}


def stored_keys(
    ch: ClickHouse, table: str, events: Sequence[AnswerEvent] | Sequence[SurveyEvent]
) -> set[Key]:
    """Keys of ``events`` that ``table`` already holds.

    The query names tenant, profile and a time range so that ClickHouse reads only the
    primary-key ranges those events can live in (ORDER BY tenant_id, profile_id, time, id), and
    the pair (tenant, id) is matched here so that one tenant's id never hides another's.
    """
    lookup = _LOOKUPS[table]
    found: set[Key] = set()
    for start in range(0, len(events), LOOKUP_CHUNK):
        chunk = events[start : start + LOOKUP_CHUNK]
        wanted = {(e.tenant_id, _id_of(e)) for e in chunk}
        times = [_naive_utc(_time_of(e)) for e in chunk]
        sql = (
            f"SELECT tenant_id, {lookup.id_column} FROM {table}"
            " WHERE tenant_id IN %(tenants)s AND profile_id IN %(profiles)s"
            f" AND {lookup.time_column} >= %(lo)s AND {lookup.time_column} <= %(hi)s"
            f" AND {lookup.id_column} IN %(ids)s"
        )
        params = {
            "tenants": tuple(sorted({e.tenant_id for e in chunk})),
            "profiles": tuple(sorted({e.profile_id for e in chunk})),
            "lo": min(times).replace(microsecond=0),
            "hi": max(times),
            "ids": tuple(sorted({id_ for _, id_ in wanted})),
        }
        for tenant, id_ in ch.execute(sql, params):
            if (tenant, id_) in wanted:
                found.add((table, tenant, id_))
    return found


def _id_of(event: AnswerEvent | SurveyEvent) -> str:
    return event.answer_id if isinstance(event, AnswerEvent) else event.survey_id


def _time_of(event: AnswerEvent | SurveyEvent) -> datetime:
    return event.answered_at if isinstance(event, AnswerEvent) else event.started_at


def _naive_utc(value: datetime) -> datetime:
    # Naive UTC: clickhouse-driver would convert an aware value to the *server's* time zone,
    # while the columns are DateTime('UTC') and compare a literal in UTC.
    return value.astimezone(UTC).replace(tzinfo=None)
