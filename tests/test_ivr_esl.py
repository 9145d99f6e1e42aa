"""The greenswitch 0.0.19 sharp edges (esl.md §7) and their fixes in services/ivr/esl_session,
on the wire: a scripted FreeSWITCH peer over a socket pair, all inside one gevent hub.

Where cheap, the same script is also run against greenswitch's own ``OutboundSession`` to show
the edge is real. The same faults are also driven through the simulator end to end
(tests/test_e2e_ivr_faults.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import gevent
import gevent.socket
import pytest
from greenswitch.esl import OutboundSession, OutboundSessionHasGoneAway

from services.ivr import esl_session
from services.ivr.esl_session import ChannelGone, CommandFailed, SurveySession
from services.ivr.metrics import IvrMetrics

UUID = "3f0e1c2a-0000-4000-8000-0000000000b2"


def plain(name: str, **headers: str) -> bytes:
    lines = [f"Event-Name: {name}", f"Unique-ID: {UUID}"]
    lines += [
        f"{k.replace('_', '-') if k[0].isupper() else k}: {quote(v, safe='')}"
        for k, v in headers.items()
    ]
    body = ("\n".join(lines) + "\n\n").encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def reply(text: str = "+OK") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


LINGER = (
    b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: "
    + UUID.encode()
    + b"\nContent-Disposition: linger\nChannel-Name: sofia/internal/1001@192.0.2.10\n"
    b"Linger-Time: -1\nContent-Length: 0\n\n"
)
FINAL_BODY = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
FINAL = (
    b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: "
    + UUID.encode()
    + b"\nContent-Disposition: disconnect\nContent-Length: 67\n\n"
    + FINAL_BODY
)


class Peer:
    """FreeSWITCH's end of the socket: reads commands, writes scripted frames."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = b""

    def command(self, timeout: float = 5) -> dict[str, str]:
        with gevent.Timeout(timeout):
            while b"\n\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, "IVR closed the socket"
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\n\n", 1)
        lines = raw.decode().split("\n")
        cmd = {"_line": lines[0]}
        for line in lines[1:]:
            k, _, v = line.partition(": ")
            cmd[k] = v
        if "Content-Length" in cmd:
            n = int(cmd["Content-Length"])
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            cmd["_body"], self.buf = self.buf[:n].decode(), self.buf[n:]
        return cmd

    def send(self, *frames: bytes) -> None:
        for f in frames:
            self.sock.sendall(f)


def complete(cmd: dict[str, str], **headers: str) -> bytes:
    """The EXECUTE_COMPLETE FreeSWITCH fires for the command ``cmd``."""
    app = cmd["execute-app-name"]
    return plain(
        "CHANNEL_EXECUTE_COMPLETE",
        Application=app,
        Application_UUID=cmd["Event-UUID"],
        variable_current_application=app,
        **headers,
    )


def connect_reply() -> bytes:
    return (
        b"Event-Name: CHANNEL_DATA\nUnique-ID: "
        + UUID.encode()
        + b"\nChannel-Name: sofia/internal/1001%40192.0.2.10\nvariable_ct_tracking_number: "
        b"%2B493011100\nContent-Type: command/reply\nReply-Text: %2BOK%0A\n"
        b"Socket-Mode: async\nControl: full\n\n"
    )


@pytest.fixture
def pair() -> Iterator[tuple[Any, Peer]]:
    ours, theirs = gevent.socket.socketpair()
    yield ours, Peer(theirs)
    ours.close()
    theirs.close()


@pytest.fixture
def session(pair: tuple[Any, Peer]) -> Iterator[tuple[SurveySession, Peer, IvrMetrics]]:
    ours, peer = pair
    metrics = IvrMetrics()
    s = SurveySession(("127.0.0.1", 1), ours, metrics)
    g = gevent.spawn(s.connect)
    assert peer.command()["_line"] == "connect"
    peer.send(connect_reply())
    g.join(timeout=5)
    assert s.session_data is not None and s.session_data["variable_ct_tracking_number"] == (
        "+493011100"
    )
    yield s, peer, metrics
    s._closing = True
    s.sock.close()


def errors(metrics: IvrMetrics, kind: str) -> float:
    return float(metrics.esl_errors.labels(kind)._value.get())


# -- 1. correlation by Application-UUID, not by application name ----------------------------
STALE = "11111111-2222-4333-8444-555555555555"


