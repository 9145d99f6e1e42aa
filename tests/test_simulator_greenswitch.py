"""The simulator against greenswitch 0.0.19's own OutboundESLServer (what the IVR is built on).

greenswitch runs in its own OS thread (its own gevent hub), the simulator's asyncio loop in the
test's thread, like a real IVR and a real FreeSWITCH in two processes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gevent import monkey

from simulator import CallResult, CallSpec, Fault, run_calls_sync
from simulator.rawclient import FAST, NUMBER, PAGD

pytestmark = pytest.mark.timeout(60)

AppFn = Callable[[Any, dict[str, Any]], None]
PAGD_ARGS = PAGD.split(" ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def greenswitch_ivr() -> Iterator[Callable[[AppFn], tuple[int, list[dict[str, Any]]]]]:
    """Start an OutboundESLServer whose per-call app is ``fn(session, record)``."""
    from greenswitch.esl import OutboundESLServer

    thread_cls = monkey.get_original("threading", "Thread")  # a real OS thread, patched or not
    servers: list[Any] = []
    threads: list[Any] = []

    def start(fn: AppFn) -> tuple[int, list[dict[str, Any]]]:
        records: list[dict[str, Any]] = []

        class App:
            def __init__(self, session: Any) -> None:
                self.session = session

            def run(self) -> None:
                record: dict[str, Any] = {"session_data": dict(self.session.session_data)}
                try:
                    fn(self.session, record)
                except Exception as exc:  # recorded for the test to assert on
                    record["exception"] = type(exc).__name__
                records.append(record)

        port = _free_port()
        server = OutboundESLServer("127.0.0.1", port, application=App, max_connections=500)
        servers.append(server)
        t = thread_cls(target=server.listen, daemon=True)
        threads.append(t)
        t.start()
        deadline = time.monotonic() + 5
        while not server._running and time.monotonic() < deadline:
            time.sleep(0.01)
        return port, records

    yield start
    for server in servers:
        server.stop()
    for t in threads:
        t.join(5)


def _survey(session: Any, record: dict[str, Any]) -> None:
    """The shape of our IVR: myevents, linger, welcome, two questions, goodbye, hangup."""
    record["myevents"] = session.send("myevents").data
    record["linger"] = session.send("linger").data
    session.playback("welcome.wav")
    record["digits"] = []
    for var in ("q1", "q2"):
        args = [*PAGD_ARGS[:7], var, *PAGD_ARGS[8:]]
        digits = session.play_and_get_digits(*args, response_timeout=10)
        record["digits"].append(digits)
        session.raise_if_disconnected()
    session.playback("bye.wav")
    session.hangup()


def _run(port: int, calls: list[CallSpec]) -> list[CallResult]:
    return run_calls_sync(calls, ("127.0.0.1", port), concurrency=20, config=FAST).results


def _wait(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(records) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return records


def test_greenswitch_parses_connect_gets_replies_and_digits(greenswitch_ivr: Any) -> None:
    port, records = greenswitch_ivr(_survey)
    [result] = _run(port, [CallSpec(number=NUMBER, caller="+491701234567", keys=["1", ["9", "2"]])])
    [rec] = _wait(records, 1)
    data = rec["session_data"]
    assert data["Content-Type"] == "command/reply"
    assert data["Reply-Text"] == "+OK"
    assert data["Socket-Mode"] == "async" and data["Control"] == "full"
    assert data["variable_ct_tracking_number"] == NUMBER
    assert data["Caller-Caller-ID-Number"] == "+491701234567"
    assert data["Channel-Name"] == "sofia/internal/1001@192.0.2.10"
    assert data["variable_uuid"] == data["Unique-ID"] == result.uuid
    assert rec["myevents"] == "+OK Events Enabled"
    assert rec["linger"] == "+OK will linger"
    assert rec["digits"] == ["1", "2"]
    assert "exception" not in rec
    assert result.statuses == ["ok", "ok"] and result.outcome == "complete"
    assert result.hangup_by == "ivr" and result.error is None
    assert result.turnarounds, "turnaround samples recorded"


def test_hangup_mid_prompt_complete_before_notice_returns_none(greenswitch_ivr: Any) -> None:
    port, records = greenswitch_ivr(_survey)
    spec = CallSpec(number=NUMBER, keys=["1", "2"], hangup_after=1)
    [result] = _run(port, [spec])
    [rec] = _wait(records, 1)
    # esl.md §7: None if EXECUTE_COMPLETE precedes the linger notice on the wire ...
    assert rec["digits"] == ["1", None]
    assert rec["exception"] == "OutboundSessionHasGoneAway"  # from raise_if_disconnected()
    assert result.statuses == ["ok", "hangup"] and result.outcome == "incomplete"


def test_hangup_mid_prompt_notice_first_raises(greenswitch_ivr: Any) -> None:
    port, records = greenswitch_ivr(_survey)
    spec = CallSpec(
        number=NUMBER, keys=["1", "2"], hangup_after=1, faults=[Fault.LINGER_BEFORE_COMPLETE]
    )
    [result] = _run(port, [spec])
    [rec] = _wait(records, 1)
    # ... otherwise the pending wait fails with the exception.
    assert rec["digits"] == ["1"]
    assert rec["exception"] == "OutboundSessionHasGoneAway"
    assert result.outcome == "incomplete"


def test_split_frames_are_tolerated_by_greenswitch(greenswitch_ivr: Any) -> None:
    port, records = greenswitch_ivr(_survey)
    spec = CallSpec(number=NUMBER, keys=["2", "1"], faults=[Fault.SPLIT_FRAMES])
    [result] = _run(port, [spec])
    [rec] = _wait(records, 1)
    assert rec["digits"] == ["2", "1"] and result.outcome == "complete"


def test_encoded_newline_shows_greenswitchs_bogus_header(greenswitch_ivr: Any) -> None:
    def app(session: Any, record: dict[str, Any]) -> None:
        session.hangup()

    port, records = greenswitch_ivr(app)
    _run(port, [CallSpec(number=NUMBER, faults=[Fault.ENCODED_NEWLINE])])
    [rec] = _wait(records, 1)
    # esl.md §7: greenswitch unquotes the whole block before splitting lines.
    assert rec["session_data"]["X-Injected"] == "bogus"
    assert rec["session_data"]["variable_ct_note"] == "first line"


def test_many_concurrent_calls_through_greenswitch(greenswitch_ivr: Any) -> None:
    from simulator import generate_calls

    port, records = greenswitch_ivr(_survey)
    calls = generate_calls(60, seed=5, criteria=2)
    results = run_calls_sync(calls, ("127.0.0.1", port), concurrency=60, config=FAST).results
    assert all(r.error is None for r in results)
    _wait(records, 60)
    by_uuid = {r.uuid: r for r in results}
    for rec in records:
        sim = by_uuid[rec["session_data"]["Unique-ID"]]
        for got, crit in zip(rec.get("digits", []), sim.criteria, strict=False):
            if crit.status == "ok":
                assert got == crit.digits
