"""play_and_get_digits as FreeSWITCH runs it (esl.md §4) and the script's key semantics."""

from __future__ import annotations

import dataclasses

import pytest

from simulator import CallResult
from simulator.apps import PagdArgs, separate_string
from simulator.rawclient import FAST, PAGD, Frame, RawIVR, call, run, scenario

pytestmark = pytest.mark.timeout(30)


async def _pagds(c: RawIVR, args: list[str]) -> list[list[Frame]]:
    """Run each PAGD in turn; the frames up to its EXECUTE_COMPLETE."""
    await c.start()
    out = []
    for arg in args:
        await c.execute("play_and_get_digits", arg)
        out.append(await c.until("CHANNEL_EXECUTE_COMPLETE"))
    await c.command("exit")
    return out


def pagd(keys: list[object], *args: str, **spec: object) -> tuple[CallResult, list[list[Frame]]]:
    return run(scenario(call(keys=keys, **spec), lambda c: _pagds(c, list(args or [PAGD]))))


def complete(frames: list[Frame]) -> dict[str, str]:
    return frames[-1].event


def dtmf(frames: list[Frame]) -> list[str]:
    return [f.event["DTMF-Digit"] for f in frames if f.name == "DTMF"]


def test_valid_input() -> None:
    result, [frames] = pagd(["1"])
    ev = complete(frames)
    assert ev["variable_q1"] == "1"
    assert ev["variable_read_result"] == "success"
    assert ev["Application-Response"] == "_none_"
    assert ev["variable_current_application"] == "play_and_get_digits"
    assert dtmf(frames) == ["1"]
    assert result.statuses == ["ok"] and result.answers == ["1"]


def test_all_tries_time_out() -> None:
    result, [frames] = pagd([""])
    ev = complete(frames)
    assert "variable_q1" not in ev
    assert ev["variable_read_result"] == "failure"  # min >= 1
    assert dtmf(frames) == []
    assert result.statuses == ["timeout"]
    assert [t.outcome for t in result.criteria[0].tries] == ["silence"] * 3


def test_timeout_with_min_zero_reports_timeout() -> None:
    _, [frames] = pagd([""], "0 1 1 5000 # q.wav '' q1 '' 2000 ''")
    assert complete(frames)["variable_read_result"] == "timeout"


def test_last_input_too_short_keeps_the_short_digits() -> None:
    result, [frames] = pagd(["1"], "2 4 2 5000 # q.wav inv.wav q1 '' 2000 ''")
    ev = complete(frames)
    assert ev["variable_q1"] == "1"  # still present: greenswitch would return it
    assert ev["variable_read_result"] == "failure"
    assert result.statuses == ["invalid"]


def test_last_input_fails_the_regexp() -> None:
    result, [frames] = pagd(["9"])
    ev = complete(frames)
    assert "variable_q1" not in ev
    assert ev["variable_q1_invalid"] == "9"
    assert ev["variable_read_result"] == "success"  # only the last read, not the PAGD outcome
    assert result.statuses == ["invalid"]
    assert dtmf(frames) == ["9", "9", "9"]


def test_terminator_ends_input_and_is_sent_as_percent_23() -> None:
    result, [frames] = pagd(["4200#"], "1 7 3 5000 # q.wav inv.wav q3 ^[0-9]+$ 2000 ''")
    ev = complete(frames)
    assert ev["variable_q3"] == "4200"
    assert ev["variable_read_terminator_used"] == "#"
    assert dtmf(frames) == ["4", "2", "0", "0", "#"]
    assert "DTMF-Digit: %23" in frames[-2].body_lines
    dtmf_frame = next(f for f in frames if f.name == "DTMF")
    assert not any(line.startswith("variable_") for line in dtmf_frame.body_lines)
    assert result.answers == ["4200"]


def test_plus_terminator_is_appended() -> None:
    _, [frames] = pagd(["42#"], "1 7 1 5000 +# q.wav inv.wav q3 '' 2000 ''")
    assert complete(frames)["variable_q3"] == "42#"


def test_required_terminator_missing_is_a_failure() -> None:
    result, _ = pagd(["42"], "1 7 1 5000 =# q.wav inv.wav q3 '' 2000 ''")
    assert result.statuses == ["invalid"]
    assert result.criteria[0].tries[0].outcome == "no_terminator"


def test_max_digits_ends_input_and_extra_keys_are_dropped() -> None:
    _result, [frames] = pagd(["123"], "1 2 1 5000 # q.wav inv.wav q1 '' 2000 ''")
    assert complete(frames)["variable_q1"] == "12"
    assert dtmf(frames) == ["1", "2"]