def script_stale_then_right(peer: Peer) -> None:
    cmd = peer.command()
    peer.send(reply())
    # A completion of another (nested / earlier, timed-out) playback arrives first.
    peer.send(
        plain(
            "CHANNEL_EXECUTE_COMPLETE",
            Application="playback",
            Application_UUID=STALE,
            variable_current_application="playback",
            X_Marker="stale",
        )
    )
    if "Event-UUID" in cmd:
        peer.send(complete(cmd, X_Marker="right"))
    else:  # greenswitch sends no Event-UUID: FreeSWITCH would pick a random one
        peer.send(
            plain(
                "CHANNEL_EXECUTE_COMPLETE",
                Application="playback",
                Application_UUID="random",
                variable_current_application="playback",
                X_Marker="right",
            )
        )


def test_execute_sends_event_uuid_and_waits_for_its_completion(session: Any) -> None:
    s, peer, _ = session
    g = gevent.spawn(s.playback, "ivr/welcome.wav")
    cmd = peer.command()
    assert cmd["_line"] == "sendmsg"
    assert cmd["call-command"] == "execute" and cmd["execute-app-name"] == "playback"
    assert cmd["execute-app-arg"] == "ivr/welcome.wav"
    peer.send(reply())
    peer.send(
        plain(
            "CHANNEL_EXECUTE_COMPLETE",
            Application="playback",
            Application_UUID=STALE,
            variable_current_application="playback",
            X_Marker="stale",
        )
    )
    peer.send(complete(cmd, X_Marker="right"))
    result = g.get(timeout=5)
    assert result.headers["X-Marker"] == "right"


def test_greenswitch_resolves_the_stale_completion(pair: tuple[Any, Peer]) -> None:
    ours, peer = pair
    gs = OutboundSession(("127.0.0.1", 1), ours)
    g = gevent.spawn(gs.playback, "ivr/welcome.wav")
    script_stale_then_right(peer)
    assert g.get(timeout=5).headers["X-Marker"] == "stale"  # the edge our fix removes


# -- 2. the linger notice is "hung up, events still coming" ---------------------------------
def test_linger_notice_does_not_fail_the_wait(session: Any) -> None:
    s, peer, metrics = session
    g = gevent.spawn(
        s.execute, "play_and_get_digits", "1 1 3 5000 # a.wav b.wav ct_in_q ^(1|2)$ 5000 ''"
    )
    cmd = peer.command()
    peer.send(reply(), plain("CHANNEL_HANGUP", Hangup_Cause="NORMAL_CLEARING"), LINGER)
    gevent.sleep(0.05)
    assert not g.ready()  # still waiting for the app's completion
    peer.send(complete(cmd, variable_ct_in_q="1"))
    result = g.get(timeout=5)
    assert result.hung_up and result.var("ct_in_q") == "1"
    assert s.hung_up and s.hangup_cause == "NORMAL_CLEARING"
    assert errors(metrics, "connection_closed") == 0


def test_greenswitch_fails_the_wait_on_the_linger_notice(pair: tuple[Any, Peer]) -> None:
    ours, peer = pair
    gs = OutboundSession(("127.0.0.1", 1), ours)
    g = gevent.spawn(gs.playback, "a.wav")
    cmd = peer.command()
    peer.send(reply(), LINGER)
    with pytest.raises(OutboundSessionHasGoneAway):
        g.get(timeout=5)
    assert "Event-UUID" not in cmd  # and it cannot correlate anyway


def test_execute_after_hangup_is_refused_at_once(session: Any) -> None:
    s, peer, _ = session
    peer.send(plain("CHANNEL_HANGUP", Hangup_Cause="NORMAL_CLEARING"), LINGER)
    gevent.sleep(0.05)
    with pytest.raises(ChannelGone):
        s.playback("a.wav")  # FreeSWITCH would say +OK during linger and never run it


def test_hangup_without_completion_is_bounded(session: Any, monkeypatch: Any) -> None:
    s, peer, _ = session
    monkeypatch.setattr(esl_session, "HANGUP_GRACE_S", 0.2)
    g = gevent.spawn(s.playback, "a.wav")
    peer.command()
    peer.send(reply(), plain("CHANNEL_HANGUP", Hangup_Cause="NORMAL_CLEARING"), LINGER)
    with pytest.raises(ChannelGone):
        g.get(timeout=5)


def test_final_notice_fails_pending_waits(session: Any) -> None:
    s, peer, _ = session
    g = gevent.spawn(s.playback, "a.wav")
    peer.command()
    peer.send(reply(), FINAL)
    with pytest.raises(ChannelGone):
        g.get(timeout=5)
    assert not s.connected


