"""A protocol-faithful FreeSWITCH outbound event-socket simulator (``convtrack simulate``).

Python API (see docs/simulator.md)::

    from simulator import CallSpec, SimConfig, run_calls, generate_calls
    result = await run_calls([CallSpec(number="+493012345678", keys=["1", "2", "4200#"])],
                             "127.0.0.1:8084", concurrency=10, config=SimConfig(timing=0.01))
    result.tally.figures(); result.results[0].statuses
"""

from simulator.channel import SimConfig
from simulator.faults import Fault
from simulator.generator import KeyMix, generate_calls
from simulator.runner import (
    RunResult,
    run_call,
    run_calls,
    run_calls_sync,
    start_in_thread,
    survey_outcome,
)
from simulator.script import CallSpec, ScriptError, load_script, parse_script_lines
from simulator.tally import CallResult, CriterionResult, Tally, TryResult

__all__ = [
    "CallResult",
    "CallSpec",
    "CriterionResult",
    "Fault",
    "KeyMix",
    "RunResult",
    "ScriptError",
    "SimConfig",
    "Tally",
    "TryResult",
    "generate_calls",
    "load_script",
    "parse_script_lines",
    "run_call",
    "run_calls",
    "run_calls_sync",
    "start_in_thread",
    "survey_outcome",
]
