"""Pipeline benchmark (``make bench``): NATS JetStream -> aggregator -> ClickHouse, all local.

Not a test: it prints figures. In one run, on its own LocalStack in a temporary directory:

1. ingest  - 200,000 answer events are published first, then ``convtrack aggregator`` (default
             settings, its own process) drains them; the rate is rows visible in ClickHouse per
             second between the first and the last row appearing (start-up is not counted);
2. fresh   - with that aggregator still running, 1,000 events/s are published for 10 s, and a
             poller reads the materialized view (answers_hourly) every few milliseconds: an
             event's freshness is (first poll that shows it) - (its publish time);
3. baseline- a naive consumer (one INSERT and one ack per message, no batching) drains a 2,000
             event sample, because at its rate 200,000 would take many minutes; per-event work
             is the same (validation, row mapping, insert, ack), only the batching differs.

Goals on a 2-core machine: >= 20,000 events/s, >= 20x the baseline, freshness p99 <= 1.5 s.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext

from services.aggregator.decode import decode
from shared import ids
from shared.clickhouse.client import ServerClickHouse
from shared.clickhouse.migrations import migrate
from shared.clickhouse.rows import ANSWER_COLUMNS, answer_row
from shared.events import AnswerEvent
from shared.nats_bootstrap import bootstrap_url
from shared.nats_names import EVENTS_STREAM, answers_subject
from shared.publish import encode
from shared.stack import LocalStack, free_port

INGEST_EVENTS = 200_000
BASELINE_EVENTS = 2_000
FRESH_RATE = 1_000  # events per second
FRESH_SECONDS = 10
PUBLISH_WINDOW = 2_000  # publishes in flight while preloading the stream
GOALS = {"ingest_eps": 20_000, "ratio": 20, "fresh_p99_s": 1.5}

LABELS = ("ERFOLGREICH", "NICHT ERFOLGREICH")


@dataclass
class Figures:
    ingest_eps: float = 0.0
    ingest_seconds: float = 0.0
    baseline_eps: float = 0.0
    fresh_p50_s: float = 0.0
    fresh_p99_s: float = 0.0
    fresh_max_s: float = 0.0
    fresh_events: int = 0

    @property
    def ratio(self) -> float:
        return self.ingest_eps / self.baseline_eps if self.baseline_eps else 0.0


def make_event(tenant: str, i: int, at: datetime) -> AnswerEvent:
    """A realistic mix: success question, school grade, order value; some errors."""
    call = f"{tenant}-call-{i // 3}"
    kind = i % 3
    status = "timeout" if i % 17 == 0 else "ok"
    common = dict(
        tenant_id=tenant,
        call_uuid=call,
        profile_id="bench-profile",
        profile_version=1,
        tracking_number=f"+49301234{i % 50:03d}",
        pool_id="pool-a" if i % 2 else "",
        survey_id=ids.survey_id(call),
        status=status,
        attempts=1,
        answered_at=at,
    )
    if kind == 0:
        code = "1" if i % 5 else "2"
        key, extra = "success", dict(digits=code, code=code, label=LABELS[int(code) - 1])
    elif kind == 1:
        grade = str(1 + i % 6)
        key, extra = (
            "grade",
            dict(digits=grade, code=grade, label=f"Note {grade}", value=1.0 * int(grade)),
        )
    else:
        key, extra = "order_value", dict(digits=str(i % 1000), value=float(i % 1000))
    if status != "ok":
        extra = {}
    return AnswerEvent(answer_id=ids.answer_id(call, key), criterion_key=key, **common, **extra)


async def publish_many(js: JetStreamContext, events: list[AnswerEvent]) -> None:
    """Preload the stream quickly: a window of publishes in flight, each acked by JetStream."""
    wire = [encode(e) for e in events]
    for start in range(0, len(wire), PUBLISH_WINDOW):
        chunk = wire[start : start + PUBLISH_WINDOW]
        await asyncio.gather(*(js.publish(s, b, headers=h, timeout=30) for s, b, h in chunk))


def count_rows(ch: ServerClickHouse, tenant: str) -> int:
    return int(
        ch.execute("SELECT count() FROM answers WHERE tenant_id = %(t)s", {"t": tenant})[0][0]
    )


def count_in_view(ch: ServerClickHouse, tenant: str) -> int:
    sql = "SELECT countMerge(answers) FROM answers_hourly WHERE tenant_id = %(t)s"
    return int(ch.execute(sql, {"t": tenant})[0][0] or 0)


def start_aggregator(stack: LocalStack, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CT_NATS_URL": stack.nats_url,
        "CT_CLICKHOUSE_URL": stack.clickhouse_url,
        "CT_AGGREGATOR_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "CT_LOG_LEVEL": "WARNING",
    }
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "convtrack", "aggregator"], env=env, stdout=out, stderr=out
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- phase 1: sustained ingest ------------------------------------------------------------------
def measure_ingest(stack: LocalStack, ch: ServerClickHouse, tenant: str, total: int) -> float:
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        now, seen = time.monotonic(), count_rows(ch, tenant)
        if first is None and seen > 0:
            first = (now, seen)
        if seen >= total:
            assert first is not None
            if now == first[0]:
                raise RuntimeError("ingest finished before a first sample; poll faster")
            return (total - first[1]) / (now - first[0])
        time.sleep(0.05)
    raise RuntimeError(f"ingest did not finish: {count_rows(ch, tenant)} of {total} rows")


# -- phase 2: freshness -------------------------------------------------------------------------
class ViewPoller(threading.Thread):
    """Reads the materialized view's count as often as it can; keeps (time, count) samples."""

    def __init__(self, url: str, tenant: str):
        super().__init__(daemon=True)
        self.ch = ServerClickHouse(url)
        self.tenant = tenant
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            seen = count_in_view(self.ch, self.tenant)
            self.samples.append((time.monotonic(), seen))  # after the query: conservative
            time.sleep(0.005)