# -- 3. bounded reads -------------------------------------------------------------------------
def test_truncated_body_ends_the_call_and_the_hub_keeps_running(
    session: Any, pair: tuple[Any, Peer]
) -> None:
    s, peer, metrics = session
    ticks = [0]

    def ticker() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(0.01)

    t = gevent.spawn(ticker)
    g = gevent.spawn(s.playback, "a.wav")
    cmd = peer.command()
    frame = complete(cmd)
    peer.send(reply(), frame[: len(frame) // 2])
    peer.sock.close()  # closed mid-body: greenswitch spins the hub here for ever
    started = time.monotonic()
    with pytest.raises(ChannelGone):
        g.get(timeout=5)
    assert time.monotonic() - started < 1
    gevent.sleep(0.05)
    assert ticks[0] > 3
    assert errors(metrics, "truncated_frame") == 1
    t.kill()


def test_stalled_frame_is_bounded_in_time(session: Any, monkeypatch: Any) -> None:
    s, peer, metrics = session
    monkeypatch.setattr(esl_session, "IO_TIMEOUT_S", 0.3)
    g = gevent.spawn(s.playback, "a.wav")
    cmd = peer.command()
    frame = complete(cmd)
    peer.send(reply(), frame[: len(frame) // 2])  # ... and then nothing, connection open
    with pytest.raises(ChannelGone):
        g.get(timeout=5)
    assert errors(metrics, "malformed_frame") == 1


# -- 4. never the literal None ------------------------------------------------------------
def test_arguments_are_strings_and_newlines_travel_as_a_body(session: Any) -> None:
    s, peer, _ = session
    with pytest.raises(TypeError):
        s.execute("playback", None)  # type: ignore[arg-type]
    g = gevent.spawn(s.execute, "playback", "say:line one\nline two")
    cmd = peer.command()
    assert "execute-app-arg" not in cmd
    assert cmd["Content-Type"] == "text/plain" and cmd["_body"] == "say:line one\nline two"
    peer.send(reply(), complete(cmd))
    g.get(timeout=5)


# -- 5. parsing: per-line decoding, split frames, odd frames -----------------------------------
def test_split_frames_odd_frames_and_dtmf(session: Any) -> None:
    s, peer, metrics = session
    g = gevent.spawn(
        s.execute, "play_and_get_digits", "1 6 2 5000 # a.wav b.wav ct_in_v ^[0-9]{1,6}$ 5000 ''"
    )
    cmd = peer.command()
    stream = (
        reply()
        + b"Event-Name: CHANNEL_STATE\nUnique-ID: x\n\n"  # a block without Content-Type
        + reply("+OK stray")  # a reply nobody asked for
        + plain("DTMF", DTMF_Digit="4")
        + plain("DTMF", DTMF_Digit="2")
        + plain("DTMF", DTMF_Digit="#")
        + complete(cmd, variable_ct_in_v="42", variable_note="a\nX-Injected: bogus")
    )
    for i in range(0, len(stream), 7):  # seven bytes a TCP segment
        peer.send(stream[i : i + 7])
        gevent.sleep(0)
    result = g.get(timeout=5)
    assert result.var("ct_in_v") == "42" and result.dtmf == "42#"
    assert result.var("note") == "a\nX-Injected: bogus"
    assert "X-Injected" not in result.headers
    assert errors(metrics, "unknown_frame") == 1
    assert errors(metrics, "unsolicited_reply") == 1


def test_error_reply_fails_the_command(session: Any) -> None:
    s, peer, _ = session
    g = gevent.spawn(s.playback, "a.wav")
    peer.command()
    peer.send(reply("-ERR invalid session id [x]"))
    with pytest.raises(CommandFailed):
        g.get(timeout=5)


def test_linger_refused_without_full_is_counted(session: Any) -> None:
    s, peer, metrics = session
    g = gevent.spawn(s.linger)
    assert peer.command()["_line"] == "linger"
    peer.send(reply("-ERR command not found"))
    g.get(timeout=5)
    assert errors(metrics, "linger_refused") == 1


def test_an_application_that_fails_to_start_releases_its_connection(
    pair: tuple[Any, Peer],
) -> None:
    ours, peer = pair

    def broken(session: SurveySession) -> Any:
        raise RuntimeError("a bug in the application's constructor")

    server = esl_session.SurveyServer("127.0.0.1", 0, broken, 10, IvrMetrics())
    server._running = True
    g = gevent.spawn(server._accept_call, ours, ("127.0.0.1", 1))
    assert peer.command()["_line"] == "connect"
    peer.send(connect_reply())
    g.join(timeout=5)
    assert peer.command()["_line"] == "exit"  # the session is stopped, not left open
    peer.send(reply("+OK bye"))
    with gevent.Timeout(5):
        while server.connection_count or server._greenlets:
            gevent.sleep(0.01)
