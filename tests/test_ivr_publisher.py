"""The publisher never blocks its caller, keeps events while NATS is away, retries until
JetStream acknowledges, and counts (never hides) an overflow. Real nats-server throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.ivr.loop_thread import LoopThread
from services.ivr.metrics import IvrMetrics
from services.ivr.nats_link import NatsLink
from services.ivr.publisher import EventPublisher
from shared.events import AnswerEvent
from shared.ids import answer_id, survey_id
from shared.stack import LocalStack

from ivr_kit import stream_events, wait_for


def answer(i: int) -> AnswerEvent:
    call = f"call-{i}"
    return AnswerEvent(
        tenant_id="acme",
        call_uuid=call,
        profile_id="p1",
        profile_version=1,
        answer_id=answer_id(call, "q"),
        survey_id=survey_id(call),
        criterion_key="q",
        digits="1",
        code="1",
        label="ja",
        status="ok",
        attempts=1,
        answered_at=datetime.now(UTC),
    )


class Rig:
    def __init__(self, url: str, capacity: int) -> None:
        self.metrics = IvrMetrics()
        self.loop = LoopThread("test-pub")

        async def nothing(js: object) -> None:
            return None

        self.link = NatsLink([url], self.metrics, nothing)
        self.publisher = EventPublisher(self.loop, self.link, self.metrics, capacity)
        self.loop.start()
        self.loop.submit(self.publisher.start()).result(5)
        self.loop.submit(self.link.start()).result(5)

    def close(self) -> None:
        self.loop.submit(self.publisher.stop()).result(5)
        self.loop.submit(self.link.close()).result(5)
        self.loop.stop()


@pytest.fixture
def rig(nats_url: str) -> Iterator[Rig]:
    r = Rig(nats_url, capacity=10_000)
    wait_for(lambda: r.link.connected, 5, what="connected")
    yield r
    r.close()


def test_publishes_with_msg_id(nats_url: str, rig: Rig) -> None:
    for i in range(200):
        assert rig.publisher.submit(answer(i))
    assert rig.publisher.wait_empty(10)
    events = stream_events(nats_url)
    assert len(events) == 200
    assert all(e["_msg_id"] == e["answer_id"] for e in events)
    assert rig.metrics.published.labels("answer")._value.get() == 200


def test_nats_down_then_back_loses_nothing(nats_stack: LocalStack, nats_url: str, rig: Rig) -> None:
    for i in range(50):
        rig.publisher.submit(answer(i))
    assert rig.publisher.wait_empty(10)
    nats_stack.stop_nats(kill=True)
    wait_for(lambda: not rig.link.connected, 10, what="disconnect noticed")
    t0 = time.monotonic()
    for i in range(50, 550):
        assert rig.publisher.submit(answer(i))  # never blocks, NATS or not
    assert time.monotonic() - t0 < 0.5
    time.sleep(0.5)
    assert rig.publisher.depth == 500
    assert rig.metrics.buffer_depth._value.get() == 500
    nats_stack.start_nats()
    assert rig.publisher.wait_empty(20), f"still buffered: {rig.publisher.depth}"
    events = stream_events(nats_url)
    assert sorted(e["call_uuid"] for e in events) == sorted(f"call-{i}" for i in range(550))


def test_retried_publish_is_deduplicated(nats_url: str, rig: Rig) -> None:
    rig.publisher.submit(answer(1))
    rig.publisher.submit(answer(1))  # e.g. a publish whose ack got lost and was sent again
    assert rig.publisher.wait_empty(10)
    assert len(stream_events(nats_url)) == 1
    assert rig.metrics.duplicates._value.get() == 1


def test_overflow_is_counted_and_logged(
    nats_stack: LocalStack, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nats_stack.stop_nats(kill=True)
    r = Rig(nats_url, capacity=5)
    try:
        accepted = [r.publisher.submit(answer(i)) for i in range(8)]
        assert accepted == [True] * 5 + [False] * 3
        assert r.metrics.buffer_overflow._value.get() == 3
        assert sum("publish buffer full" in rec.getMessage() for rec in caplog.records) == 3
        nats_stack.start_nats()
        assert r.publisher.wait_empty(20)
        assert len(stream_events(nats_url)) == 5
    finally:
        r.close()
