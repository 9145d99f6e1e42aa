"""Survey (services/ivr/survey.py) on a scripted session: the survey event is always published
for a survey that published answers, with the outcome docs/CONTRACTS.md defines."""

from __future__ import annotations

from typing import Any

import gevent
import pytest

from services.ivr.config_index import ConfigIndex, KvItem
from services.ivr.esl_session import AppResult
from services.ivr.metrics import IvrMetrics
from services.ivr.plan import PlanCache
from services.ivr.prompts import PromptResolver
from services.ivr.survey import IvrContext, Survey
from shared import nats_names as names
from shared.events import AnswerEvent, SurveyEvent

from ivr_kit import YES_NO, assignment, profile

NUMBER = "+493011100"
UUID = "3f0e1c2a-0000-4000-8000-0000000000c3"
CRITERIA = [
    {"key": k, "label": k, "input": {"type": "code", "code_map": YES_NO}} for k in ("q1", "q2")
]


class FakeSession:
    """Answers every play_and_get_digits with '1'; with ``block_goodbye`` the goodbye prompt
    never ends; the ``fail_at``-th play_and_get_digits raises."""

    def __init__(
        self, data: dict[str, str], fail_at: int | None = None, block_goodbye: bool = False
    ) -> None:
        self.session_data = data
        self.block_goodbye = block_goodbye
        self.hangup_cause = ""
        self.asked = 0
        self.fail_at = fail_at
        self.in_goodbye = gevent.event.Event()

    def myevents(self) -> None: ...

    def linger(self) -> None: ...

    def hangup(self) -> None: ...

    def playback(self, file: str) -> AppResult:
        if "Danke" in file and self.block_goodbye:
            self.in_goodbye.set()
            gevent.sleep(30)
        return AppResult({})

    def execute(self, app: str, arg: str, timeout: float = 0) -> AppResult:
        if self.asked == self.fail_at:
            raise RuntimeError("a bug")
        self.asked += 1
        var = arg.split()[7]
        return AppResult({f"variable_{var}": "1"}, "1")


class Events:
    def __init__(self) -> None:
        self.items: list[AnswerEvent | SurveyEvent] = []

    def submit(self, event: AnswerEvent | SurveyEvent) -> bool:
        self.items.append(event)
        return True

    def surveys(self) -> list[SurveyEvent]:
        return [e for e in self.items if isinstance(e, SurveyEvent)]

    def answers(self) -> list[AnswerEvent]:
        return [e for e in self.items if isinstance(e, AnswerEvent)]


def _context(events: Events) -> IvrContext:
    metrics = IvrMetrics()
    index = ConfigIndex(metrics)
    p = profile(criteria=CRITERIA)
    index.replace(names.KV_PROFILES, [KvItem("acme.p1", p.model_dump_json().encode(), 7)])
    a = assignment("acme", NUMBER, "p1")
    index.replace(names.KV_NUMBERS, [KvItem("acme.493011100", a.model_dump_json().encode(), 1)])
    return IvrContext(index, PlanCache(PromptResolver("", "k")), events, metrics)


def _data(**extra: str) -> dict[str, str]:
    return {"Unique-ID": UUID, "variable_ct_tracking_number": NUMBER, **extra}


def test_cut_during_goodbye_is_still_complete() -> None:
    events = Events()
    session = FakeSession(_data(), block_goodbye=True)
    survey = gevent.spawn(Survey(session, _context(events)).run)  # type: ignore[arg-type]
    assert session.in_goodbye.wait(5)
    survey.kill(block=True, timeout=5)  # the shutdown grace period is over
    [event] = events.surveys()
    assert (event.status, event.answers) == ("complete", 2)


def test_a_bug_mid_survey_still_reports_the_survey() -> None:
    events = Events()
    Survey(FakeSession(_data(), fail_at=1), _context(events)).run()  # type: ignore[arg-type]
    assert [a.criterion_key for a in events.answers()] == ["q1"]
    [event] = events.surveys()
    assert (event.status, event.answers) == ("incomplete", 1)


@pytest.mark.parametrize("field", ["variable_ct_caller", "variable_ct_agent"])
def test_control_characters_from_the_channel_do_not_lose_the_survey(field: str) -> None:
    events = Events()
    session: Any = FakeSession(_data(**{field: "+49170\x001234\n567"}))
    Survey(session, _context(events)).run()
    assert [a.status for a in events.answers()] == ["ok", "ok"]
    [event] = events.surveys()
    assert event.status == "complete"
    assert "+491701234567" in (event.caller, event.agent)
