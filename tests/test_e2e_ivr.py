"""End to end: simulator (FreeSWITCH) -> IVR -> NATS JetStream -> aggregator -> ClickHouse.

Real nats-server and clickhouse-server; the IVR and the aggregator run as subprocesses
(``python -m convtrack ...``); only FreeSWITCH is played by the simulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.clickhouse.client import ServerClickHouse
from shared.ids import answer_id, survey_id
from shared.stack import LocalStack, free_port
from simulator import CallSpec, SimConfig, run_calls_sync, start_in_thread

from ivr_kit import (
    ROOT,
    IvrProcess,
    kv_put,
    profile,
    standard_config,
    stream_count,
    stream_events,
    wait_for,
)

FAST = SimConfig(timing=0.01)
KEYS3: list[str | list[str]] = ["1", "2", "7#"]


@pytest.fixture
def ivr(nats_url: str, tmp_path: Path) -> Iterator[IvrProcess]:
    standard_config(nats_url)
    proc = IvrProcess(nats_url, tmp_path).start()
    yield proc
    proc.stop()


def by_call(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(events, key=lambda e: e.get("criterion_index", 0)):
        out.setdefault(e["call_uuid"], []).append(e)
    return out


# Scripted calls with their exact expected outcome (profile p1: yes/no, grade 1-6, order value).
SCRIPT: list[tuple[CallSpec, str | None, list[str]]] = [
    (
        CallSpec(uuid="c-valid", number="+493011100", keys=["1", "3", "4200#"]),
        "complete",
        ["ok", "ok", "ok"],
    ),
    (
        CallSpec(uuid="c-retry", number="+493022200", keys=[["9", "1"], ["7", "2"], "15#"]),
        "complete",
        ["ok", "ok", "ok"],
    ),
    (
        CallSpec(uuid="c-silence", number="+493011100", keys=["", "", ""]),
        "complete",
        ["timeout", "timeout", "timeout"],
    ),
    (
        CallSpec(uuid="c-hangup", number="+493011100", keys=["2"], hangup_after=1),
        "incomplete",
        ["ok", "hangup"],
    ),
    (
        CallSpec(uuid="c-invalid", number="+493011100", keys=[["9", "9", "9"], "1", "0#"]),
        "complete",
        ["invalid", "ok", "ok"],
    ),
    (CallSpec(uuid="c-noprofile", number="+493099900", keys=["1"]), "no_profile", []),
    (CallSpec(uuid="c-unknown", number="+4940555555", keys=["1"]), None, []),
]


def run_aggregator(nats_url: str, clickhouse_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CT_NATS_URL": nats_url,
        "CT_CLICKHOUSE_URL": clickhouse_url,
        "CT_AGGREGATOR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "CT_AGGREGATOR_MAX_WAIT_MS": "50",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "convtrack", "aggregator"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_scripted_calls_end_to_end(
    nats_url: str, clickhouse_url: str, ivr: IvrProcess, tmp_path: Path
) -> None:
    result = run_calls_sync([s for s, _, _ in SCRIPT], ivr.address, concurrency=10, config=FAST)
    assert result.tally.errors == 0, [r.error for r in result.results]

    # The simulator saw what the script asked for.
    for (spec, outcome, statuses), seen in zip(SCRIPT, result.results, strict=True):
        assert seen.statuses == statuses, spec.uuid
        if outcome is not None:
            assert seen.outcome == outcome, spec.uuid

    # JetStream holds exactly one event per answer and per survey, keyed by the derived ids.
    n_answers = sum(len(st) for _, _, st in SCRIPT)
    wait_for(lambda: stream_count(nats_url) == n_answers + 6, 10, what="all events")
    answers = by_call(stream_events(nats_url, "answers"))
    surveys = {e["call_uuid"]: e for e in stream_events(nats_url, "surveys")}
    for spec, outcome, statuses in SCRIPT:
        call = spec.uuid or ""
        got = answers.get(call, [])
        assert [a["status"] for a in got] == statuses, call
        for a in got:
            assert a["_msg_id"] == a["answer_id"] == answer_id(call, a["criterion_key"])
            assert a["survey_id"] == survey_id(call)
        if outcome is None:
            assert call not in surveys  # unknown number: no tenant, only a metric and a log
        else:
            assert surveys[call]["status"] == outcome
            assert surveys[call]["answers"] == len(statuses)
            assert surveys[call]["_msg_id"] == survey_id(call)

    retry = answers["c-retry"]
    assert (retry[0]["label"], retry[0]["success"], retry[0]["attempts"]) == (
        "ERFOLGREICH",
        True,
        2,
    )
    assert (retry[1]["label"], retry[1]["value"]) == ("gut", 2.0)
    assert retry[2]["value"] == 15.0 and retry[2]["digits"] == "15"
    assert retry[0]["pool_id"] == "pool-a" and retry[0]["tracking_number"] == "+493022200"
    valid = answers["c-valid"]
    assert valid[0]["caller"] == "+491701234567" and valid[0]["agent"] == "1001"
    assert valid[0]["profile_version"] > 0
    assert answers["c-invalid"][0]["attempts"] == 3
    assert surveys["c-noprofile"]["tenant_id"] == "acme"

    metrics = ivr.metrics()
    assert metrics['ct_ivr_no_profile_total{tenant_known="no"}'] == 1
    assert metrics['ct_ivr_no_profile_total{tenant_known="yes"}'] == 1
    assert metrics['ct_ivr_events_published_total{kind="answer"}'] == n_answers
    assert metrics["ct_ivr_buffer_depth"] == 0

    # ... and the aggregator carries exactly that into ClickHouse.
    agg = run_aggregator(nats_url, clickhouse_url, tmp_path / "aggregator.log")
    ch = ServerClickHouse(clickhouse_url)
    try:

        def counts() -> bool:
            rows = ch.execute("SELECT count() FROM answers")
            return rows[0][0] == n_answers and ch.execute("SELECT count() FROM surveys")[0][0] == 6

        wait_for(counts, 30, 0.2, "rows in ClickHouse")
        by_status = dict(
            ch.execute("SELECT toString(status), count() FROM answers GROUP BY status")
        )
        assert by_status == dict(Counter(s for _, _, st in SCRIPT for s in st))
        outcomes = dict(ch.execute("SELECT toString(status), count() FROM surveys GROUP BY status"))
        assert outcomes == {"complete": 4, "incomplete": 1, "no_profile": 1}
        total = ch.execute(
            "SELECT sum(value) FROM answers WHERE criterion_key = 'order_value' AND status = 'ok'"
        )
        assert total[0][0] == 4200 + 15 + 0
    finally:
        agg.terminate()
        agg.wait(15)
        ch.close()


def test_profile_edit_applies_to_the_next_call(nats_url: str, ivr: IvrProcess) -> None:
    first = run_calls_sync(
        [CallSpec(uuid="before", number="+493011100", keys=["1", "2", "3#"])],
        ivr.address,
        config=FAST,
    )
    assert first.results[0].statuses == ["ok", "ok", "ok"]
    (revision,) = kv_put(
        nats_url,
        profile(
            criteria=[
                {
                    "key": "rating",
                    "label": "Bewertung",
                    "timeout_ms": 1000,
                    "input": {"type": "code", "code_map_id": "grades"},
                }
            ]
        ),
    )
    time.sleep(1.0)  # the promise: an edit applies to the next call within 1 s, no restart
    second = run_calls_sync(
        [CallSpec(uuid="after", number="+493011100", keys=["5"])], ivr.address, config=FAST
    )
    assert second.results[0].statuses == ["ok"]
    wait_for(lambda: stream_count(nats_url) == 3 + 1 + 2, 10, what="events")
    answers = by_call(stream_events(nats_url, "answers"))
    assert [a["criterion_key"] for a in answers["after"]] == ["rating"]
    assert answers["after"][0]["label"] == "mangelhaft"
    assert answers["after"][0]["profile_version"] == revision
    assert answers["before"][0]["profile_version"] < revision


def test_nats_restart_during_calls_loses_nothing(
    nats_stack: LocalStack, nats_url: str, ivr: IvrProcess
) -> None:
    calls = [
        CallSpec(uuid=f"n-{i}", number="+493011100", keys=["1", "2", "99#"]) for i in range(300)
    ]
    future = start_in_thread(calls, ivr.address, concurrency=100, config=SimConfig(timing=0.05))
    time.sleep(0.7)
    nats_stack.stop_nats(kill=True)
    time.sleep(1.5)  # calls go on from the in-memory configuration; events wait in the buffer
    assert ivr.metric("ct_ivr_buffer_depth") > 0
    nats_stack.start_nats()
    result = future.result(120)
    assert result.tally.errors == 0
    assert result.tally.surveys["complete"] == 300
    wait_for(lambda: ivr.metric("ct_ivr_buffer_depth") == 0, 30, 0.2, "buffer drained")
    answers = stream_events(nats_url, "answers")
    surveys = stream_events(nats_url, "surveys")
    assert len(answers) == 900 and len({a["answer_id"] for a in answers}) == 900
    assert len(surveys) == 300 and {s["status"] for s in surveys} == {"complete"}
    assert ivr.metric("ct_ivr_publish_retries_total") >= 0


def test_500_concurrent_surveys_on_one_process(nats_url: str, ivr: IvrProcess) -> None:
    n = 500
    calls = [
        CallSpec(uuid=f"k-{i}", number="+493011100", keys=["1", "4", "250#"]) for i in range(n)
    ]
    peak = [0.0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], ivr.metric("ct_ivr_active_surveys"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # ~3 s a call at this timing, so all 500 are on the IVR at the same time.
        result = start_in_thread(
            calls, ivr.address, concurrency=n, config=SimConfig(timing=0.25)
        ).result(120)
    finally:
        stop.set()
        watcher.join()
    assert result.tally.errors == 0, [r.error for r in result.results if r.error][:5]
    assert result.tally.surveys["complete"] == n
    assert peak[0] >= 0.9 * n, f"peak concurrency {peak[0]}"
    wait_for(lambda: stream_count(nats_url) == 4 * n, 30, 0.2, "all events on the stream")
    turn = result.tally.figures()["turnaround_ms"]
    # Only "the hub never stalls" here (a shared CI box is noisy); bench/ivr.py has the figures.
    assert turn["p99"] < 1000, turn


def test_sigterm_lets_running_surveys_finish(nats_url: str, tmp_path: Path) -> None:
    standard_config(nats_url)
    proc = IvrProcess(nats_url, tmp_path, CT_IVR_GRACE_S="30").start()
    calls = [CallSpec(uuid=f"t-{i}", number="+493011100", keys=["1", "2", "7#"]) for i in range(20)]
    future = start_in_thread(calls, proc.address, concurrency=20, config=SimConfig(timing=0.3))
    wait_for(lambda: proc.metric("ct_ivr_active_surveys") == 20, 10, what="surveys running")
    assert proc.terminate(timeout=40) == 0
    result = future.result(30)
    assert result.tally.errors == 0
    assert result.tally.surveys["complete"] == 20
    assert stream_count(nats_url) == 20 * 4  # the buffer was flushed before the exit
    late = run_calls_sync([CallSpec(number="+493011100")], proc.address, config=FAST)
    assert late.results[0].error  # nobody listens any more


def test_grace_period_cuts_and_still_reports(nats_url: str, tmp_path: Path) -> None:
    standard_config(nats_url)
    proc = IvrProcess(nats_url, tmp_path, CT_IVR_GRACE_S="0.5").start()
    calls = [CallSpec(uuid=f"g-{i}", number="+493011100", keys=["1", "2", "7#"]) for i in range(5)]
    future = start_in_thread(calls, proc.address, concurrency=5, config=SimConfig(timing=1.0))
    wait_for(lambda: proc.metric("ct_ivr_active_surveys") == 5, 10, what="surveys running")
    assert proc.terminate(timeout=30) == 0
    future.result(60)
    surveys = stream_events(nats_url, "surveys")
    assert sorted(s["call_uuid"] for s in surveys) == sorted(c.uuid or "" for c in calls)
    assert {s["status"] for s in surveys} == {"incomplete"}


def test_calls_beyond_capacity_are_refused(nats_url: str, tmp_path: Path) -> None:
    standard_config(nats_url)
    proc = IvrProcess(nats_url, tmp_path, CT_IVR_MAX_CONNECTIONS="2").start()
    try:
        calls = [CallSpec(uuid=f"cap-{i}", number="+493011100", keys=KEYS3) for i in range(4)]
        result = run_calls_sync(calls, proc.address, concurrency=4, config=SimConfig(timing=0.1))
        done = [r for r in result.results if r.error is None]
        assert len(done) == 2 and all(r.outcome == "complete" for r in done)
        assert proc.metric("ct_ivr_connections_rejected_total") == 2
        later = run_calls_sync(calls[:1], proc.address, config=FAST)  # capacity is back
        assert later.results[0].error is None
    finally:
        proc.stop()
