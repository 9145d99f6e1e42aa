"""Validation of the shared domain and event models (design §1, §7)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.domain import CodeMap, Criterion, NumberPool, Profile
from shared.events import AnswerEvent, SurveyEvent
from shared.ids import answer_id, normalize_number, survey_id

SUCCESS_MAP = {
    "name": "Erfolg",
    "entries": [
        {"code": "1", "label": "ERFOLGREICH", "value": 1, "success": True},
        {"code": "2", "label": "NICHT ERFOLGREICH", "value": 0},
    ],
}


def criterion(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "key": "success",
        "label": "Erfolg",
        "input": {"type": "code", "code_map": SUCCESS_MAP},
        "tries": 3,
        "timeout_ms": 5000,
        "aggregations": ["count", "success_rate", "distribution"],
    }
    base.update(over)
    return base


def test_profile_accepts_a_phone_feasible_definition() -> None:
    p = Profile.model_validate(
        {
            "name": "Standard",
            "criteria": [
                criterion(),
                criterion(
                    key="order_value",
                    label="Auftragswert",
                    input={"type": "number", "min_digits": 1, "max_digits": 7},
                    aggregations=["sum", "max", "avg"],
                ),
            ],
            "prompts": {"welcome": {"text": "Bitte bewerten Sie das Gespräch", "language": "de"}},
        }
    )
    assert [c.key for c in p.criteria] == ["success", "order_value"]


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"tries": 0}, "tries"),
        ({"tries": 10}, "tries"),
        ({"timeout_ms": 500}, "timeout_ms"),
        ({"timeout_ms": 61_000}, "timeout_ms"),
        ({"key": "Bad Key"}, "key"),
        ({"input": {"type": "number", "min_digits": 5, "max_digits": 2}}, "max_digits"),
        ({"input": {"type": "code"}}, "exactly one"),
        ({"aggregations": ["count", "count"]}, "repeat"),
    ],
)
def test_criterion_rejects_what_cannot_work_on_a_phone(
    over: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as err:
        Criterion.model_validate(criterion(**over))
    assert fragment in str(err.value)


def test_code_map_codes_must_be_distinct_digits() -> None:
    with pytest.raises(ValidationError, match="repeated: 1"):
        CodeMap.model_validate({"name": "x", "entries": [{"code": "1", "label": "a"}] * 2})
    with pytest.raises(ValidationError):
        CodeMap.model_validate({"name": "x", "entries": [{"code": "1#", "label": "a"}]})


def test_duplicate_criterion_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="repeated: success"):
        Profile.model_validate({"name": "p", "criteria": [criterion(), criterion()]})


def test_pool_numbers_are_e164_and_distinct() -> None:
    NumberPool.model_validate({"name": "Berlin", "numbers": ["+493012345678"]})
    with pytest.raises(ValidationError, match=r"E\.164"):
        NumberPool.model_validate({"name": "Berlin", "numbers": ["030123"]})
    with pytest.raises(ValidationError, match="only once"):
        NumberPool.model_validate({"name": "B", "numbers": ["+493012345678"] * 2})


def test_answer_ids_are_deterministic_per_call_and_criterion() -> None:
    assert answer_id("call-1", "success") == answer_id("call-1", "success")
    assert answer_id("call-1", "success") != answer_id("call-1", "grade")
    assert survey_id("call-1") != answer_id("call-1", "survey")
    assert normalize_number("493012345678") == "+493012345678"
    assert normalize_number("00493012345678") == "+493012345678"


def test_events_carry_schema_version_and_refuse_bad_fields() -> None:
    now = datetime.now(UTC)
    e = AnswerEvent(
        tenant_id="acme",
        call_uuid="c1",
        answer_id="a1",
        survey_id="s1",
        criterion_key="success",
        status="ok",
        digits="1",
        answered_at=now,
    )
    assert e.model_dump()["schema_version"] == 1
    with pytest.raises(ValidationError):
        AnswerEvent.model_validate({**e.model_dump(), "schema_version": 2})
    with pytest.raises(ValidationError):
        AnswerEvent.model_validate({**e.model_dump(), "digits": "12a"})
    with pytest.raises(ValidationError):
        AnswerEvent.model_validate({**e.model_dump(), "tenant_id": "Not A Tenant"})
    with pytest.raises(ValidationError, match="time zone"):
        AnswerEvent.model_validate({**e.model_dump(), "answered_at": datetime(2026, 1, 1)})
    with pytest.raises(ValidationError):
        SurveyEvent.model_validate(
            {"tenant_id": "acme", "call_uuid": "c", "survey_id": "s", "status": "lost",
             "started_at": now, "ended_at": now}
        )  # fmt: skip
