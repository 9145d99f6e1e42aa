"""Hang-ups mid-application, linger and the end of the session (esl.md §2.2, §4, §8.8-10)."""

from __future__ import annotations

import pytest

from simulator import Fault
from simulator.rawclient import PAGD, UUID, Frame, RawIVR, call, run, scenario
from simulator.wire import final_notice, linger_notice

pytestmark = pytest.mark.timeout(30)
CHANNEL_NAME = "sofia/internal/1001@192.0.2.10"


async def _survey_until_close(c: RawIVR, *, linger: bool = True, n: int = 2) -> list[Frame]:
    """Welcome, n questions, goodbye, hangup; after the channel is gone, reads to the end."""
    await c.start(linger=linger)
    frames: list[Frame] = []
    steps = [("playback", "welcome.wav")] + [("play_and_get_digits", PAGD)] * n
    steps += [("playback", "bye.wav"), ("hangup", "")]
    try:
        for app, arg in steps:
            await c.execute(app, arg)
            while True:
                f = await c.frame()
                frames.append(f)
                if f.name in ("CHANNEL_EXECUTE_COMPLETE", "notice:disconnect"):
                    break
            if f.name == "notice:disconnect" or any(x.name == "CHANNEL_HANGUP" for x in frames):
                break
        while frames[-1].name != "notice:disconnect":
            f = await c.frame()
            frames.append(f)
            if f.name == "CHANNEL_HANGUP_COMPLETE":
                await c.send("exit")  # what greenswitch's session.stop() does
    except (ConnectionError, TimeoutError):
        pass
    return frames


def names(frames: list[Frame]) -> list[str]:
    return [f.name for f in frames if f.name not in ("DTMF", "CHANNEL_EXECUTE")]


