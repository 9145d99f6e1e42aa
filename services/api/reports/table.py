"""The call list as a flat table: one header list and typed cells, shared by the exports."""

from __future__ import annotations

from datetime import datetime

from services.api.reports.models import CallRow, CriterionHeader

FIXED_HEADERS = [
    "Time", "Ended", "Tracking number", "Pool", "Caller", "Agent", "Survey status",
    "Profile version", "Survey id",
]  # fmt: skip
ANSWER_PARTS = [("digits", "digits"), ("label", "answer"), ("value", "value"), ("status", "status")]

Cell = str | float | int | datetime | None


def headers(criteria: list[CriterionHeader], tz_name: str) -> list[str]:
    out = [f"Time ({tz_name})", f"Ended ({tz_name})", *FIXED_HEADERS[2:]]
    for c in criteria:
        out += [f"{c.label}: {title}" for _, title in ANSWER_PARTS]
    return out


def cells(row: CallRow, criteria: list[CriterionHeader]) -> list[Cell]:
    out: list[Cell] = [
        row.time, row.ended_at, row.tracking_number, row.pool_id, row.caller, row.agent,
        row.status, row.profile_version, row.survey_id,
    ]  # fmt: skip
    for c in criteria:
        answer = row.answers.get(c.key)
        if answer is None:
            out += [None, None, None, None]
        else:
            out += [answer.digits, answer.label, answer.value, answer.status]
    return out
