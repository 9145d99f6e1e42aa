"""The answer pipeline end to end on real servers: JetStream -> ``convtrack aggregator`` ->
ClickHouse (server 18.16 and chDB 26.x), including the faults of issue 2.

Every aggregator here is a real ``convtrack aggregator`` subprocess (except the chDB run, which
drives the same ``Aggregator`` class in-process against chDB). Results are polled with generous
deadlines; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.aggregator.service import FAULT_EXIT_CODE, Aggregator
from shared import ids
from shared import nats_names as names
from shared.clickhouse.client import ClickHouse, ServerClickHouse
from shared.events import AnswerEvent, SurveyEvent
from shared.publish import encode
from shared.settings import Settings
from shared.stack import LocalStack, free_port

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 60.0

# ---------------------------------------------------------------------------------------------
# Events and their expected aggregates, computed in Python
# ---------------------------------------------------------------------------------------------

SUCCESS_LABELS = {"1": ("ERFOLGREICH", True), "2": ("NICHT ERFOLGREICH", False)}
GRADE_LABELS = ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"]
# Yesterday 22:00 to today 02:00 (UTC): two days, several hours. Recent on purpose: chDB has
# the 400-day TTL of migration 4 and would drop older raw rows (the aggregates would stay).
BASE_TIME = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    hours=2
)


def make_calls(
    n_calls: int, seed: int = 7, tenants: tuple[str, ...] = ("acme", "globex")
) -> list[AnswerEvent | SurveyEvent]:
    """Deterministic surveys: per call up to three answers (success, grade, order value) and one
    survey event; a mix of statuses, labels, values, numbers, pools, hours and days."""
    rng = random.Random(seed)
    events: list[AnswerEvent | SurveyEvent] = []
    for n in range(n_calls):
        tenant = tenants[n % len(tenants)]
        call = f"call-{seed}-{n}"
        common: dict[str, Any] = dict(
            tenant_id=tenant,
            call_uuid=call,
            profile_id=rng.choice(["p-sales", "p-support"]),
            profile_version=1,
            tracking_number=rng.choice(["+4930111111", "+4930222222"]),
            pool_id=rng.choice(["", "pool-1"]),
        )
        started = BASE_TIME + timedelta(minutes=rng.randrange(0, 4 * 60), seconds=rng.randrange(60))
        hangup_at = rng.choice([3, 3, 3, 3, 1, 2])  # criterion index that hangs up, 3 = none
        answers: list[AnswerEvent] = []
        for index, key in enumerate(("success", "grade", "order_value")):
            if index > hangup_at:
                break
            status = (
                "hangup" if index == hangup_at else rng.choice(["ok"] * 6 + ["invalid", "timeout"])
            )
            fields: dict[str, Any] = {}
            if status == "ok":
                fields = _answer_fields(key, rng)
            answers.append(
                AnswerEvent(
                    **common,
                    answer_id=ids.answer_id(call, key),
                    survey_id=ids.survey_id(call),
                    criterion_key=key,
                    criterion_index=index,
                    status=status,
                    attempts=1,
                    answered_at=started + timedelta(seconds=10 * (index + 1)),
                    **fields,
                )
            )
        events.extend(answers)
        events.append(
            SurveyEvent(
                **common,
                survey_id=ids.survey_id(call),
                status="complete" if hangup_at == 3 else "incomplete",
                answers=len(answers),
                started_at=started,
                ended_at=started + timedelta(seconds=45),
            )
        )
    return events


def _answer_fields(key: str, rng: random.Random) -> dict[str, Any]:
    if key == "success":
        code = rng.choice(["1", "1", "2"])
        label, success = SUCCESS_LABELS[code]
        return dict(digits=code, code=code, label=label, success=success)
    if key == "grade":
        grade = rng.randrange(1, 7)
        return dict(
            digits=str(grade), code=str(grade), label=GRADE_LABELS[grade - 1], value=float(grade)
        )
    value = rng.randrange(0, 20_000) / 2  # halves: float sums stay exact
    return dict(digits=str(int(value)), value=value)


def _bucket(at: datetime, grain: str) -> datetime | date:
    at = at.astimezone(UTC).replace(tzinfo=None)
    return at.replace(minute=0, second=0, microsecond=0) if grain == "hour" else at.date()


Figures = dict[tuple[Any, ...], tuple[Any, ...]]


def expected_figures(events: list[AnswerEvent | SurveyEvent], grain: str) -> Figures:
    """(tenant, profile, criterion, number, pool, bucket) -> (answers, errors, error_rate,
    successes, valued answers, sum, min, max), the definitions of design §8."""
    groups: dict[tuple[Any, ...], list[AnswerEvent]] = defaultdict(list)
    for e in events:
        if isinstance(e, AnswerEvent):
            key = (e.tenant_id, e.profile_id, e.criterion_key, e.tracking_number, e.pool_id)
            groups[(*key, _bucket(e.answered_at, grain))].append(e)
    out: Figures = {}
    for key, group in groups.items():
        errors = sum(1 for a in group if a.status != "ok")
        values = [a.value for a in group if a.status == "ok" and a.value is not None]
        out[key] = (
            len(group),
            errors,
            round(errors / len(group), 9),
            sum(1 for a in group if a.status == "ok" and a.success),
            len(values),
            float(sum(values)),
            min(values) if values else None,
            max(values) if values else None,
        )
    return out


def expected_labels(
    events: list[AnswerEvent | SurveyEvent], grain: str
) -> dict[tuple[Any, ...], int]:
    out: Counter[tuple[Any, ...]] = Counter()
    for e in events:
        if isinstance(e, AnswerEvent) and e.status == "ok" and e.label:
            key = (e.tenant_id, e.profile_id, e.criterion_key, e.tracking_number, e.pool_id)
            out[(*key, _bucket(e.answered_at, grain), e.code, e.label)] += 1
    return dict(out)


def expected_surveys(events: list[AnswerEvent | SurveyEvent]) -> dict[tuple[Any, ...], int]:
    out: Counter[tuple[Any, ...]] = Counter()
    for e in events:
        if isinstance(e, SurveyEvent):
            key = (e.tenant_id, e.profile_id, e.tracking_number, e.pool_id)
            out[(*key, _bucket(e.started_at, "hour"), e.status)] += 1
    return dict(out)


# ---------------------------------------------------------------------------------------------
# Reading the aggregates back: the BI views and the aggregate tables behind them
# ---------------------------------------------------------------------------------------------

DIMS = "tenant_id, profile_id, criterion_key, tracking_number, pool_id"


def _norm_bucket(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def figures_from_view(ch: ClickHouse, grain: str, tenants: tuple[str, ...]) -> Figures:
    rows = ch.execute(
        f"SELECT {DIMS}, {grain}, answers, errors, error_rate, successes, valued_answers,"
        " value_sum, value_min, value_max"
        f" FROM conversion_{'hourly' if grain == 'hour' else 'daily'} WHERE tenant_id IN %(t)s",
        {"t": tenants},
    )
    return {
        (*r[:5], _norm_bucket(r[5])): (
            int(r[6]), int(r[7]), round(float(r[8]), 9), int(r[9]), int(r[10]),
            float(r[11]), _opt(r[12]), _opt(r[13]),
        )
        for r in rows
    }  # fmt: skip


def figures_from_table(ch: ClickHouse, grain: str, tenants: tuple[str, ...]) -> Figures:
    table = "answers_hourly" if grain == "hour" else "answers_daily"
    rows = ch.execute(
        f"SELECT {DIMS}, {grain}, countMerge(answers), countIfMerge(errors),"
        " countIfMerge(successes), countIfMerge(valued), sumIfMerge(value_sum),"
        " minIfMerge(value_min), maxIfMerge(value_max)"
        f" FROM {table} WHERE tenant_id IN %(t)s GROUP BY {DIMS}, {grain}",
        {"t": tenants},
    )
    out: Figures = {}
    for r in rows:
        answers, errors, successes, valued = int(r[6]), int(r[7]), int(r[8]), int(r[9])
        out[(*r[:5], _norm_bucket(r[5]))] = (
            answers, errors, round(errors / answers, 9), successes, valued, float(r[10]),
            float(r[11]) if valued else None, float(r[12]) if valued else None,
        )  # fmt: skip
    return out


def labels_from(
    ch: ClickHouse, source: str, grain: str, tenants: tuple[str, ...]
) -> dict[tuple[Any, ...], int]:
    merged = "countMerge(answers)" if source.startswith("answer_") else "answers"
    group = f" GROUP BY {DIMS}, {grain}, code, label" if source.startswith("answer_") else ""
    rows = ch.execute(
        f"SELECT {DIMS}, {grain}, code, label, {merged} FROM {source}"
        f" WHERE tenant_id IN %(t)s{group}",
        {"t": tenants},
    )
    return {(*r[:5], _norm_bucket(r[5]), r[6], r[7]): int(r[8]) for r in rows}


def surveys_from(ch: ClickHouse, tenants: tuple[str, ...]) -> dict[tuple[Any, ...], int]:
    rows = ch.execute(
        "SELECT tenant_id, profile_id, tracking_number, pool_id, hour, status, countMerge(surveys)"
        " FROM surveys_hourly WHERE tenant_id IN %(t)s"
        " GROUP BY tenant_id, profile_id, tracking_number, pool_id, hour, status",
        {"t": tenants},
    )
    return {(*r[:4], _norm_bucket(r[4]), r[5]): int(r[6]) for r in rows}


def assert_aggregates_exact(
    ch: ClickHouse, events: list[AnswerEvent | SurveyEvent], target: str
) -> None:
    """Every aggregate, in the BI views and in the tables behind them, equals Python's."""
    tenants = tuple(sorted({e.tenant_id for e in events}))
    for grain in ("hour", "day"):
        want = expected_figures(events, grain)
        assert figures_from_view(ch, grain, tenants) == want, f"{target}: conversion view, {grain}"
        assert figures_from_table(ch, grain, tenants) == want, f"{target}: answers table, {grain}"
        labels = expected_labels(events, grain)
        suffix = "hourly" if grain == "hour" else "daily"
        assert labels_from(ch, f"conversion_labels_{suffix}", grain, tenants) == labels, target
        assert labels_from(ch, f"answer_labels_{suffix}", grain, tenants) == labels, target
    assert surveys_from(ch, tenants) == expected_surveys(events), f"{target}: surveys_hourly"
    raw = ch.execute(
        "SELECT count(), uniqExact(answer_id) FROM answers WHERE tenant_id IN %(t)s", {"t": tenants}
    )[0]
    n_answers = sum(1 for e in events if isinstance(e, AnswerEvent))
    assert (int(raw[0]), int(raw[1])) == (n_answers, n_answers), f"{target}: raw answers"


