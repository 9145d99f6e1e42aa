"""Aggregator parts on their own: message validation, delivery counts, and the batch writer
(dedup against stored rows, poison rows) on clickhouse-server 18.16 and on chDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from services.aggregator.consumer import delivery_count
from services.aggregator.decode import Rejected, decode, event_key
from services.aggregator.writer import BatchWriter
from shared import ids
from shared.clickhouse.client import ClickHouse
from shared.events import AnswerEvent, SurveyEvent


def answer(call: str = "c1", key: str = "grade", tenant: str = "acme", **kw: Any) -> AnswerEvent:
    fields: dict[str, Any] = dict(
        tenant_id=tenant,
        call_uuid=call,
        profile_id="p1",
        answer_id=ids.answer_id(call, key),
        survey_id=ids.survey_id(call),
        criterion_key=key,
        status="ok",
        value=2.0,
        code="2",
        label="gut",
        answered_at=datetime(2026, 1, 5, 10, 30, tzinfo=UTC),
    )
    return AnswerEvent(**{**fields, **kw})


def survey(call: str = "c1", tenant: str = "acme") -> SurveyEvent:
    at = datetime(2026, 1, 5, 10, 29, tzinfo=UTC)
    return SurveyEvent(
        tenant_id=tenant, call_uuid=call, profile_id="p1", survey_id=ids.survey_id(call),
        status="complete", answers=1, started_at=at, ended_at=at,
    )  # fmt: skip


# -- decode --------------------------------------------------------------------------------------


def test_decode_accepts_valid_answer_and_survey() -> None:
    a, s = answer(), survey()
    assert decode("ct.v1.answers.acme", a.model_dump_json().encode()) == a
    assert decode("ct.v1.surveys.acme", s.model_dump_json().encode()) == s


@pytest.mark.parametrize(
    ("subject", "body", "kind", "needle"),
    [
        ("ct.v1.answers.acme", b"{nope", "malformed_json", "Invalid JSON"),
        ("ct.v1.answers.acme", b"\xff\xfe", "malformed_json", ""),
        ("ct.v1.answers.acme", b"42", "malformed_json", "not a JSON object"),
        ("ct.v1.answers.acme", {"schema_version": 7}, "unknown_schema_version", "schema_version 7"),
        ("ct.v1.answers.acme", {"drop": ["status", "answered_at"]}, "missing_fields",
         "status, answered_at"),
        ("ct.v1.answers.acme", {"digits": "12a"}, "invalid_fields", "digits"),
        ("ct.v1.answers.acme", {"value": "Infinity"}, "invalid_fields", "finite"),
        ("ct.v1.answers.other", {}, "tenant_mismatch", "'other' != body tenant_id 'acme'"),
        ("ct.v1.other.acme", {}, "unknown_subject", "ct.v1.other.acme"),
    ],
)  # fmt: skip
def test_decode_gives_a_category_and_a_readable_reason(
    subject: str, body: bytes | dict[str, Any], kind: str, needle: str
) -> None:
    if isinstance(body, dict):
        doc = answer().model_dump(mode="json")
        for field in body.pop("drop", []):
            del doc[field]
        raw = json.dumps({**doc, **body}).encode()
    else:
        raw = body
    outcome = decode(subject, raw)
    assert isinstance(outcome, Rejected), outcome
    assert outcome.kind == kind
    assert outcome.reason.startswith(kind + ":")
    assert needle in outcome.reason
    assert "\n" not in outcome.reason


def test_event_keys_are_tenant_scoped() -> None:
    assert event_key(answer(tenant="a")) != event_key(answer(tenant="b"))
    assert event_key(survey())[0] == "surveys"


@pytest.mark.parametrize(
    ("reply", "count"),
    [
        ("$JS.ACK.CT_EVENTS.aggregator.1.10.10.1700000000000000000.0", 1),
        ("$JS.ACK.CT_EVENTS.aggregator.3.10.12.1700000000000000000.5", 3),
        ("$JS.ACK.hub.ACCHASH.CT_EVENTS.aggregator.2.10.12.1700000000000000000.5.abc", 2),
    ],
)
def test_delivery_count_from_the_ack_subject(reply: str, count: int) -> None:
    msg = cast(Msg, SimpleNamespace(reply=reply))
    assert delivery_count(msg) == count


# -- writer, on both ClickHouse targets ------------------------------------------------------------


@pytest.fixture(params=["server", "chdb"])
def ch(request: pytest.FixtureRequest) -> ClickHouse:
    return cast(
        ClickHouse, request.getfixturevalue("server_ch" if request.param == "server" else "chdb_ch")
    )


def _count(ch: ClickHouse, table: str) -> int:
    return int(ch.execute(f"SELECT count() FROM {table}")[0][0])


def test_writer_inserts_answers_and_surveys_in_one_insert_each(ch: ClickHouse) -> None:
    events = [answer("c1"), answer("c2"), survey("c1")]
    result = BatchWriter(ch).write(events, check=set())
    assert result.inserted == {"answers": 2, "surveys": 1}
    assert (_count(ch, "answers"), _count(ch, "surveys")) == (2, 1)


def test_writer_skips_events_already_stored_when_checked(ch: ClickHouse) -> None:
    writer = BatchWriter(ch)
    first = [answer("c1"), survey("c1")]
    writer.write(first, check=set())
    again = [*first, answer("c2")]
    result = writer.write(again, check=None)  # None: check every key
    assert result.already_stored == {event_key(e) for e in first}
    assert result.inserted == {"answers": 1, "surveys": 0}
    assert (_count(ch, "answers"), _count(ch, "surveys")) == (2, 1)
    figures = ch.execute("SELECT sum(answers) FROM conversion_daily")
    assert int(figures[0][0]) == 2


def test_writer_lookup_is_tenant_scoped(ch: ClickHouse) -> None:
    """The same id stored for another tenant does not hide this tenant's event."""
    writer = BatchWriter(ch)
    writer.write([answer("c1", tenant="acme")], check=set())
    other = answer("c1", tenant="globex")
    result = writer.write([other], check=None)
    assert result.already_stored == set()
    assert result.inserted["answers"] == 1


