"""Event -> ClickHouse row mapping, defined once next to the schema it fills."""

from __future__ import annotations

from typing import Any

from shared.events import AnswerEvent, SurveyEvent

ANSWER_COLUMNS = (
    "tenant_id", "answer_id", "survey_id", "call_uuid", "profile_id", "profile_version",
    "criterion_key", "criterion_index", "tracking_number", "pool_id", "caller", "agent",
    "digits", "code", "label", "value", "success", "status", "attempts", "answered_at",
)  # fmt: skip

SURVEY_COLUMNS = (
    "tenant_id", "survey_id", "call_uuid", "profile_id", "profile_version", "tracking_number",
    "pool_id", "caller", "agent", "status", "answers", "started_at", "ended_at",
)  # fmt: skip


def answer_row(e: AnswerEvent) -> tuple[Any, ...]:
    return (
        e.tenant_id, e.answer_id, e.survey_id, e.call_uuid, e.profile_id, e.profile_version,
        e.criterion_key, e.criterion_index, e.tracking_number, e.pool_id, e.caller, e.agent,
        e.digits, e.code, e.label, e.value, int(e.success), e.status, e.attempts,
        e.answered_at,
    )  # fmt: skip


def survey_row(e: SurveyEvent) -> tuple[Any, ...]:
    return (
        e.tenant_id, e.survey_id, e.call_uuid, e.profile_id, e.profile_version,
        e.tracking_number, e.pool_id, e.caller, e.agent, e.status, e.answers, e.started_at,
        e.ended_at,
    )  # fmt: skip
