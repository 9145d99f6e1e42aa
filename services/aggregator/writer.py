"""One INSERT per table per batch, after removing events ClickHouse already holds.

Synchronous on purpose (clickhouse-driver is): the service runs ``BatchWriter.write`` in its one
worker thread. Works with any ``shared.clickhouse.client.ClickHouse`` (server or chDB).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickhouse_driver.errors import TypeMismatchError

from services.aggregator.decode import REJECTED_BY_CLICKHOUSE, Event, event_key
from services.aggregator.dedup import Key, stored_keys
from shared.clickhouse.client import ClickHouse
from shared.clickhouse.rows import ANSWER_COLUMNS, SURVEY_COLUMNS, answer_row, survey_row
from shared.events import AnswerEvent, SurveyEvent

# Raised while serialising a row on the client (e.g. an integer too big for UInt32): that row can
# never be inserted, so it is isolated and dead-lettered instead of blocking the stream. Every
# other error (network, server down, too many parts) is transient and the batch is retried.
_DATA_ERRORS = (TypeError, ValueError, OverflowError, struct.error, TypeMismatchError)


@dataclass(frozen=True)
class _Table:
    name: str
    columns: Sequence[str]
    row: Callable[[Any], tuple[Any, ...]]


_ANSWERS = _Table("answers", ANSWER_COLUMNS, answer_row)
_SURVEYS = _Table("surveys", SURVEY_COLUMNS, survey_row)


@dataclass
class WriteResult:
    inserted: dict[str, int] = field(default_factory=lambda: {"answers": 0, "surveys": 0})
    already_stored: set[Key] = field(default_factory=set)
    rejected: dict[Key, str] = field(default_factory=dict)  # key -> dead-letter reason

    @property
    def rows(self) -> int:
        return sum(self.inserted.values())


class BatchWriter:
    def __init__(self, ch: ClickHouse):
        self.ch = ch

    def write(self, events: Sequence[Event], check: Collection[Key] | None = None) -> WriteResult:
        """Insert ``events`` (unique keys), skipping those already stored.

        ``check`` names the keys to look up in ClickHouse first (``None``: all of them). Keys
        not named are trusted to be new, which saves a query per batch on first deliveries.
        """
        result = WriteResult()
        answers = [e for e in events if isinstance(e, AnswerEvent)]
        surveys = [e for e in events if isinstance(e, SurveyEvent)]
        for table, table_events in ((_ANSWERS, answers), (_SURVEYS, surveys)):
            self._write_table(table, table_events, check, result)
        return result

    def ping(self) -> None:
        self.ch.execute("SELECT 1")

    def _write_table(
        self,
        table: _Table,
        events: Sequence[Event],
        check: Collection[Key] | None,
        result: WriteResult,
    ) -> None:
        if not events:
            return
        suspects = [e for e in events if check is None or event_key(e) in check]
        stored = stored_keys(self.ch, table.name, suspects) if suspects else set()  # type: ignore[arg-type]
        result.already_stored |= stored
        fresh = [e for e in events if event_key(e) not in stored]
        if not fresh:
            return
        try:
            result.inserted[table.name] += self.ch.insert(
                table.name, table.columns, [table.row(e) for e in fresh]
            )
        except _DATA_ERRORS:
            self._insert_one_by_one(table, fresh, result)

    def _insert_one_by_one(
        self, table: _Table, events: Sequence[Event], result: WriteResult
    ) -> None:
        """Find the rows ClickHouse cannot take; insert the others. Rare, so slow is fine."""
        for event in events:
            try:
                result.inserted[table.name] += self.ch.insert(
                    table.name, table.columns, [table.row(event)]
                )
            except _DATA_ERRORS as exc:
                result.rejected[event_key(event)] = f"{REJECTED_BY_CLICKHOUSE}: {exc}"