def test_writer_only_checks_the_keys_it_is_told_to(server_ch: ClickHouse) -> None:
    """First deliveries are trusted (no lookup); that is why redeliveries must be named."""
    writer = BatchWriter(server_ch)
    writer.write([answer("c1")], check=set())
    result = writer.write([answer("c1")], check=set())
    assert result.inserted["answers"] == 1  # not checked, so inserted again


def test_writer_isolates_a_row_clickhouse_cannot_take(server_ch: ClickHouse) -> None:
    bad = answer("c2").model_copy(update={"profile_version": 2**40})  # UInt32 column
    result = BatchWriter(server_ch).write([answer("c1"), bad, answer("c3")], check=set())
    assert list(result.rejected) == [event_key(bad)]
    assert result.rejected[event_key(bad)].startswith("rejected_by_clickhouse: ")
    assert result.inserted["answers"] == 2


# -- dead letters --------------------------------------------------------------------------------


def test_a_failed_ack_of_a_dead_letter_does_not_end_the_batch() -> None:
    """Publishing the dead letter worked but its ack did not (NATS went away): the message is
    redelivered and dead-lettered again (same Nats-Msg-Id), so the batch carries on."""
    import asyncio

    import nats.errors

    from services.aggregator.service import Aggregator
    from shared.settings import Settings

    published: list[str] = []

    class FakeJs:
        async def publish(self, subject: str, data: bytes, **kw: Any) -> None:
            published.append(subject)

    class FailingAckMsg:
        subject = "ct.answers.acme"
        data = b"{"
        headers = None
        metadata = SimpleNamespace(stream="CT_EVENTS", sequence=SimpleNamespace(stream=7))

        async def ack(self) -> None:
            raise nats.errors.ConnectionClosedError

    agg = Aggregator(Settings(), cast(ClickHouse, None))
    rejected = [(cast(Msg, FailingAckMsg()), Rejected("malformed_json", "malformed_json: x"))]
    asyncio.run(agg._dead_letter_all(cast(Any, FakeJs()), rejected))
    assert len(published) == 1
    assert agg.metrics.dead_letters.labels("malformed_json")._value.get() == 1