def stored_rows(ch: ClickHouse, tenants: tuple[str, ...] = ("acme", "globex")) -> int:
    """Answers plus surveys stored for ``tenants`` (what the aggregator inserted)."""
    params = {"t": tenants}
    answers = ch.execute("SELECT count() FROM answers WHERE tenant_id IN %(t)s", params)[0][0]
    surveys = ch.execute("SELECT count() FROM surveys WHERE tenant_id IN %(t)s", params)[0][0]
    return int(answers) + int(surveys)


# ---------------------------------------------------------------------------------------------
# NATS helpers
# ---------------------------------------------------------------------------------------------


async def _publish(url: str, items: list[tuple[str, bytes, dict[str, str]]]) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream()
        for subject, body, headers in items:
            await js.publish(subject, body, headers=headers, timeout=10)
    finally:
        await nc.close()


def publish_events(url: str, events: list[AnswerEvent | SurveyEvent]) -> None:
    asyncio.run(_publish(url, [encode(e) for e in events]))


def publish_raw(url: str, items: list[tuple[str, bytes, dict[str, str]]]) -> None:
    asyncio.run(_publish(url, items))


@dataclass
class DeadLetter:
    reason: str
    original_subject: str
    body: bytes


def read_dead_letters(url: str) -> list[DeadLetter]:
    async def read() -> list[DeadLetter]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(names.DEADLETTER_STREAM)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(names.DEADLETTER_STREAM, seq)
                headers = msg.headers or {}
                out.append(
                    DeadLetter(
                        headers[names.DEADLETTER_REASON_HEADER],
                        headers[names.DEADLETTER_SUBJECT_HEADER],
                        msg.data or b"",
                    )
                )
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