def test_hangup_mid_prompt_with_linger_notice_after_complete() -> None:
    result, frames = run(
        scenario(call(keys=["1", "2"], hangup_after=1), lambda c: _survey_until_close(c))
    )
    seq = names(frames)
    i = seq.index("CHANNEL_HANGUP")
    assert seq[i:] == [
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "notice:linger",
        "CHANNEL_HANGUP_COMPLETE",
        "command/reply",
        "notice:disconnect",
    ]
    hangup = frames[[f.name for f in frames].index("CHANNEL_HANGUP")].event
    assert hangup["Answer-State"] == "hangup" and hangup["Hangup-Cause"] == "NORMAL_CLEARING"
    cut = [f for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE"][-1].event
    assert cut["Application"] == "play_and_get_digits"
    assert "variable_q1" not in cut and "variable_read_result" not in cut
    notice = next(f for f in frames if f.name == "notice:linger")
    assert notice.raw == linger_notice(UUID, CHANNEL_NAME, -1)
    assert frames[-1].raw == final_notice(UUID)
    complete = next(f for f in frames if f.name == "CHANNEL_HANGUP_COMPLETE")
    assert [line for line in complete.body_lines if line.startswith("Hangup-Cause")] == [
        "Hangup-Cause: NORMAL_CLEARING"
    ] * 2
    assert "CHANNEL_DESTROY" not in seq
    assert result.statuses == ["ok", "hangup"] and result.outcome == "incomplete"
    assert result.hangup_by == "agent"


def test_linger_notice_before_complete() -> None:
    spec = call(keys=["1"], hangup_after=0, faults=[Fault.LINGER_BEFORE_COMPLETE])
    result, frames = run(scenario(spec, lambda c: _survey_until_close(c)))
    seq = names(frames)
    assert seq[seq.index("CHANNEL_HANGUP") :] == [
        "CHANNEL_HANGUP",
        "notice:linger",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP_COMPLETE",
        "command/reply",
        "notice:disconnect",
    ]
    assert result.statuses == ["hangup"] and result.outcome == "incomplete"


def test_without_linger_the_final_notice_follows_the_hangup_and_the_socket_closes() -> None:
    result, frames = run(
        scenario(call(keys=["1"], hangup_after=0), lambda c: _survey_until_close(c, linger=False))
    )
    seq = names(frames)
    assert seq[seq.index("CHANNEL_HANGUP") :] == ["CHANNEL_HANGUP", "notice:disconnect"]
    assert frames[-1].raw == final_notice(UUID)
    assert result.outcome == "incomplete"


def test_sendmsg_during_linger_gets_ok_and_no_events_then_exit_closes() -> None:
    async def ivr(c: RawIVR) -> tuple[str | None, bool, bytes, bytes]:
        await c.start()
        await c.execute("play_and_get_digits", PAGD)
        await c.until("CHANNEL_HANGUP_COMPLETE")
        ok = (await c.execute("playback", "late.wav")).outer("Reply-Text")
        quiet = await c.quiet(0.2)
        bye = (await c.command("exit")).raw
        return ok, quiet, bye, await c.eof()

    _result, (ok, quiet, bye, rest) = run(scenario(call(keys=["1"], hangup_after=0), ivr))
    assert ok == "+OK" and quiet
    assert bye == b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
    assert rest == final_notice(UUID)


def test_linger_with_seconds_closes_after_that_time() -> None:
    async def ivr(c: RawIVR) -> list[Frame]:
        await c.command("connect")
        await c.command("myevents")
        assert (await c.command("linger 1")).outer("Reply-Text") == "+OK will linger 1 seconds"
        await c.execute("play_and_get_digits", PAGD)
        return await c.until("notice:disconnect", timeout=3)

    _, frames = run(scenario(call(keys=["1"], hangup_after=0), ivr))
    linger = next(f for f in frames if f.name == "notice:linger")
    assert linger.outer("Linger-Time") == "1"


def test_goodbye_hangup_when_hangup_after_covers_every_criterion() -> None:
    result, frames = run(
        scenario(call(keys=["1", "2"], hangup_after=2), lambda c: _survey_until_close(c))
    )
    cut = [f for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE"][-1].event
    assert cut["Application-Data"] == "bye.wav"
    assert result.statuses == ["ok", "ok"] and result.outcome == "complete"
    assert result.playbacks == ["welcome.wav", "bye.wav"]


def test_ivr_hangup_app_and_call_command_hangup() -> None:
    result, frames = run(scenario(call(keys=["1", "2"]), lambda c: _survey_until_close(c)))
    seq = names(frames)
    assert seq[seq.index("CHANNEL_HANGUP") :] == [
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",  # the hangup app itself
        "notice:linger",
        "CHANNEL_HANGUP_COMPLETE",
        "command/reply",
        "notice:disconnect",
    ]
    assert result.outcome == "complete" and result.hangup_by == "ivr"

    async def ivr(c: RawIVR) -> list[Frame]:
        await c.start()
        await c.command("sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY")
        return await c.until("CHANNEL_HANGUP_COMPLETE")

    result, frames = run(scenario(call(), ivr))
    assert [f.name for f in frames] == [
        "CHANNEL_HANGUP",
        "notice:linger",
        "CHANNEL_HANGUP_COMPLETE",
    ]
    assert frames[0].event["Hangup-Cause"] == "USER_BUSY"
    assert result.outcome == "no_profile"


def test_ivr_closing_the_socket_ends_the_call() -> None:
    async def ivr(c: RawIVR) -> None:
        await c.start()
        await c.execute("playback", "sorry.wav")
        await c.until("CHANNEL_EXECUTE_COMPLETE")

    result, _ = run(scenario(call(), ivr))
    assert result.error is None and result.outcome == "no_profile"
    assert result.hangup_by == "dialplan"


def test_ivr_closing_mid_question_is_an_error() -> None:
    async def ivr(c: RawIVR) -> None:
        await c.start()
        await c.execute("play_and_get_digits", PAGD)
        await c.until("CHANNEL_EXECUTE")

    result, _ = run(scenario(call(keys=["1"]), ivr))
    assert result.error and "play_and_get_digits" in result.error
    assert result.statuses == ["hangup"]
