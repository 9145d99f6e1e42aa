"""Each simulator fault case (simulator/faults.py) against a running IVR: the faulted call ends
the way docs/CONTRACTS.md says, the calls next to it are untouched, the process stays up.

These are the end-to-end proofs of the greenswitch fixes (esl.md §7); the wire-level proofs,
with greenswitch's own behaviour for contrast, are in tests/test_ivr_esl.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.nats_bootstrap import bootstrap_url
from shared.stack import LocalStack
from simulator import CallSpec, Fault, SimConfig, run_calls_sync

from ivr_kit import IvrProcess, standard_config, stream_events, wait_for

KEYS = ["1", "2", "3#"]
NUMBER = "+493011100"


@pytest.fixture(scope="module")
def ivr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IvrProcess, str]]:
    d = tmp_path_factory.mktemp("faults")
    nats_stack = LocalStack(Path(d) / "nats")
    nats_stack.start_nats()
    asyncio.run(bootstrap_url([nats_stack.nats_url]))
    standard_config(nats_stack.nats_url)
    proc = IvrProcess(nats_stack.nats_url, Path(d)).start()
    yield proc, nats_stack.nats_url
    proc.stop()
    nats_stack.stop_nats(kill=True)


# fault -> (hangup_after, answers the IVR publishes, survey status, esl error kind counted)
CASES: dict[Fault, tuple[int | None, list[str], str, str | None]] = {
    Fault.SPLIT_FRAMES: (None, ["ok", "ok", "ok"], "complete", None),
    Fault.MALFORMED_FRAME: (None, ["ok", "ok", "ok"], "complete", "unknown_frame"),
    Fault.ENCODED_NEWLINE: (None, ["ok", "ok", "ok"], "complete", None),
    Fault.TRUNCATED_BODY: (None, ["hangup"], "incomplete", "truncated_frame"),
    Fault.DROP_CONNECTION: (None, ["hangup"], "incomplete", "connection_closed"),
    Fault.HANGUP_MID_PROMPT: (None, [], "incomplete", None),
    Fault.LINGER_BEFORE_COMPLETE: (1, ["ok", "hangup"], "incomplete", None),
    Fault.LINGER_AFTER_COMPLETE: (1, ["ok", "hangup"], "incomplete", None),
}


def esl_errors(ivr: IvrProcess) -> dict[str, float]:
    prefix = "ct_ivr_esl_errors_total{kind="
    return {k[len(prefix) + 1 : -2]: v for k, v in ivr.metrics().items() if k.startswith(prefix)}


@pytest.mark.parametrize("fault", list(CASES), ids=lambda f: f.value)
def test_fault_ends_only_that_call(fault: Fault, ivr: tuple[IvrProcess, str]) -> None:
    proc, nats_url = ivr
    hangup_after, statuses, status, error_kind = CASES[fault]
    faulted = f"f-{fault.value}"
    calls = [
        CallSpec(uuid=faulted, number=NUMBER, keys=KEYS, hangup_after=hangup_after, faults=[fault])
    ]
    calls += [CallSpec(uuid=f"{faulted}-n{i}", number=NUMBER, keys=KEYS) for i in range(3)]
    before = esl_errors(proc)

    result = run_calls_sync(calls, proc.address, concurrency=4, config=SimConfig(timing=0.02))

    for neighbour in result.results[1:]:
        assert neighbour.error is None and neighbour.statuses == ["ok", "ok", "ok"]
    assert result.results[0].error is None, result.results[0].error

    def survey() -> dict[str, Any] | None:
        return next(
            (s for s in stream_events(nats_url, "surveys") if s["call_uuid"] == faulted), None
        )

    got = wait_for(survey, 10, 0.1, f"survey event of {faulted}")
    assert got["status"] == status and got["answers"] == len(statuses)
    answers = sorted(
        (a for a in stream_events(nats_url, "answers") if a["call_uuid"] == faulted),
        key=lambda a: a["criterion_index"],
    )
    assert [a["status"] for a in answers] == statuses
    neighbours = [
        s for s in stream_events(nats_url, "surveys") if s["call_uuid"].startswith(f"{faulted}-n")
    ]
    assert len(neighbours) == 3 and {s["status"] for s in neighbours} == {"complete"}

    after = esl_errors(proc)
    grown = {k for k in after if after[k] > before.get(k, 0)}
    assert grown == ({error_kind} if error_kind else set()), after
    assert proc.ready()  # the process is still up and serving
