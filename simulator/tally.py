"""Per-call results as the simulator observed them, and the run's tally."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

AnswerStatus = Literal["ok", "invalid", "timeout", "hangup"]
SurveyOutcome = Literal["complete", "incomplete", "no_profile"]
ANSWER_STATUSES: tuple[AnswerStatus, ...] = ("ok", "invalid", "timeout", "hangup")
SURVEY_OUTCOMES: tuple[SurveyOutcome, ...] = ("complete", "incomplete", "no_profile")


@dataclass
class TryResult:
    """One try of a play_and_get_digits: the digits collected and how FreeSWITCH judged them."""

    digits: str
    # valid | silence | too_short | no_terminator | regex_mismatch | hangup
    outcome: str
    terminator: str = ""


@dataclass
class CriterionResult:
    """One play_and_get_digits run = one criterion."""

    index: int
    variable: str
    status: AnswerStatus
    digits: str  # the valid digits when ok, else the last try's digits
    tries: list[TryResult] = field(default_factory=list)
    application_uuid: str = ""
    args: str = ""


@dataclass
class CallResult:
    index: int
    number: str
    caller: str
    uuid: str = ""
    outcome: SurveyOutcome | None = None
    criteria: list[CriterionResult] = field(default_factory=list)
    playbacks: list[str] = field(default_factory=list)
    hangup_by: Literal["agent", "ivr", "dialplan", "none"] = "none"
    hangup_cause: str = ""
    error: str | None = None
    faults: list[str] = field(default_factory=list)
    # Seconds from a CHANNEL_EXECUTE_COMPLETE being written until the IVR's next command.
    turnarounds: list[float] = field(default_factory=list)
    commands: int = 0
    duration: float = 0.0

    @property
    def statuses(self) -> list[AnswerStatus]:
        return [c.status for c in self.criteria]

    @property
    def answers(self) -> list[str]:
        return [c.digits for c in self.criteria]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Tally:
    calls: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    surveys: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    turnarounds: list[float] = field(default_factory=list)
    duration: float = 0.0

    @classmethod
    def of(cls, results: list[CallResult], duration: float = 0.0) -> Tally:
        t = cls(duration=duration)
        for r in results:
            t.add(r)
        return t

    def add(self, result: CallResult) -> None:
        self.calls += 1
        for c in result.criteria:
            self.answers[c.status] += 1
        if result.error is not None:
            self.errors += 1
        elif result.outcome is not None:
            self.surveys[result.outcome] += 1
        self.turnarounds.extend(result.turnarounds)

    def figures(self) -> dict[str, object]:
        ms = [s * 1000 for s in self.turnarounds]
        return {
            "calls": self.calls,
            "answers": {s: self.answers.get(s, 0) for s in ANSWER_STATUSES},
            "surveys": {o: self.surveys.get(o, 0) for o in SURVEY_OUTCOMES},
            "errors": self.errors,
            "turnaround_ms": {
                "n": len(ms),
                "p50": round(percentile(ms, 50), 3),
                "p99": round(percentile(ms, 99), 3),
                "max": round(max(ms), 3) if ms else 0.0,
            },
            "duration_s": round(self.duration, 3),
        }

    def json_line(self) -> str:
        return json.dumps(self.figures(), separators=(",", ":"))

    def table(self) -> str:
        f = self.figures()
        answers: dict[str, int] = f["answers"]  # type: ignore[assignment]
        surveys: dict[str, int] = f["surveys"]  # type: ignore[assignment]
        turn: dict[str, float] = f["turnaround_ms"]  # type: ignore[assignment]
        rows = [
            ("calls", str(self.calls)),
            *((f"answers {k}", str(v)) for k, v in answers.items()),
            *((f"surveys {k}", str(v)) for k, v in surveys.items()),
            ("errors", str(self.errors)),
            ("turnaround p50 ms", f"{turn['p50']:.3f}"),
            ("turnaround p99 ms", f"{turn['p99']:.3f}"),
            ("duration s", f"{self.duration:.3f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v.rjust(8)}" for k, v in rows)
