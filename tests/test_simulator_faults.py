"""Each fault case is switchable per call and ends only that call (esl.md §7, §8.12)."""

from __future__ import annotations

import pytest

from simulator import Fault
from simulator.rawclient import PAGD, RawIVR, call, run, scenario

pytestmark = pytest.mark.timeout(30)


async def _raw_survey(c: RawIVR) -> bytes:
    """Run one question, then return every byte the simulator sent after the prompt began."""
    await c.start()
    await c.execute("play_and_get_digits", PAGD)
    try:
        return await c.eof(timeout=1.0)
    except TimeoutError:
        return b"<still open>"


def test_split_frames_arrive_in_pieces_but_parse_identically() -> None:
    async def ivr(c: RawIVR) -> tuple[int, list[str]]:
        chunks = 0
        await c.send("connect")
        data = b""
        while not data.endswith(b"Control: full\n\n"):
            data += await c.reader.read(65536)
            chunks += 1
        await c.command("myevents")
        await c.execute("play_and_get_digits", PAGD)
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return chunks, [f.name for f in frames]

    result, (chunks, names) = run(scenario(call(keys=["1"], faults=[Fault.SPLIT_FRAMES]), ivr))
    assert chunks > 1, "the connect reply came in more than one read"
    assert names == ["CHANNEL_EXECUTE", "DTMF", "CHANNEL_EXECUTE_COMPLETE"]
    assert result.statuses == ["ok"] and result.error is None


def test_truncated_body_closes_mid_body() -> None:
    result, rest = run(scenario(call(keys=["1"], faults=[Fault.TRUNCATED_BODY]), _raw_survey))
    last = rest.rsplit(b"Content-Length: ", 1)[1]
    length = int(last.split(b"\n", 1)[0])
    head, _, body = last.partition(b"\n\n")
    assert b"Content-Type: text/event-plain" in head
    assert 0 < len(body) < length, "the peer closed in the middle of the body"
    assert b"CHANNEL_EXECUTE_COMPLETE" in body
    assert result.statuses == ["hangup"] and result.outcome == "incomplete"
    assert result.error is None


def test_malformed_frame_has_no_content_type() -> None:
    async def ivr(c: RawIVR) -> list[bytes]:
        await c.start()
        await c.execute("play_and_get_digits", PAGD)
        frames = [(await c.frame()).raw for _ in range(2)]
        await c.command("exit")
        return frames

    _result, (bad, execute) = run(scenario(call(keys=["1"], faults=[Fault.MALFORMED_FRAME]), ivr))
    assert bad.startswith(b"Content-Length: ") and b"Content-Type" not in bad
    assert b"Event-Name: CHANNEL_EXECUTE\n" in execute


def test_encoded_newline_in_a_variable() -> None:
    async def ivr(c: RawIVR) -> bytes:
        reply = await c.command("connect")
        await c.command("exit")
        return reply.raw

    _, raw = run(scenario(call(faults=[Fault.ENCODED_NEWLINE]), ivr))
    assert b"variable_ct_note: first%20line%0AX-Injected%3A%20bogus\n" in raw


def test_drop_connection_mid_prompt_sends_no_notice() -> None:
    result, rest = run(scenario(call(keys=["1"], faults=[Fault.DROP_CONNECTION]), _raw_survey))
    assert b"disconnect-notice" not in rest and b"CHANNEL_HANGUP" not in rest
    assert result.statuses == ["hangup"] and result.outcome == "incomplete"


def test_hangup_mid_prompt_hits_the_first_prompt() -> None:
    async def ivr(c: RawIVR) -> list[str]:
        await c.start()
        await c.execute("playback", "welcome.wav")
        frames = await c.until("CHANNEL_HANGUP_COMPLETE")
        await c.command("exit")
        return [f.name for f in frames]

    result, names = run(scenario(call(keys=["1"], faults=[Fault.HANGUP_MID_PROMPT]), ivr))
    assert names == [
        "CHANNEL_EXECUTE",
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "notice:linger",
        "CHANNEL_HANGUP_COMPLETE",
    ]
    assert result.outcome == "incomplete" and result.hangup_by == "agent"


def test_a_fault_on_one_call_leaves_the_others_alone() -> None:
    import asyncio

    from simulator import CallSpec, run_calls
    from simulator.rawclient import FAST

    async def main() -> list[tuple[object, list[str]]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            c = RawIVR(reader, writer)
            try:
                await c.start()
                await c.execute("play_and_get_digits", PAGD)
                await c.until("CHANNEL_EXECUTE_COMPLETE")
                await c.execute("hangup", "")
                await c.until("CHANNEL_HANGUP_COMPLETE")
                await c.command("exit")
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        calls = [
            CallSpec(number="+493012345678", keys=["1"], faults=faults)
            for faults in ([], [Fault.TRUNCATED_BODY], [], [Fault.SPLIT_FRAMES], [])
        ]
        res = await run_calls(calls, f"127.0.0.1:{port}", concurrency=5, config=FAST)
        server.close()
        return [(r.outcome, list(r.statuses)) for r in res.results]

    out = run(main())
    assert out == [
        ("complete", ["ok"]),
        ("incomplete", ["hangup"]),
        ("complete", ["ok"]),
        ("complete", ["ok"]),
        ("complete", ["ok"]),
    ]