def test_a_list_gives_one_entry_per_try_and_missing_tries_are_silence() -> None:
    result, [frames] = pagd([["9", "", "2"]])
    assert [t.outcome for t in result.criteria[0].tries] == ["regex_mismatch", "silence", "valid"]
    assert complete(frames)["variable_q1"] == "2"
    result, _ = pagd([["9"]])
    assert [t.outcome for t in result.criteria[0].tries] == ["regex_mismatch", "silence", "silence"]
    assert result.statuses == ["invalid"]


def test_a_string_repeats_at_every_try() -> None:
    result, _ = pagd(["7"])
    assert [t.digits for t in result.criteria[0].tries] == ["7", "7", "7"]


def test_keys_index_by_criterion_missing_is_silence_and_extra_ignored() -> None:
    result, _ = pagd(["1", "2", "1", "2"], PAGD, PAGD)
    assert result.statuses == ["ok", "ok"]
    result, _ = pagd(["1"], PAGD, PAGD)
    assert result.statuses == ["ok", "timeout"]


def test_variable_is_cleared_at_each_try() -> None:
    # First PAGD sets q1=1; the second one (same variable) gets silence: q1 must be gone.
    _, (first, second) = pagd(["1", ""], PAGD, PAGD)
    assert complete(first)["variable_q1"] == "1"
    assert "variable_q1" not in complete(second)


def test_barge_in_digit_interrupts_the_prompt() -> None:
    _result, [frames] = pagd(["2"], barge_in=True)
    assert complete(frames)["variable_q1"] == "2"


def test_zero_tries_plays_nothing() -> None:
    result, [frames] = pagd(["1"], "1 1 0 5000 # q.wav inv.wav q1 '' 2000 ''")
    assert "variable_q1" not in complete(frames) and result.criteria[0].tries == []


def test_greenswitch_none_arguments_reject_everything_and_transfer() -> None:
    # greenswitch formats a missing argument as the literal None (esl.md §7).
    result, [_frames] = pagd(["1"], "1 1 1 5000 # q.wav None q1 None None None")
    assert result.statuses == ["invalid"]  # regexp "None" matches no digits
    assert result.error and "transferred on failure to 'None'" in result.error
    assert result.hangup_cause == "NO_ROUTE_DESTINATION"


def test_application_data_keeps_quotes_and_uuid_echo() -> None:
    async def ivr(c: RawIVR) -> list[Frame]:
        await c.start()
        await c.execute("play_and_get_digits", PAGD, Event_UUID="pagd-uuid-7")
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return frames

    result, frames = run(scenario(call(keys=["1"]), ivr))
    assert frames[0].event["Application-Data"] == PAGD
    assert {frames[0].event["Application-UUID"], frames[-1].event["Application-UUID"]} == {
        "pagd-uuid-7"
    }
    assert result.criteria[0].application_uuid == "pagd-uuid-7"


def test_timing_factor_scales_the_timeouts() -> None:
    slow = dataclasses.replace(FAST, timing=0.01)
    result, _ = run(scenario(call(keys=[""]), lambda c: _pagds(c, [PAGD]), slow))
    # 3 x (prompt 2 s + timeout 5 s + invalid prompt 2 s) x 0.01 = 0.27 s
    assert 0.25 < result.duration < 1.5


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("1 1 3 5000 # q.wav inv.wav q1 ^[12]$ 2000 ''", ["1", "1", "3", "5000", "#", "q.wav",
                                                         "inv.wav", "q1", "^[12]$", "2000", ""]),
        ("1  2 'a b.wav'", ["1", "2", "a b.wav"]),
        ("1 2 3 4 5 6 7 8 9 10 rest with spaces", ["1", "2", "3", "4", "5", "6", "7", "8", "9",
                                                   "10", "rest with spaces"]),
        ("a\\ b c", ["a b", "c"]),
    ],
)  # fmt: skip
def test_separate_string(data: str, expected: list[str]) -> None:
    assert separate_string(data, 11) == expected


def test_pagd_clamping() -> None:
    a = PagdArgs.parse("-3 0 2 500 '' q.wav '' v '' 0 ''")
    assert (a.min_digits, a.max_digits, a.timeout_ms, a.terminators) == (0, 0, 1000, "#")
    assert a.digit_timeout_ms == 1000  # 0 -> timeout
    b = PagdArgs.parse("3 1 None None")
    assert (b.min_digits, b.max_digits, b.tries, b.timeout_ms) == (3, 3, 0, 1000)
