"""Drive many simulated calls into one IVR; the Python API behind ``convtrack simulate``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from simulator import wire
from simulator.channel import Channel, SimConfig
from simulator.script import CallSpec
from simulator.tally import CallResult, SurveyOutcome, Tally

log = logging.getLogger("simulator")


@dataclass
class RunResult:
    tally: Tally
    results: list[CallResult]


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(address, tuple):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"IVR address {address!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def survey_outcome(result: CallResult) -> SurveyOutcome:
    """The survey's outcome as seen from FreeSWITCH's side (docs/CONTRACTS.md)."""
    if any(c.status == "hangup" for c in result.criteria):
        return "incomplete"
    if not result.criteria:
        # The agent hung up before the first question, or the IVR released the leg without one.
        return "incomplete" if result.hangup_by == "agent" else "no_profile"
    return "complete"


async def run_call(
    spec: CallSpec,
    ivr: str | tuple[str, int],
    config: SimConfig | None = None,
    *,
    index: int = 0,
    connect_gate: asyncio.Semaphore | None = None,
) -> CallResult:
    """One call: connect to the IVR, play FreeSWITCH until the socket closes."""
    host, port = parse_address(ivr)
    cfg = dataclasses.replace(config or SimConfig(), ivr_address=f"{host}:{port}")
    result = CallResult(
        index=index, number=spec.number, caller=spec.caller, faults=[f.value for f in spec.faults]
    )
    started = time.perf_counter()
    try:
        if connect_gate is not None:
            async with connect_gate:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        else:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        channel = Channel(spec, reader, writer, cfg, result)
        await asyncio.wait_for(channel.run(), cfg.call_timeout)
    except TimeoutError:
        result.error = "timed out (no 'connect', or the call outlived --call-timeout)"
    except (OSError, wire.ProtocolError, asyncio.IncompleteReadError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.duration = time.perf_counter() - started
    result.outcome = survey_outcome(result)
    if result.error:
        log.warning("call %d (%s) error: %s", index, spec.number, result.error)
    return result


async def run_calls(
    calls: Sequence[CallSpec],
    ivr: str | tuple[str, int],
    *,
    concurrency: int = 100,
    config: SimConfig | None = None,
    on_result: Callable[[CallResult], None] | None = None,
) -> RunResult:
    """Run ``calls`` against the IVR with at most ``concurrency`` at a time, in script order."""
    gate = asyncio.Semaphore(max(concurrency, 1))
    # Bound simultaneous TCP connects: the IVR's listen backlog (greenswitch: 100) would
    # otherwise drop SYNs and add seconds of retransmission to a burst of 1,000 calls.
    connect_gate = asyncio.Semaphore(64)
    started = time.perf_counter()

    async def one(i: int, spec: CallSpec) -> CallResult:
        async with gate:
            r = await run_call(spec, ivr, config, index=i, connect_gate=connect_gate)
        if on_result is not None:
            on_result(r)
        return r

    results = list(await asyncio.gather(*(one(i, s) for i, s in enumerate(calls))))
    return RunResult(Tally.of(results, time.perf_counter() - started), results)


def run_calls_sync(
    calls: Sequence[CallSpec], ivr: str | tuple[str, int], **kwargs: object
) -> RunResult:
    """``run_calls`` on a fresh event loop in this thread (blocks)."""
    return asyncio.run(run_calls(calls, ivr, **kwargs))  # type: ignore[arg-type]


def start_in_thread(
    calls: Sequence[CallSpec], ivr: str | tuple[str, int], **kwargs: object
) -> Future[RunResult]:
    """Run the calls on an asyncio loop in a new OS thread; for gevent tests and benchmarks.

    The IVR under test may live in the same process (gevent hub in the main thread) as long as
    threading is not monkey-patched; otherwise run ``convtrack simulate`` as a subprocess.
    """
    future: Future[RunResult] = Future()

    def main() -> None:
        try:
            future.set_result(run_calls_sync(calls, ivr, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=main, name="simulator", daemon=True).start()
    return future
