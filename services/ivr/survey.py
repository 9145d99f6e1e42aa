"""One survey on one agent leg: welcome, one play_and_get_digits per criterion, goodbye.

Semantics (docs/CONTRACTS.md "Survey semantics"): a criterion is ``ok`` when a try was valid,
``timeout`` when every try was silence, ``invalid`` otherwise, ``hangup`` when the channel hung
up (or the connection was lost) while it ran - its partial input is discarded and later criteria
produce no answer. A survey is ``complete`` when every criterion produced a non-hangup answer.

Each answer is handed to the publisher as soon as its criterion ends; the survey never waits
for NATS.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from shared.domain import AnswerStatus, SurveyStatus
from shared.events import AnswerEvent, SurveyEvent
from shared.ids import DIGITS_RE, answer_id, survey_id

from .call_info import CallInfo, call_info
from .config_index import ConfigIndex, Resolution
from .esl_session import AppResult, ChannelGone, CommandFailed, SurveySession
from .metrics import IvrMetrics
from .pagd import check_digits, clean_digits
from .plan import CriterionPlan, PlanCache, PlanError, SurveyPlan

log = logging.getLogger(__name__)

PROMPT_ALLOWANCE_S = 60.0  # per try, for the prompt and invalid prompt to play


class Publisher(Protocol):
    def submit(self, event: AnswerEvent | SurveyEvent) -> bool: ...


@dataclass(frozen=True, slots=True)
class IvrContext:
    index: ConfigIndex
    plans: PlanCache
    publisher: Publisher
    metrics: IvrMetrics


def _now() -> datetime:
    return datetime.now(UTC)


def count_tries(dtmf: str, terminators: str, max_digits: int) -> int:
    """Tries that received input, from the DTMF stream of one play_and_get_digits: a try's input
    ends at a terminator or at max digits. A try ended by the digit timeout merges with the next
    (the event socket does not say where it ended), and silent tries are invisible."""
    tries, length = 0, 0
    for digit in dtmf:
        if digit in terminators:
            tries, length = tries + 1, 0
            continue
        length += 1
        if length >= max_digits:
            tries, length = tries + 1, 0
    return tries + (1 if length else 0)


def _safe_digits(raw: str) -> str:
    digits = "".join(ch for ch in raw if ch in "0123456789*#")[:64]
    return digits if DIGITS_RE.fullmatch(digits) else ""


@dataclass(slots=True)
class _Outcome:
    status: AnswerStatus
    attempts: int
    digits: str = ""
    code: str = ""
    label: str = ""
    value: float | None = None
    success: bool = False


def judge(criterion: CriterionPlan, result: AppResult) -> _Outcome:
    """The status of a criterion from its play_and_get_digits completion (esl.md §4 table)."""
    args = criterion.pagd
    tries_with_input = count_tries(result.dtmf, args.terminators, args.max_digits)
    if result.hung_up:
        return _Outcome("hangup", min(args.tries, tries_with_input))
    raw = result.var(criterion.variable)
    if raw is not None:
        checked = check_digits(criterion.rule, clean_digits(raw, args.terminators))
        if checked.verdict == "ok":
            attempts = max(1, min(args.tries, tries_with_input))
            return _Outcome(
                "ok",
                attempts,
                _safe_digits(checked.digits),
                checked.code,
                checked.label,
                checked.value,
                checked.success,
            )
        # FreeSWITCH's regex let it through (or it is the too-short input of the last try).
        return _Outcome("invalid", args.tries, _safe_digits(checked.digits))
    rejected = result.var(criterion.variable + "_invalid")
    if rejected is not None or result.dtmf:
        return _Outcome("invalid", args.tries, _safe_digits(rejected or ""))
    return _Outcome("timeout", args.tries)


def _wait_budget(criterion: CriterionPlan) -> float:
    args = criterion.pagd
    per_try = (args.timeout_ms + args.digit_timeout_ms) / 1000 + PROMPT_ALLOWANCE_S
    return args.tries * per_try + 30.0


class Survey:
    """greenswitch's "application": ``Survey(session).run()`` in its own greenlet."""

    def __init__(self, session: SurveySession, ctx: IvrContext) -> None:
        self.session = session
        self.ctx = ctx
        self.info: CallInfo = call_info(session.session_data or {})
        self.survey_id = survey_id(self.info.call_uuid) if self.info.call_uuid else ""
        self.started_at = _now()
        self._extra = {"call_uuid": self.info.call_uuid, "survey_id": self.survey_id}

    def run(self) -> None:
        metrics = self.ctx.metrics
        metrics.active_surveys.inc()
        try:
            self._run()
        except Exception:  # a bug must end this survey only
            log.exception("survey failed", extra=self._extra)
        finally:
            metrics.active_surveys.dec()

    def _run(self) -> None:
        if not self.info.call_uuid:
            log.error("channel data without Unique-ID; releasing the leg")
            self.session.hangup()
            return
        resolution = (
            self.ctx.index.resolve(self.info.tracking_number)
            if self.info.number_valid
            else Resolution(self.info.tracking_number)
        )
        plan = self._plan(resolution)
        if plan is None:
            self._no_profile(resolution)
            return
        self._run_plan(plan, resolution)

    def _plan(self, resolution: Resolution) -> SurveyPlan | None:
        if resolution.profile is None:
            return None
        try:
            return self.ctx.plans.get(
                resolution.profile,
                resolution.revision,
                resolution.code_maps,
                resolution.code_map_revisions,
            )
        except PlanError as exc:
            self.ctx.metrics.config_errors.inc()
            log.error("profile cannot run", extra={**self._extra, "error": str(exc)})
            return None

    # -- no profile -----------------------------------------------------------------------
    def _no_profile(self, resolution: Resolution) -> None:
        known = resolution.tenant_id is not None
        self.ctx.metrics.no_profile.labels("yes" if known else "no").inc()
        self.ctx.metrics.surveys.labels("no_profile").inc()
        log.info(
            "no profile for the number; releasing the leg",
            extra={
                **self._extra,
                "number": self.info.tracking_number,
                "tenant_id": resolution.tenant_id or "",
            },
        )
        with contextlib.suppress(ChannelGone, CommandFailed):
            self.session.hangup()
        if resolution.tenant_id is not None:
            self._publish_survey(resolution, "no_profile", 0, resolution.profile_id, 0)

    # -- the survey -----------------------------------------------------------------------
    def _run_plan(self, plan: SurveyPlan, resolution: Resolution) -> None:
        answers = 0
        complete = False
        try:
            self.session.myevents()
            self.session.linger()
            if plan.welcome:
                self._play(plan.welcome)
            for criterion in plan.criteria:
                answer = self._ask(criterion, plan, resolution)
                answers += 1
                if answer.status == "hangup":
                    break
            else:
                complete = True
                self._finish(plan)
        except ChannelGone:
            pass  # hung up outside a criterion (welcome) or the connection is gone
        except CommandFailed as exc:
            self.ctx.metrics.esl_errors.labels("command_failed").inc()
            log.warning("command refused; survey ends", extra={**self._extra, "error": str(exc)})
        finally:
            # Also when cut by the shutdown grace period (GreenletExit) or ended by a bug: the
            # answers already published always get their survey event.
            self._publish_survey(
                resolution,
                "complete" if complete else "incomplete",
                answers,
                plan.profile_id,
                plan.profile_version,
            )

    def _play(self, file: str) -> None:
        result = self.session.playback(file)
        if result is not None and result.hung_up:
            raise ChannelGone("hung up during playback")

    def _finish(self, plan: SurveyPlan) -> None:
        """Goodbye and hang up; a hang-up here no longer changes the survey (it is complete)."""
        try:
            if plan.goodbye:
                self._play(plan.goodbye)
            self.session.hangup()
        except (ChannelGone, CommandFailed):
            pass

    def _ask(
        self, criterion: CriterionPlan, plan: SurveyPlan, resolution: Resolution
    ) -> AnswerEvent:
        try:
            result = self.session.execute(
                "play_and_get_digits", criterion.pagd.render(), timeout=_wait_budget(criterion)
            )
            assert result is not None
            outcome = judge(criterion, result)
        except ChannelGone:
            outcome = _Outcome("hangup", 0)
        event = AnswerEvent(
            tenant_id=plan.tenant_id,
            call_uuid=self.info.call_uuid,
            profile_id=plan.profile_id,
            profile_version=plan.profile_version,
            tracking_number=self.info.tracking_number,
            pool_id=resolution.pool_id,
            caller=self.info.caller,
            agent=self.info.agent,
            answer_id=answer_id(self.info.call_uuid, criterion.key),
            survey_id=self.survey_id,
            criterion_key=criterion.key,
            criterion_index=criterion.index,
            digits=outcome.digits,
            code=outcome.code,
            label=outcome.label,
            value=outcome.value,
            success=outcome.success,
            status=outcome.status,
            attempts=outcome.attempts,
            answered_at=_now(),
        )
        self.ctx.metrics.answers.labels(outcome.status).inc()
        self.ctx.publisher.submit(event)
        return event

    def _publish_survey(
        self,
        resolution: Resolution,
        status: SurveyStatus,
        answers: int,
        profile_id: str,
        profile_version: int,
    ) -> None:
        assert resolution.tenant_id is not None
        event = SurveyEvent(
            tenant_id=resolution.tenant_id,
            call_uuid=self.info.call_uuid,
            profile_id=profile_id,
            profile_version=profile_version,
            tracking_number=self.info.tracking_number,
            pool_id=resolution.pool_id,
            caller=self.info.caller,
            agent=self.info.agent,
            survey_id=self.survey_id,
            status=status,
            answers=answers,
            started_at=self.started_at,
            ended_at=_now(),
        )
        if status != "no_profile":
            self.ctx.metrics.surveys.labels(status).inc()
        log.info(
            "survey ended",
            extra={
                **self._extra,
                "status": status,
                "answers": answers,
                "tenant_id": resolution.tenant_id,
                "profile_id": profile_id,
                "profile_version": profile_version,
                "hangup_cause": self.session.hangup_cause,
            },
        )
        self.ctx.publisher.submit(event)