# ---------------------------------------------------------------------------------------------
# ``convtrack aggregator`` as a subprocess
# ---------------------------------------------------------------------------------------------


@dataclass
class AggregatorProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def ready_status(self) -> int:
        return self._get("/readyz")[0]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples named ``name`` (``ct_aggregator_messages_total``) with ``labels``."""
        status, text = self._get("/metrics")
        if status != 200:
            return float("nan")
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextmanager
def aggregator_process(
    tmp_path: Path, nats_url: str, clickhouse_url: str, name: str = "agg", **env: str
) -> Iterator[AggregatorProcess]:
    """Start ``convtrack aggregator``; always killed at the end, its log shown on failure."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    full_env = {
        **os.environ,
        "CT_NATS_URL": nats_url,
        "CT_CLICKHOUSE_URL": clickhouse_url,
        "CT_AGGREGATOR_METRICS_LISTEN": f"127.0.0.1:{port}",
        "CT_AGGREGATOR_MAX_WAIT_MS": "100",
        "CT_LOG_LEVEL": "INFO",
        **{f"CT_{k.upper()}": v for k, v in env.items()},
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convtrack", "aggregator"],
            env=full_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    handle = AggregatorProcess(proc, port, log)
    try:
        yield handle
    except BaseException:
        print(f"--- {name} log ---\n{handle.tail()}")
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def wait_for(what: str, check: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_gracefully(agg: AggregatorProcess) -> int:
    agg.proc.send_signal(signal.SIGTERM)
    return agg.proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


def run_in_process(
    settings: Settings, ch: ClickHouse, until: Callable[[Aggregator], bool]
) -> Aggregator:
    """Drive the ``Aggregator`` class in this process (used for chDB, which lives in-process)."""

    async def main() -> Aggregator:
        agg = Aggregator(settings, ch)
        task = asyncio.create_task(agg.run())
        deadline = time.monotonic() + DEADLINE_S
        while not until(agg) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        agg.stop()
        await asyncio.wait_for(task, timeout=30)
        return agg

    return asyncio.run(main())


def rows_inserted(agg: Aggregator) -> float:
    return sum(agg.metrics.rows.labels(t)._value.get() for t in ("answers", "surveys"))


def test_aggregates_exact_on_clickhouse_server_and_chdb(
    tmp_path: Path, nats_url: str, server_ch: ClickHouse, clickhouse_url: str, chdb_ch: ClickHouse
) -> None:
    events = make_calls(150)
    publish_events(nats_url, events)

    with aggregator_process(tmp_path, nats_url, clickhouse_url, aggregator_batch_size="64") as agg:
        wait_for("all rows on the server", lambda: stored_rows(server_ch) == len(events))
        assert stop_gracefully(agg) == 0
    assert_aggregates_exact(server_ch, events, "clickhouse-server 18.16")

    # The same stream, the same code path, into current ClickHouse (chDB), on its own durable.
    settings = Settings(
        nats_url=nats_url, aggregator_durable="chdb", aggregator_batch_size=64,
        aggregator_max_wait_ms=100,
    )  # fmt: skip
    done = run_in_process(settings, chdb_ch, lambda a: rows_inserted(a) >= len(events))
    assert rows_inserted(done) == len(events)
    assert_aggregates_exact(chdb_ch, events, "chDB")


def test_invalid_messages_are_dead_lettered_and_valid_ones_around_them_stored(
    tmp_path: Path, nats_url: str, server_ch: ClickHouse, clickhouse_url: str
) -> None:
    events = make_calls(30)
    valid = [encode(e) for e in events]
    good = events[0]
    assert isinstance(good, AnswerEvent)
    body = good.model_dump(mode="json")
    too_big = good.model_copy(
        update={"answer_id": "too-big", "profile_version": 2**40, "call_uuid": "too-big"}
    )
    bad: list[tuple[str, bytes, dict[str, str]]] = [
        ("ct.v1.answers.acme", b'{"tenant_id": "acme", "answer_id": ', {}),
        ("ct.v1.answers.acme", b'["a", "list"]', {}),
        ("ct.v1.answers.acme", _json({**body, "schema_version": 2, "answer_id": "v2"}), {}),
        ("ct.v1.answers.acme", _json(_without(body, "answer_id", "status")), {}),
        ("ct.v1.answers.globex", _json({**body, "answer_id": "wrong-tenant"}), {}),
        ("ct.v1.surveys.acme", _json({**body, "answer_id": "answer-on-survey-subject"}), {}),
        encode(too_big),  # valid JSON and model, but ClickHouse's UInt32 cannot hold it
    ]  # fmt: skip
    # Invalid messages between valid ones, so they share batches.
    mixed = valid[:20] + bad[:4] + valid[20:50] + bad[4:] + valid[50:]
    publish_raw(nats_url, mixed)

    with aggregator_process(tmp_path, nats_url, clickhouse_url, aggregator_batch_size="16") as agg:
        wait_for("valid rows stored", lambda: stored_rows(server_ch) == len(events))
        wait_for("dead letters", lambda: agg.metric("ct_aggregator_dead_letters_total") == len(bad))
        assert stop_gracefully(agg) == 0
    assert_aggregates_exact(server_ch, events, "server")

    letters = read_dead_letters(nats_url)
    reasons = [d.reason for d in letters]
    assert len(letters) == len(bad), reasons
    by_body = {d.body: d for d in letters}
    expectations = [
        ("malformed_json", "ct.v1.answers.acme"),
        ("malformed_json: body is not a JSON object", "ct.v1.answers.acme"),
        ("unknown_schema_version: schema_version 2", "ct.v1.answers.acme"),
        ("missing_fields: answer_id, status", "ct.v1.answers.acme"),
        ("tenant_mismatch: subject tenant 'globex' != body tenant_id 'acme'",
         "ct.v1.answers.globex"),
        ("missing_fields:", "ct.v1.surveys.acme"),  # an answer body is no survey
        ("rejected_by_clickhouse", "ct.v1.answers.acme"),
    ]  # fmt: skip
    for (subject, payload, _), (reason_start, original) in zip(bad, expectations, strict=True):
        letter = by_body[payload]
        assert letter.reason.startswith(reason_start), letter.reason
        assert letter.original_subject == subject == original


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


def test_killed_between_insert_and_ack_counts_nothing_twice(
    tmp_path: Path, nats_url: str, server_ch: ClickHouse, clickhouse_url: str
) -> None:
    events = make_calls(100)
    publish_events(nats_url, events)
    common = dict(aggregator_batch_size="50", aggregator_ack_wait_s="5")

    with aggregator_process(
        tmp_path,
        nats_url,
        clickhouse_url,
        "crashing",
        aggregator_fault="exit_after_insert",
        **common,
    ) as crashing:
        assert crashing.proc.wait(timeout=DEADLINE_S) == FAULT_EXIT_CODE
    inserted_before_crash = stored_rows(server_ch)
    assert 0 < inserted_before_crash < len(events)  # one batch in, none of it acked

    with aggregator_process(tmp_path, nats_url, clickhouse_url, "restarted", **common) as agg:
        # The crashed batch comes back once its ack wait (5 s) ran out; it must be skipped.
        wait_for(
            "redelivered batch skipped",
            lambda: (
                agg.metric("ct_aggregator_duplicates_skipped_total", where="stored")
                >= inserted_before_crash
            ),
        )
        wait_for("every row", lambda: stored_rows(server_ch) == len(events))
        skipped = agg.metric("ct_aggregator_duplicates_skipped_total", where="stored")
        assert skipped == inserted_before_crash
        assert stop_gracefully(agg) == 0
    assert_aggregates_exact(server_ch, events, "server after crash")


def test_two_aggregators_side_by_side_give_exact_aggregates(
    tmp_path: Path, nats_url: str, server_ch: ClickHouse, clickhouse_url: str
) -> None:
    events = make_calls(250)
    publish_events(nats_url, events)
    with (
        aggregator_process(
            tmp_path, nats_url, clickhouse_url, "a", aggregator_batch_size="20"
        ) as a,
        aggregator_process(
            tmp_path, nats_url, clickhouse_url, "b", aggregator_batch_size="20"
        ) as b,
    ):
        wait_for("every row", lambda: stored_rows(server_ch) == len(events))
        handled = [p.metric("ct_aggregator_messages_total") for p in (a, b)]
        assert sum(handled) == len(events), handled  # each message went to exactly one of them
        assert stop_gracefully(a) == 0 and stop_gracefully(b) == 0
    assert_aggregates_exact(server_ch, events, "server, two aggregators")


@pytest.mark.slow
def test_clickhouse_down_while_publishing_loses_nothing(
    tmp_path: Path, private_stack: LocalStack
) -> None:
    first, second = make_calls(60, seed=1), make_calls(60, seed=2)
    ch = ServerClickHouse(private_stack.clickhouse_url)
    try:
        with aggregator_process(
            tmp_path, private_stack.nats_url, private_stack.clickhouse_url,
            aggregator_ack_wait_s="5",  # in-progress signals must hold the batch while it waits
        ) as agg:  # fmt: skip
            publish_events(private_stack.nats_url, first)
            wait_for("first events stored", lambda: stored_rows(ch) == len(first))
            wait_for("ready", lambda: agg.ready_status() == 200)

            private_stack.stop_clickhouse()
            publish_events(private_stack.nats_url, second)
            wait_for("/readyz degraded", lambda: agg.ready_status() == 503)
            wait_for("failed inserts", lambda: agg.metric("ct_aggregator_insert_errors_total") >= 2)

            private_stack.start_clickhouse()
            wait_for("everything stored", lambda: _rows_or_zero(ch) == len(first) + len(second))
            wait_for("ready again", lambda: agg.ready_status() == 200)
            assert stop_gracefully(agg) == 0
        assert_aggregates_exact(ch, first + second, "server after outage")
    finally:
        ch.close()


def _rows_or_zero(ch: ClickHouse) -> int:
    try:
        return stored_rows(ch)
    except Exception:  # ClickHouse still starting
        return 0


@pytest.mark.slow
def test_nats_restart_under_a_running_aggregator_loses_nothing(
    tmp_path: Path, nats_stack: LocalStack, server_ch: ClickHouse, clickhouse_url: str
) -> None:
    first, second = make_calls(60, seed=3), make_calls(60, seed=4)
    with aggregator_process(tmp_path, nats_stack.nats_url, clickhouse_url) as agg:
        publish_events(nats_stack.nats_url, first)
        wait_for("first events stored", lambda: stored_rows(server_ch) == len(first))

        nats_stack.stop_nats(kill=True)
        wait_for("/readyz degraded", lambda: agg.ready_status() == 503)
        nats_stack.start_nats()
        publish_events(nats_stack.nats_url, second)

        wait_for("everything stored", lambda: stored_rows(server_ch) == len(first) + len(second))
        wait_for("ready again", lambda: agg.ready_status() == 200)
        assert agg.proc.poll() is None
        assert stop_gracefully(agg) == 0
    assert_aggregates_exact(server_ch, first + second, "server after NATS restart")
