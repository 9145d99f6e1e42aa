"""JetStream message -> validated event, or the reason it can never become one.

A rejected message is dead-lettered, so the reason is written for a person reading the dead-letter
stream: it names the field and what was wrong, never a Python traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shared import nats_names as names
from shared.events import SCHEMA_VERSION, AnswerEvent, SurveyEvent

Event = AnswerEvent | SurveyEvent

# Reason categories (the prefix of every reason and the label of the dead-letter metric).
MALFORMED_JSON = "malformed_json"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
MISSING_FIELDS = "missing_fields"
INVALID_FIELDS = "invalid_fields"
TENANT_MISMATCH = "tenant_mismatch"
UNKNOWN_SUBJECT = "unknown_subject"
REJECTED_BY_CLICKHOUSE = "rejected_by_clickhouse"

_MAX_DETAILS = 5  # a reason lists at most this many field errors


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message can never be stored: ``kind`` is a category, ``reason`` the full text."""

    kind: str
    reason: str


def decode(subject: str, body: bytes) -> Event | Rejected:
    """Validate one message of the events stream."""
    model = _model_for_subject(subject)
    if model is None:
        return Rejected(
            UNKNOWN_SUBJECT,
            f"{UNKNOWN_SUBJECT}: subject {subject!r} is neither "
            f"{names.ANSWERS_SUBJECT_PREFIX}.<tenant> nor {names.SURVEYS_SUBJECT_PREFIX}.<tenant>",
        )
    try:
        event: Event = model.model_validate_json(body)
    except ValidationError as exc:
        return _explain(exc)
    subject_tenant = names.tenant_of_subject(subject)
    if event.tenant_id != subject_tenant:
        # Subjects carry the tenant so that NATS permissions can be scoped per tenant; a body
        # claiming another tenant would let one tenant write into another's reports.
        return Rejected(
            TENANT_MISMATCH,
            f"{TENANT_MISMATCH}: subject tenant {subject_tenant!r} != "
            f"body tenant_id {event.tenant_id!r}",
        )
    if (
        isinstance(event, AnswerEvent)
        and event.value is not None
        and not math.isfinite(event.value)
    ):
        return Rejected(INVALID_FIELDS, f"{INVALID_FIELDS}: value: must be a finite number")
    return event


def _model_for_subject(subject: str) -> type[AnswerEvent] | type[SurveyEvent] | None:
    prefix, _, tenant = subject.rpartition(".")
    if not tenant:
        return None
    if prefix == names.ANSWERS_SUBJECT_PREFIX:
        return AnswerEvent
    if prefix == names.SURVEYS_SUBJECT_PREFIX:
        return SurveyEvent
    return None


def _explain(exc: ValidationError) -> Rejected:
    """Turn pydantic's errors into one category and a readable reason."""
    errors = exc.errors(include_url=False)
    kinds = {e["type"] for e in errors}
    if kinds & {"json_invalid", "json_type"}:
        detail = next(e["msg"] for e in errors if e["type"] in ("json_invalid", "json_type"))
        return Rejected(MALFORMED_JSON, f"{MALFORMED_JSON}: {detail}")
    if "model_type" in kinds or "model_attributes_type" in kinds:
        return Rejected(MALFORMED_JSON, f"{MALFORMED_JSON}: body is not a JSON object")
    version = _schema_version_error(errors)
    if version is not None:
        return Rejected(
            UNKNOWN_SCHEMA_VERSION,
            f"{UNKNOWN_SCHEMA_VERSION}: schema_version {version!r} "
            f"(this aggregator reads version {SCHEMA_VERSION})",
        )
    missing = [_loc(e) for e in errors if e["type"] == "missing"]
    if missing:
        return Rejected(MISSING_FIELDS, f"{MISSING_FIELDS}: {', '.join(missing[:_MAX_DETAILS])}")
    details = "; ".join(f"{_loc(e)}: {e['msg']}" for e in errors[:_MAX_DETAILS])
    return Rejected(INVALID_FIELDS, f"{INVALID_FIELDS}: {details}")


def _schema_version_error(errors: list[ErrorDetails]) -> object | None:
    for error in errors:
        if error["loc"] == ("schema_version",):
            return error.get("input")
    return None


def _loc(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(body)"


def event_key(event: Event) -> tuple[str, str, str]:
    """(table, tenant, id): what identifies an event in ClickHouse."""
    if isinstance(event, AnswerEvent):
        return ("answers", event.tenant_id, event.answer_id)
    return ("surveys", event.tenant_id, event.survey_id)
