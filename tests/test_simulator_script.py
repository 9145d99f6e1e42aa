"""The script format, seeded generation, the tally and the CLI's argument handling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from simulator import CallSpec, Fault, ScriptError, Tally, generate_calls, parse_script_lines
from simulator.cli import add_arguments, run
from simulator.tally import CallResult, CriterionResult, percentile


def test_issue_example_line_parses() -> None:
    [spec] = parse_script_lines(
        ['{"number": "+493012345678", "caller": "+491701234567", '
         '"keys": ["1", ["9", "4200#"]], "hangup_after": null}']
    )  # fmt: skip
    assert spec.entry(0, 0) == spec.entry(0, 2) == "1"  # a string repeats at every try
    assert spec.entry(1, 0) == "9" and spec.entry(1, 1) == "4200#"
    assert spec.entry(1, 2) == ""  # a missing try is silence
    assert spec.entry(5, 0) == ""  # a missing criterion is silence
    assert spec.hangup_after is None and spec.faults == []


def test_blank_lines_are_skipped_and_faults_parse() -> None:
    calls = parse_script_lines(
        ["", '{"number": "+493012345678", "faults": ["split_frames", "truncated_body"]}', "  "]
    )
    assert calls[0].faults == [Fault.SPLIT_FRAMES, Fault.TRUNCATED_BODY]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("not json", "line 2"),
        ("[1, 2]", "expected a JSON object"),
        ('{"caller": "+491701234567"}', "number"),
        ('{"number": "+4930", "keys": ["1x"]}', "non-DTMF"),
        ('{"number": "abc"}', "not a phone number"),
        ('{"number": "+493012345678", "hangup_after": -1}', "hangup_after"),
        ('{"number": "+493012345678", "faults": ["meteor"]}', "faults"),
        ('{"number": "+493012345678", "kyes": []}', "kyes"),
    ],
)
def test_a_bad_line_names_its_line_number(line: str, needle: str) -> None:
    good = '{"number": "+493012345678"}'
    with pytest.raises(ScriptError) as err:
        parse_script_lines([good, line], "calls.jsonl")
    assert str(err.value).startswith("calls.jsonl line 2: ")
    assert needle in str(err.value)


def test_generation_is_reproducible_per_seed() -> None:
    a = generate_calls(200, seed=42, numbers=["+493012345678", "+493087654321"])
    b = generate_calls(200, seed=42, numbers=["+493012345678", "+493087654321"])
    c = generate_calls(200, seed=43, numbers=["+493012345678", "+493087654321"])
    assert a == b and a != c
    assert {s.number for s in a} == {"+493012345678", "+493087654321"}
    flat = [k for s in a for k in s.keys]
    assert "" in flat, "some silences"
    assert any(isinstance(k, list) for k in flat), "some invalid-then-valid tries"
    assert any(s.hangup_after is not None for s in a), "some hang-ups"
    valid_share = sum(isinstance(k, str) and k != "" for k in flat) / len(flat)
    assert valid_share > 0.7, "mostly valid answers"
    assert all(len(s.keys) == 3 for s in a)
    assert generate_calls(3, seed=1, faults=[Fault.SPLIT_FRAMES])[0].faults == [Fault.SPLIT_FRAMES]


def test_tally_figures_and_json_line() -> None:
    ok = CriterionResult(0, "q1", "ok", "1")
    hang = CriterionResult(1, "q2", "hangup", "")
    results = [
        CallResult(0, "+49", "+49", outcome="complete", criteria=[ok], turnarounds=[0.001]),
        CallResult(1, "+49", "+49", outcome="incomplete", criteria=[ok, hang]),
        CallResult(2, "+49", "+49", outcome="no_profile"),
        CallResult(3, "+49", "+49", outcome="no_profile", error="boom"),
    ]
    t = Tally.of(results)
    figures = json.loads(t.json_line())
    assert figures["calls"] == 4 and figures["errors"] == 1
    assert figures["answers"] == {"ok": 2, "invalid": 0, "timeout": 0, "hangup": 1}
    assert figures["surveys"] == {"complete": 1, "incomplete": 1, "no_profile": 1}
    assert figures["turnaround_ms"]["p50"] == 1.0
    assert "surveys complete" in t.table()
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([], 99) == 0.0


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_reports_a_bad_script_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "calls.jsonl"
    script.write_text('{"number": "+493012345678"}\n{"number": "+493012345678", "keys": 5}\n')
    assert run(_args("--script", str(script))) == 2
    assert f"{script} line 2: keys" in capsys.readouterr().err


def test_cli_rejects_a_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_args("--ivr", "nowhere", "--calls", "1")) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_cli_counts_refused_connections_as_errors(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(_args("--ivr", f"127.0.0.1:{port}", "--calls", "3", "--timing", "0.01")) == 1
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["calls"] == 3 and last["errors"] == 3


def test_callspec_is_hashable_and_frozen() -> None:
    spec = CallSpec(number="+493012345678", keys=["1"])
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        spec.number = "+49"


def test_cli_fault_choices_match_the_fault_enum() -> None:
    from simulator.cli import FAULTS
    from simulator.faults import FAULT_NAMES

    assert FAULTS == FAULT_NAMES
