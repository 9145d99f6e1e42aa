"""IVR benchmark (``make bench``): simulated FreeSWITCH -> ``convtrack ivr`` -> NATS JetStream.

Not a test: it prints figures. On its own nats-server (LocalStack in a temporary directory) one
IVR process serves 100, 500 and 1,000 concurrent surveys of a 3-question profile (yes/no,
grade 1-6, order value). Calls arrive spread over one survey length (as on a real switch: not
all at the same instant), each with its own +-20 % pace, and the agent presses keys at
"compressed human timing" (simulator timing x0.5: prompts 1 s, 0.4 s to think, 125 ms between
keys), so about ``level`` surveys run at once during the steady part of a run.

Figures per level:
- turnaround p50/p99: simulator side, a CHANNEL_EXECUTE_COMPLETE written -> the IVR's next
  command read (the IVR's reaction time, including both event loops and the loopback TCP);
  next to it the IVR's own share (ct_ivr_reaction_seconds: completion read -> next command
  written), as the upper bound of its histogram bucket
- surveys/s over the run, peak concurrent surveys (the IVR's own gauge)
- CPU seconds per survey (user+system of the IVR process from /proc), peak IVR RSS
- answers lost: answers the simulator saw minus answer events in JetStream (must be 0)

Goal: 1,000 concurrent on one process, turnaround p99 <= 20 ms, no answer lost.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the checkout's packages, simulator included
    sys.path.insert(0, str(ROOT))

from shared import nats_names as names  # noqa: E402
from shared.domain import StoredAssignment, StoredProfile  # noqa: E402
from shared.nats_bootstrap import bootstrap_url  # noqa: E402
from shared.stack import LocalStack, free_port  # noqa: E402
from simulator import CallResult, CallSpec, SimConfig, run_call  # noqa: E402
from simulator.tally import percentile  # noqa: E402

LEVELS = (100, 500, 1000)
GENERATIONS = 2  # calls per level = level x GENERATIONS; the first generation is the ramp
TIMING = 0.5  # simulator time scale: "compressed human timing"
NUMBER = "+493012345678"
GOALS = {"concurrent": 1000, "turnaround_p99_ms": 20.0, "answers_lost": 0}

YES_NO = {
    "name": "Erfolg",
    "entries": [
        {"code": "1", "label": "ERFOLGREICH", "success": True},
        {"code": "2", "label": "NEIN"},
    ],
}
GRADES = {
    "name": "Noten",
    "entries": [{"code": str(i), "label": f"Note {i}", "value": i} for i in range(1, 7)],
}


def profile_doc() -> StoredProfile:
    now = datetime.now(UTC)
    return StoredProfile.model_validate(
        {
            "id": "bench",
            "tenant_id": "bench",
            "created_at": now,
            "updated_at": now,
            "name": "Bench",
            "prompts": {"welcome": {"text": "Willkommen"}, "goodbye": {"text": "Danke"}},
            "criteria": [
                {
                    "key": "success",
                    "label": "Erfolg",
                    "input": {"type": "code", "code_map": YES_NO},
                },
                {"key": "grade", "label": "Note", "input": {"type": "code", "code_map": GRADES}},
                {
                    "key": "order_value",
                    "label": "Wert",
                    "input": {"type": "number", "min_digits": 1, "max_digits": 6},
                },
            ],
        }
    )


async def configure(url: str) -> None:
    await bootstrap_url([url])
    nc = await nats.connect(url)
    js = nc.jetstream()
    prof = profile_doc()
    await (await js.key_value(names.KV_PROFILES)).put(
        names.kv_key("bench", "bench"), prof.model_dump_json().encode()
    )
    assign = StoredAssignment(
        tenant_id="bench", number=NUMBER, profile_id="bench", updated_at=datetime.now(UTC)
    )
    await (await js.key_value(names.KV_NUMBERS)).put(
        names.number_key("bench", NUMBER), assign.model_dump_json().encode()
    )
    await nc.close()


async def stream_messages(url: str, subject: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(names.EVENTS_STREAM, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


class Ivr:
    def __init__(self, nats_url: str, log: Path) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "CT_NATS_URL": nats_url,
            "CT_LOG_LEVEL": "WARNING",
            "CT_IVR_LISTEN": f"127.0.0.1:{self.port}",
            "CT_IVR_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "PYTHONPATH": str(ROOT),
        }
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convtrack", "ivr"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def metric(self, name: str) -> float:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[-1])
        except OSError:
            pass
        return 0.0

    def reaction_buckets(self) -> dict[float, float]:
        """Cumulative counts of ct_ivr_reaction_seconds by upper bound (seconds)."""
        out: dict[float, float] = {}
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("ct_ivr_reaction_seconds_bucket{"):
                        le = line.split('le="', 1)[1].split('"', 1)[0]
                        out[float(le)] = float(line.split()[-1])
        except OSError:
            pass
        return out

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def survey_seconds(cfg: SimConfig) -> float:
    """Length of one survey at this pace: 5 prompts, 3 thinks, a few keys."""
    return 5 * cfg.prompt_seconds * cfg.timing + 3 * cfg.scaled_think + 6 * cfg.scaled_gap


async def drive(level: int, address: str, seed: int) -> tuple[list[CallResult], float]:
    rng = random.Random(seed)
    base = SimConfig(timing=TIMING)
    length = survey_seconds(base)
    n = level * GENERATIONS
    calls = []
    for i in range(n):
        keys: list[str | list[str]] = [
            rng.choice("12"),
            str(rng.randint(1, 6)),
            f"{rng.randint(1, 99999)}#",
        ]
        pace = dataclasses.replace(base, timing=TIMING * rng.uniform(0.8, 1.2))
        # Arrivals at a constant rate: `level` calls per survey length keeps ~level running.
        calls.append((i * length / level, CallSpec(number=NUMBER, keys=keys), pace))
    started = time.perf_counter()

    async def one(i: int, at: float, spec: CallSpec, cfg: SimConfig) -> CallResult:
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
        return await run_call(spec, address, cfg, index=i)

    results = await asyncio.gather(*(one(i, *c) for i, c in enumerate(calls)))
    return list(results), time.perf_counter() - started


def bucket_p99_ms(cumulative: dict[float, float]) -> float:
    """Upper bound of the histogram bucket holding the 99th percentile."""
    total = cumulative.get(float("inf"), 0.0)
    for le in sorted(cumulative):
        if total and cumulative[le] >= 0.99 * total:
            return round(le * 1000, 1)
    return 0.0


def run_level(level: int, ivr: Ivr, nats_url: str) -> dict[str, Any]:
    before_answers = asyncio.run(stream_messages(nats_url, f"{names.ANSWERS_SUBJECT_PREFIX}.*"))
    cpu0, sim0, react0 = ivr.cpu_s(), os.times(), ivr.reaction_buckets()
    peak = {"active": 0.0, "rss": ivr.rss_mb()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            # /metrics once a second only: rendering it takes the IVR's GIL for a moment.
            peak["active"] = max(peak["active"], ivr.metric("ct_ivr_active_surveys"))
            for _ in range(5):
                peak["rss"] = max(peak["rss"], ivr.rss_mb())
                time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results, wall = asyncio.run(drive(level, f"127.0.0.1:{ivr.port}", seed=level))
    stop.set()
    sampler.join()
    cpu = ivr.cpu_s() - cpu0
    sim1 = os.times()
    sim_cpu = (sim1.user - sim0.user) + (sim1.system - sim0.system)
    deadline = time.monotonic() + 30
    while ivr.metric("ct_ivr_buffer_depth") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    react = {le: n - react0.get(le, 0.0) for le, n in ivr.reaction_buckets().items()}
    seen = sum(len(r.criteria) for r in results)
    after = asyncio.run(stream_messages(nats_url, f"{names.ANSWERS_SUBJECT_PREFIX}.*"))
    turn = [t * 1000 for r in results for t in r.turnarounds]
    return {
        "level": level,
        "calls": len(results),
        "errors": sum(1 for r in results if r.error),
        "peak_concurrent": int(peak["active"]),
        "turnaround_p50_ms": round(percentile(turn, 50), 2),
        "turnaround_p99_ms": round(percentile(turn, 99), 2),
        "ivr_reaction_p99_ms": bucket_p99_ms(react),
        "surveys_per_s": round(len(results) / wall, 1),
        "cpu_ms_per_survey": round(cpu / len(results) * 1000, 2),
        "sim_cpu_ms_per_survey": round(sim_cpu / len(results) * 1000, 2),
        "ivr_rss_mb": round(peak["rss"], 1),
        "answers_expected": seen,
        "answers_lost": seen - (after - before_answers),
        "wall_s": round(wall, 1),
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ct-bench-ivr-") as tmp:
        stack = LocalStack(Path(tmp) / "stack")
        stack.start_nats()
        ivr: Ivr | None = None
        try:
            asyncio.run(configure(stack.nats_url))
            ivr = Ivr(stack.nats_url, Path(tmp) / "ivr.log")
            deadline = time.monotonic() + 30
            while not ivr.ready():
                if time.monotonic() > deadline or ivr.proc.poll() is not None:
                    print((Path(tmp) / "ivr.log").read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.1)
            rows = []
            for level in LEVELS:
                rows.append(run_level(level, ivr, stack.nats_url))
                print_row(rows[-1], header=len(rows) == 1)
        finally:
            if ivr is not None:
                ivr.stop()
            stack.stop_nats()
    top = rows[-1]
    summary = {
        "bench": "ivr",
        "timing": TIMING,
        "levels": rows,
        "goals": GOALS,
        "goal_met": top["peak_concurrent"] >= 0.9 * GOALS["concurrent"]
        and top["turnaround_p99_ms"] <= GOALS["turnaround_p99_ms"]
        and all(r["answers_lost"] == 0 and r["errors"] == 0 for r in rows),
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0


# (figure, column heading)
COLUMNS = (
    ("level", "level"),
    ("calls", "calls"),
    ("errors", "errors"),
    ("peak_concurrent", "peak"),
    ("turnaround_p50_ms", "p50 ms"),
    ("turnaround_p99_ms", "p99 ms"),
    ("ivr_reaction_p99_ms", "IVR own p99 ms<="),
    ("surveys_per_s", "surveys/s"),
    ("cpu_ms_per_survey", "IVR cpu ms/survey"),
    ("sim_cpu_ms_per_survey", "sim cpu ms/survey"),
    ("ivr_rss_mb", "IVR RSS MB"),
    ("answers_lost", "lost"),
    ("wall_s", "wall s"),
)


def print_row(row: dict[str, Any], header: bool) -> None:
    widths = [max(len(h), 7) for _, h in COLUMNS]
    if header:
        print("  ".join(h.rjust(w) for (_, h), w in zip(COLUMNS, widths, strict=True)))
    cells = (str(row[k]).rjust(w) for (k, _), w in zip(COLUMNS, widths, strict=True))
    print("  ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