async def publish_paced(nats_url: str, tenant: str, rate: int, seconds: int) -> list[float]:
    """Publish ``rate`` events/s, one at a time; returns each event's publish time."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    times: list[float] = []
    start = time.monotonic()
    try:
        for i in range(rate * seconds):
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            subject, body, headers = encode(make_event(tenant, i, datetime.now(UTC)))
            times.append(time.monotonic())
            await js.publish(subject, body, headers=headers)
    finally:
        await nc.close()
    return times


def freshness(published: list[float], samples: list[tuple[float, int]]) -> list[float]:
    """Event i is fresh at the first sample whose count exceeds i (one ordered publisher,
    one aggregator: the stream and the inserts keep publish order)."""
    out: list[float] = []
    j = 0
    for i, sent in enumerate(published):
        while j < len(samples) and samples[j][1] <= i:
            j += 1
        if j == len(samples):
            raise RuntimeError(f"event {i} never became visible")
        out.append(samples[j][0] - sent)
    return out


def measure_freshness(stack: LocalStack, tenant: str) -> list[float]:
    poller = ViewPoller(stack.clickhouse_url, tenant)
    poller.start()
    try:
        published = asyncio.run(publish_paced(stack.nats_url, tenant, FRESH_RATE, FRESH_SECONDS))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if poller.samples and poller.samples[-1][1] >= len(published):
                break
            time.sleep(0.05)
    finally:
        poller.done.set()
        poller.join()
    return freshness(published, poller.samples)


# -- phase 3: naive baseline ----------------------------------------------------------------------
async def run_baseline(stack: LocalStack, tenant: str, total: int) -> float:
    """One INSERT and one ack per message: what the aggregator would be without batching."""
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    ch = ServerClickHouse(stack.clickhouse_url)
    try:
        config = ConsumerConfig(
            durable_name="bench-baseline",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=answers_subject(tenant),
            max_ack_pending=10_000,
        )
        sub = await js.pull_subscribe(
            answers_subject(tenant), "bench-baseline", EVENTS_STREAM, config
        )
        at = datetime.now(UTC)
        await publish_many(js, [make_event(tenant, i, at) for i in range(total)])
        done = 0
        started = time.perf_counter()
        while done < total:
            for msg in await sub.fetch(100, timeout=5):
                event = decode(msg.subject, msg.data)
                assert isinstance(event, AnswerEvent)
                ch.insert("answers", ANSWER_COLUMNS, [answer_row(event)])
                await msg.ack()
                done += 1
        elapsed = time.perf_counter() - started
    finally:
        ch.close()
        await nc.close()
    return total / elapsed


# -- the run ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {text}", flush=True)


def main() -> int:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="ct-bench-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        say(f"starting NATS + ClickHouse under {tmp} ...")
        stack.up()
        aggregator: subprocess.Popen[bytes] | None = None
        try:
            asyncio.run(bootstrap_url([stack.nats_url]))
            ch = ServerClickHouse(stack.clickhouse_url)
            migrate(ch)

            say(f"publishing {INGEST_EVENTS:,} answer events ...")
            start_day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            events = [
                make_event("bench", i, start_day - timedelta(seconds=i % 7200))
                for i in range(INGEST_EVENTS)
            ]
            started = time.perf_counter()
            asyncio.run(_publish_all(stack.nats_url, events))
            publish_s = time.perf_counter() - started
            say(f"  published in {publish_s:.1f} s ({INGEST_EVENTS / publish_s:,.0f}/s)")

            say("ingest: batched aggregator (defaults) draining the stream ...")
            aggregator = start_aggregator(stack, Path(tmp) / "aggregator.log")
            started = time.perf_counter()
            figures.ingest_eps = measure_ingest(stack, ch, "bench", INGEST_EVENTS)
            figures.ingest_seconds = time.perf_counter() - started
            _check_exact(ch, "bench", INGEST_EVENTS)

            say(f"freshness: {FRESH_RATE:,} events/s for {FRESH_SECONDS} s ...")
            lat = measure_freshness(stack, "fresh")
            figures.fresh_events = len(lat)
            figures.fresh_p50_s = statistics.median(lat)
            figures.fresh_p99_s = percentile(lat, 0.99)
            figures.fresh_max_s = max(lat)
            stop_process(aggregator)

            say(f"baseline: one INSERT per message over {BASELINE_EVENTS:,} events ...")
            figures.baseline_eps = asyncio.run(run_baseline(stack, "baseline", BASELINE_EVENTS))
            ch.close()
        finally:
            if aggregator is not None:
                stop_process(aggregator)
            # Killed, not stopped: the data is thrown away, and a clean ClickHouse shutdown
            # after thousands of single-row parts takes longer than the whole benchmark.
            stack.stop_nats(kill=True)
            stack.stop_clickhouse(kill=True)
    say("done")
    report(figures)
    return 0


async def _publish_all(nats_url: str, events: list[AnswerEvent]) -> None:
    nc = await nats.connect(nats_url)
    try:
        await publish_many(nc.jetstream(), events)
    finally:
        await nc.close()


def _check_exact(ch: ServerClickHouse, tenant: str, total: int) -> None:
    """The figures only count if nothing was lost or doubled."""
    rows = count_rows(ch, tenant)
    in_view = int(
        ch.execute(
            "SELECT sum(answers) FROM conversion_daily WHERE tenant_id = %(t)s", {"t": tenant}
        )[0][0]
    )
    if rows != total or in_view != total:
        raise RuntimeError(f"expected {total} answers, table has {rows}, view has {in_view}")


def report(f: Figures) -> None:
    rows = [
        ("ingest, batched aggregator", f"{f.ingest_eps:,.0f} events/s",
         f">= {GOALS['ingest_eps']:,}", f.ingest_eps >= GOALS["ingest_eps"]),
        ("ingest, naive baseline (1 INSERT/msg)", f"{f.baseline_eps:,.0f} events/s", "", None),
        ("batched / baseline", f"{f.ratio:,.1f}x", f">= {GOALS['ratio']}x",
         f.ratio >= GOALS["ratio"]),
        (f"freshness p50 @ {FRESH_RATE:,}/s", f"{f.fresh_p50_s * 1000:,.0f} ms", "", None),
        (f"freshness p99 @ {FRESH_RATE:,}/s", f"{f.fresh_p99_s * 1000:,.0f} ms",
         f"<= {GOALS['fresh_p99_s'] * 1000:,.0f} ms", f.fresh_p99_s <= GOALS["fresh_p99_s"]),
        (f"freshness max @ {FRESH_RATE:,}/s", f"{f.fresh_max_s * 1000:,.0f} ms", "", None),
    ]  # fmt: skip
    print()
    print(f"{'figure':<40} {'measured':>18} {'goal':>12}  met")
    print("-" * 78)
    for name, value, goal, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<40} {value:>18} {goal:>12}  {mark}")
    print(
        f"(ingest: {INGEST_EVENTS:,} events in {f.ingest_seconds:.1f} s incl. start-up; "
        f"baseline sample: {BASELINE_EVENTS:,} events; freshness: {f.fresh_events:,} events)"
    )
    print(
        json.dumps(
            {
                "ingest_events": INGEST_EVENTS,
                "ingest_events_per_s": round(f.ingest_eps),
                "baseline_events": BASELINE_EVENTS,
                "baseline_events_per_s": round(f.baseline_eps, 1),
                "ratio": round(f.ratio, 1),
                "freshness_rate_per_s": FRESH_RATE,
                "freshness_p50_s": round(f.fresh_p50_s, 3),
                "freshness_p99_s": round(f.fresh_p99_s, 3),
                "freshness_max_s": round(f.fresh_max_s, 3),
                "goals_met": f.ingest_eps >= GOALS["ingest_eps"]
                and f.ratio >= GOALS["ratio"]
                and f.fresh_p99_s <= GOALS["fresh_p99_s"],
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
