"""Fidelity of the simulator on the wire, checked with a raw-socket IVR (esl.md §1, §2, §8)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from simulator import SimConfig, run_call
from simulator.rawclient import FAST, UUID, Frame, RawIVR, call, run, scenario
from simulator.wire import final_notice, linger_notice

pytestmark = pytest.mark.timeout(30)

CHANNEL_NAME = "sofia/internal/1001@192.0.2.10"


def test_nothing_is_sent_before_connect_and_the_reply_has_esl_md_order() -> None:
    async def ivr(c: RawIVR) -> tuple[bool, bytes]:
        silent = await c.quiet(0.15)
        reply = await c.command("connect")
        await c.command("exit")
        return silent, reply.raw

    result, (silent, raw) = run(scenario(call(), ivr))
    assert silent, "FreeSWITCH sends nothing until 'connect' arrives"
    assert result.error is None
    text = raw.decode()
    assert text.endswith(
        "Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
    )
    lines = text.split("\n")
    assert lines[0] == "Event-Name: CHANNEL_DATA"
    assert not any(line.startswith("Content-Length") for line in lines), "no outer Content-Length"
    names = [line.partition(": ")[0] for line in lines if line]
    order = [
        "Event-Calling-File",
        "Event-Sequence",
        "Channel-Caller-ID-Number",
        "Channel-State",
        "Unique-ID",
        "Channel-Call-UUID",
        "Answer-State",
        "Caller-Caller-ID-Number",
        "variable_uuid",
        "Content-Type",
    ]
    positions = [names.index(n) for n in order]
    assert positions == sorted(positions)
    assert len(names) == len(set(names)), "EF_UNIQ_HEADERS: no duplicate header in CHANNEL_DATA"
    assert "Event-Calling-File: mod_event_socket.c" in lines
    assert "Event-Calling-Function: parse_command" in lines
    assert f"Unique-ID: {UUID}" in lines
    assert f"Channel-Call-UUID: {UUID}" in lines
    assert f"variable_uuid: {UUID}" in lines
    assert f"variable_call_uuid: {UUID}" in lines
    assert "Channel-Name: sofia/internal/1001%40192.0.2.10" in lines
    assert "Caller-Caller-ID-Number: %2B491701234567" in lines
    assert "Caller-Destination-Number: agent_survey" in lines
    assert "Answer-State: answered" in lines
    assert "Call-Direction: outbound" in lines
    assert "variable_ct_tracking_number: %2B493012345678" in lines
    assert "variable_ct_caller: %2B491701234567" in lines


def test_reply_texts_are_exact() -> None:
    async def ivr(c: RawIVR) -> dict[str, bytes]:
        await c.command("connect")
        out = {}
        for cmd in [
            "myevents",
            "myevents",
            "linger",
            "linger 5",
            "nolinger",
            "bogus",
            "getvar ct_tracking_number",
            "getvar not_set_anywhere",
            "event plain ALL",
            "event plain",
            "filter Unique-ID abc",
            "divert_events on",
            "resume",
        ]:
            out[cmd] = (await c.command(cmd)).raw
        out["api status"] = (await c.command("api status")).raw
        out["api nosuch"] = (await c.command("api nosuch x")).raw
        out["exit"] = (await c.command("exit")).raw
        out["rest"] = await c.eof()
        return out

    def reply(text: str) -> bytes:
        return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()

    result, out = run(scenario(call(), ivr))
    assert out["myevents"] == reply("-ERR aready enabled.")  # the second one; typo is FS's
    assert out["linger"] == reply("+OK will linger")
    assert out["linger 5"] == reply("+OK will linger 5 seconds")
    assert out["nolinger"] == reply("+OK will not linger")
    assert out["bogus"] == reply("-ERR command not found")
    assert out["getvar ct_tracking_number"] == reply("+493012345678")  # raw, not encoded
    assert out["getvar not_set_anywhere"] == reply("-ERR command not found")
    assert out["event plain ALL"] == reply("+OK event listener enabled plain")
    assert out["event plain"] == reply("-ERR no keywords supplied")
    assert out["filter Unique-ID abc"] == reply("+OK filter added. [Unique-ID]=[abc]")
    assert out["divert_events on"] == reply("+OK events diverted")
    assert out["resume"] == reply("+OK")
    assert out["api status"].startswith(b"Content-Type: api/response\nContent-Length: ")
    body = b"-ERR nosuch Command not found!\n"
    assert (
        out["api nosuch"]
        == b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body
    )
    assert out["exit"] == reply("+OK bye")
    assert out["rest"] == final_notice(UUID), "exit: +OK bye, final notice, close"
    assert len(final_notice(UUID).split(b"\n\n", 1)[1]) == 67
    assert result.error is None


def test_first_myevents_reply() -> None:
    async def ivr(c: RawIVR) -> bytes:
        await c.command("connect")
        raw = (await c.command("myevents")).raw
        await c.command("exit")
        return raw

    _, raw = run(scenario(call(), ivr))
    assert raw == b"Content-Type: command/reply\nReply-Text: +OK Events Enabled\n\n"


def test_without_full_linger_and_api_are_refused() -> None:
    async def ivr(c: RawIVR) -> list[str | None]:
        connect = await c.command("connect")
        texts: list[str | None] = [connect.raw.decode().rsplit("Control: ", 1)[1].strip()]
        for cmd in [
            "myevents",
            "linger",
            "nolinger",
            "api status",
            "event plain ALL",
            "getvar uuid",
        ]:
            texts.append((await c.command(cmd)).outer("Reply-Text"))
        await c.command("exit")
        return texts

    cfg = dataclasses.replace(FAST, full_control=False)
    _, texts = run(scenario(call(), ivr, cfg))
    assert texts == [
        "single-channel",
        "+OK Events Enabled",
        "-ERR command not found",
        "-ERR command not found",
        "-ERR command not found",
        "-ERR command not found",
        UUID,
    ]


def test_execute_echoes_event_uuid_and_frames_events_length_first() -> None:
    arg = "http_cache://http://media.example/a b#1.wav"

    async def ivr(c: RawIVR) -> tuple[Frame, list[Frame]]:
        await c.start()
        ok = await c.execute("playback", arg, Event_UUID="my-app-uuid-1")
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return ok, frames

    _, (ok, frames) = run(scenario(call(), ivr))
    assert ok.raw == b"Content-Type: command/reply\nReply-Text: +OK\n\n"
    assert [f.name for f in frames] == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]
    for f in frames:
        head = f.raw.split(b"\n\n", 1)[0].split(b"\n")
        assert head[0].startswith(b"Content-Length: ")
        assert head[1] == b"Content-Type: text/event-plain"
        assert len(f.body) == int(head[0].split(b": ")[1])
        assert f.body.endswith(b"\n\n")
        lines = f.body_lines
        assert "Application: playback" in lines
        assert "Application-UUID: my-app-uuid-1" in lines
        assert "Application-Data: http_cache%3A//http%3A//media.example/a%20b%231.wav" in lines
        assert f.event["Application-Data"] == arg
        assert "variable_current_application: playback" in lines
    complete = frames[1].event
    assert complete["Application-Response"] == "FILE PLAYED"
    names = [line.partition(": ")[0] for line in frames[1].body_lines]
    assert names.index("variable_uuid") < names.index("Application")  # variables come first
    assert names[-4:] == [
        "Application",
        "Application-Data",
        "Application-Response",
        "Application-UUID",
    ]


def test_execute_without_event_uuid_gets_a_random_application_uuid() -> None:
    async def ivr(c: RawIVR) -> list[str]:
        await c.start()
        await c.execute("playback", "a.wav")
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return [f.event["Application-UUID"] for f in frames]

    _, uuids = run(scenario(call(), ivr))
    assert uuids[0] == uuids[1] and len(uuids[0]) == 36


def test_sendmsg_headers_are_case_insensitive_and_text_plain_body_is_the_arg() -> None:
    async def ivr(c: RawIVR) -> dict[str, str]:
        await c.start()
        body = b"line one.wav"
        await c.command(
            "sendmsg\nCall-Command: execute\nExecute-App-Name: playback\n"
            f"Content-Type: text/plain\nContent-Length: {len(body)}",
            body,
        )
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return frames[-1].event

    _, ev = run(scenario(call(), ivr))
    assert ev["Application-Data"] == "line one.wav"


def test_no_events_before_myevents() -> None:
    async def ivr(c: RawIVR) -> tuple[bool, str | None]:
        await c.command("connect")
        await c.execute("playback", "a.wav")
        quiet = await c.quiet(0.1)
        reply = (await c.command("myevents")).outer("Reply-Text")
        await c.command("exit")
        return quiet, reply

    _, (quiet, reply) = run(scenario(call(), ivr))
    assert quiet and reply == "+OK Events Enabled"


def test_loops_repeat_the_application() -> None:
    async def ivr(c: RawIVR) -> list[str]:
        await c.start()
        await c.execute("playback", "a.wav", loops="3")
        names = []
        for _ in range(6):
            names.append((await c.frame()).name)
        await c.command("exit")
        return names

    _, names = run(scenario(call(), ivr))
    assert names == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"] * 3


def test_queued_execute_runs_nested_unless_event_locked() -> None:
    async def ivr(c: RawIVR, lock: bool) -> list[str]:
        await c.start()
        extra = {"event_lock": "true"} if lock else {}
        await c.execute("playback", "outer.wav", **extra)
        await c.execute("playback", "inner.wav")
        order: list[str] = []
        while len(order) < 2:
            f = await c.frame()
            if f.name == "CHANNEL_EXECUTE_COMPLETE":
                order.append(f.event["Application-Data"])
        await c.command("exit")
        return order

    cfg = dataclasses.replace(FAST, timing=0.02)
    _, nested = run(scenario(call(), lambda c: ivr(c, False), cfg))
    _, locked = run(scenario(call(), lambda c: ivr(c, True), cfg))
    assert nested == ["inner.wav", "outer.wav"]  # runs inside playback's media loop
    assert locked == ["outer.wav", "inner.wav"]


def test_static_mode_replies_after_completion_and_events_follow() -> None:
    async def ivr(c: RawIVR) -> list[str]:
        connect = await c.command("connect")
        assert "Socket-Mode: static" in connect.raw.decode()
        await c.command("myevents")
        await c.send(
            "sendmsg\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: a"
        )
        names = [(await c.frame()).name for _ in range(3)]
        await c.command("exit")
        return names

    cfg = dataclasses.replace(FAST, async_mode=False)
    _, names = run(scenario(call(), ivr, cfg))
    assert names == ["command/reply", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"]


def test_unknown_application_hangs_up_without_execute_events() -> None:
    async def ivr(c: RawIVR) -> list[Frame]:
        await c.start(linger=False)
        await c.execute("no_such_app", "x")
        frames = await c.until("notice:disconnect")
        return frames

    result, frames = run(scenario(call(), ivr))
    assert [f.name for f in frames] == ["CHANNEL_HANGUP", "notice:disconnect"]
    assert frames[0].event["Hangup-Cause"] == "DESTINATION_OUT_OF_ORDER"
    assert result.error and "no_such_app" in result.error


def test_api_uuid_break_cuts_a_playback_short() -> None:
    async def ivr(c: RawIVR) -> tuple[str, str | None]:
        await c.start()
        await c.execute("playback", "long.wav")
        await c.until("CHANNEL_EXECUTE")
        api = await c.command(f"api uuid_break {UUID}")
        done = await c.until("CHANNEL_EXECUTE_COMPLETE", timeout=0.5)
        await c.command("exit")
        return api.body.decode(), done[-1].event.get("Application-Response")

    cfg = dataclasses.replace(FAST, timing=1.0)  # a 2 s prompt unless broken
    _, (api, response) = run(scenario(call(), ivr, cfg))
    assert api == "+OK\n" and response == "FILE PLAYED"


def test_connection_refused_is_a_call_error() -> None:
    async def main() -> str | None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return (await run_call(call(), ("127.0.0.1", port), FAST)).error

    assert "ConnectionRefused" in (run(main()) or "")


def test_ivr_that_never_sends_connect_times_out() -> None:
    async def ivr(c: RawIVR) -> bool:
        return await c.quiet(1.0)

    cfg = dataclasses.replace(FAST, connect_wait=0.2)
    result, _ = run(scenario(call(), ivr, cfg))
    assert result.error and "timed out" in result.error


def test_linger_notice_bytes() -> None:
    assert (
        linger_notice(UUID, CHANNEL_NAME, -1)
        == (
            "Content-Type: text/disconnect-notice\n"
            f"Controlled-Session-UUID: {UUID}\n"
            "Content-Disposition: linger\n"
            f"Channel-Name: {CHANNEL_NAME}\n"
            "Linger-Time: -1\n"
            "Content-Length: 0\n\n"
        ).encode()
    )
    assert (
        final_notice(UUID)
        == (
            "Content-Type: text/disconnect-notice\n"
            f"Controlled-Session-UUID: {UUID}\n"
            "Content-Disposition: disconnect\n"
            "Content-Length: 67\n\n"
            "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        ).encode()
    )


def test_simconfig_defaults_are_async_full() -> None:
    cfg = SimConfig()
    assert cfg.async_mode and cfg.full_control and cfg.timing == 1.0


def test_encoding_matches_greenswitch_recorded_fixtures_and_esl_md_examples() -> None:
    from simulator.wire import url_encode

    # greenswitch tests/: an encoded HEARTBEAT; esl.md §1 examples.
    assert url_encode("2015-01-19 12:06:19") == "2015-01-19%2012%3A06%3A19"
    assert url_encode("::1") == "%3A%3A1"
    assert url_encode("#") == "%23" and url_encode("*") == "*"
    assert url_encode("sofia/internal/1001@192.0.2.10") == "sofia/internal/1001%40192.0.2.10"
    assert url_encode("+OK\n") == "%2BOK%0A"
    assert url_encode('a&b;c<d=e>f?g[h\\i]j^k`l{m|n}o"p%q') == (
        "a%26b%3Bc%3Cd%3De%3Ef%3Fg%5Bh%5Ci%5Dj%5Ek%60l%7Bm%7Cn%7Do%22p%25q"
    )
    assert url_encode("Grüße\r\t") == "Gr%C3%BC%C3%9Fe%0D%09"
    assert url_encode("/,.-_*!'()$~") == "/,.-_*!'()$~"


def test_event_standard_headers() -> None:
    async def ivr(c: RawIVR) -> Frame:
        await c.start()
        await c.execute("playback", "a.wav")
        frames = await c.until("CHANNEL_EXECUTE_COMPLETE")
        await c.command("exit")
        return frames[-1]

    _, frame = run(scenario(call(), ivr))
    lines = frame.body_lines
    assert lines[0] == "Event-Name: CHANNEL_EXECUTE_COMPLETE"
    assert "FreeSWITCH-IPv6: %3A%3A1" in lines
    assert any(line.startswith("Event-Date-Local: 20") and "%3A" in line for line in lines)
    assert frame.event["Channel-Call-UUID"] == UUID
