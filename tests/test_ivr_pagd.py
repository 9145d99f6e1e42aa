"""play_and_get_digits arguments, digit regexes, our re-check of digits, and the status table."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from services.ivr.esl_session import AppResult
from services.ivr.pagd import (
    CodeRule,
    NumberRule,
    PagdArgs,
    check_digits,
    clean_digits,
    code_regex,
    number_regex,
    quote_token,
)
from services.ivr.plan import build_plan
from services.ivr.prompts import PromptResolver
from services.ivr.survey import count_tries, judge
from shared.domain import CodeMapEntry, StoredCodeMap, StoredProfile

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def fs_split(args: str) -> list[str]:
    """FreeSWITCH's switch_separate_string for play_and_get_digits (esl.md §4): spaces split,
    single quotes group and are stripped."""
    return [a if a != "''" else "" for a in re.findall(r"'[^']*'|[^ ]+", args)]


def unquote_tokens(tokens: list[str]) -> list[str]:
    return [t[1:-1] if len(t) >= 2 and t[0] == t[-1] == "'" else t for t in tokens]


def test_render_has_eleven_tokens_and_never_none() -> None:
    args = PagdArgs(1, 1, 3, 5000, "#", "say:Wie war das Gespräch?", "", "ct_in_q", "^(1|2)$", 5000)
    rendered = args.render()
    tokens = unquote_tokens(fs_split(rendered))
    assert len(tokens) == 11
    assert "None" not in rendered.split()
    assert tokens[5] == "say:Wie war das Gespräch?"
    assert tokens[6] == "" and tokens[10] == ""  # empty invalid file and transfer_on_failure
    assert rendered.endswith(" ''")


def test_quote_token() -> None:
    assert quote_token("") == "''"
    assert quote_token("a b") == "'a b'"
    assert quote_token("it's") == "it’s"
    assert quote_token("x\ny") == "'x y'"


def test_code_regex_is_anchored_and_backslash_free() -> None:
    rx = code_regex(["1", "12", "*9"])
    assert "\\" not in rx
    assert rx == "^([*]9|12|1)$"
    for ok in ("1", "12", "*9"):
        assert re.fullmatch(rx, ok)
    for bad in ("2", "121", "9", ""):
        assert not re.fullmatch(rx, bad)


def test_number_regex() -> None:
    assert number_regex(1, 9) == "^[0-9]{1,9}$"
    assert number_regex(4, 4) == "^[0-9]{4}$"
    assert re.fullmatch(number_regex(1, 5), "4200")
    assert not re.fullmatch(number_regex(1, 3), "4200")


def test_check_digits_code_map() -> None:
    rule = CodeRule({"1": CodeMapEntry(code="1", label="ja", value=1, success=True)})
    ok = check_digits(rule, "1")
    assert (ok.verdict, ok.code, ok.label, ok.value, ok.success) == ("ok", "1", "ja", 1, True)
    assert check_digits(rule, "2").verdict == "invalid"


def test_check_digits_number() -> None:
    rule = NumberRule(1, 6)
    assert check_digits(rule, "4200").value == 4200.0
    assert check_digits(rule, "0042").value == 42.0
    assert check_digits(rule, "1234567").verdict == "invalid"
    assert check_digits(rule, "").verdict == "invalid"
    assert check_digits(rule, "12*").verdict == "invalid"
    assert check_digits(rule, "١٢").verdict == "invalid"  # non-ASCII digits


def test_clean_digits_strips_only_terminators() -> None:
    assert clean_digits("4200#", "#") == "4200"
    assert clean_digits("*9", "#") == "*9"


def test_count_tries() -> None:
    assert count_tries("", "#", 1) == 0
    assert count_tries("91", "#", 1) == 2  # one-digit codes: each digit is a try
    assert count_tries("12#4200#", "#", 9) == 2
    assert count_tries("12", "#", 9) == 1


def _profile(**criterion: object) -> StoredProfile:
    base: dict[str, object] = {
        "key": "q",
        "label": "Erfolg",
        "input": {
            "type": "code",
            "code_map": {
                "name": "yn",
                "entries": [
                    {"code": "1", "label": "ja", "success": True},
                    {"code": "2", "label": "nein"},
                ],
            },
        },
    }
    base.update(criterion)
    return StoredProfile.model_validate(
        {
            "id": "p1",
            "tenant_id": "acme",
            "created_at": NOW,
            "updated_at": NOW,
            "name": "P",
            "criteria": [base],
            "prompts": {"welcome": {"text": "Hallo"}, "goodbye": {"prompt_id": "bye"}},
        }
    )


def test_plan_for_code_map_and_prompts() -> None:
    plan = build_plan(_profile(), 7, {}, PromptResolver("https://api.example", "k"))
    assert plan.profile_version == 7
    assert plan.welcome == "say:Hallo"
    assert plan.goodbye is not None
    assert plan.goodbye.startswith("http_cache://https://api.example/audio/acme/bye.wav?sig=")
    c = plan.criteria[0]
    assert (c.pagd.min_digits, c.pagd.max_digits, c.pagd.tries) == (1, 1, 3)
    assert c.pagd.prompt_file == "say:Erfolg"  # no prompt: the label is spoken
    assert c.pagd.regex == "^(1|2)$"


def test_plan_with_code_map_reference() -> None:
    cm = StoredCodeMap.model_validate(
        {
            "id": "grades",
            "tenant_id": "acme",
            "created_at": NOW,
            "updated_at": NOW,
            "name": "g",
            "entries": [{"code": str(i), "label": f"g{i}"} for i in range(1, 7)],
        }
    )
    profile = _profile(input={"type": "code", "code_map_id": "grades"})
    plan = build_plan(profile, 1, {"grades": cm}, PromptResolver("", "k"))
    assert plan.criteria[0].pagd.regex == "^(1|2|3|4|5|6)$"


def test_plan_number_input() -> None:
    profile = _profile(
        input={"type": "number", "min_digits": 1, "max_digits": 6}, aggregations=["sum"]
    )
    c = build_plan(profile, 1, {}, PromptResolver("", "k")).criteria[0]
    assert (c.pagd.min_digits, c.pagd.max_digits, c.pagd.terminators) == (1, 6, "#")
    assert c.pagd.regex == "^[0-9]{1,6}$"


@pytest.mark.parametrize(
    ("variables", "dtmf", "hung_up", "status", "attempts"),
    [
        ({"variable_ct_in_q": "1"}, "1", False, "ok", 1),
        ({"variable_ct_in_q": "1"}, "91", False, "ok", 2),  # invalid then valid
        ({}, "", False, "timeout", 3),  # silence on every try
        ({"variable_ct_in_q_invalid": "9"}, "999", False, "invalid", 3),
        ({}, "9", False, "invalid", 3),  # input once, then silence
        ({"variable_ct_in_q": "7"}, "7", False, "invalid", 3),  # FS accepted, our check did not
        ({}, "", True, "hangup", 0),
        ({"variable_ct_in_q": "1"}, "1", True, "hangup", 1),
    ],
)
def test_judge(
    variables: dict[str, str], dtmf: str, hung_up: bool, status: str, attempts: int
) -> None:
    c = build_plan(_profile(), 1, {}, PromptResolver("", "k")).criteria[0]
    outcome = judge(c, AppResult(variables, dtmf, hung_up))
    assert (outcome.status, outcome.attempts) == (status, attempts)
    if status == "ok":
        assert (outcome.label, outcome.success) == ("ja", True)
