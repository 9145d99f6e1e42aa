"""The main job end to end: `convtrack demo --exit` (stack, three services, simulator, API)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_report_matches_the_simulator_tally(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convtrack", "demo", "--calls", "60", "--exit",
         "--dir", str(tmp_path / "demo"), "--seed", "11"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("demo ok: 60 calls, "), out
    assert last.endswith(" answers, report matches")
    # Everything the demo started is stopped again.
    status = subprocess.run(
        [sys.executable, "-m", "convtrack", "stack", "status", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
    )
    assert "nats: stopped" in status.stdout and "clickhouse: stopped" in status.stdout
