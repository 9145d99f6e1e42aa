"""greenswitch 0.0.19's outbound session and server, with its sharp edges removed (esl.md §7).

``SurveySession`` subclasses ``greenswitch.esl.OutboundSession`` and replaces what does not hold
up on a real switch:

1. Correlation: every ``execute`` carries an ``Event-UUID`` header, and completion is the
   ``CHANNEL_EXECUTE_COMPLETE`` whose ``Application-UUID`` equals it - never a match on the
   application name, which mis-resolves nested or repeated apps and lets a stale wait swallow
   the next completion.
2. Linger: the linger disconnect-notice means "the channel hung up, events are still coming".
   Pending waits are *not* failed; the app's EXECUTE_COMPLETE still arrives and is used. Only the
   final notice, a closed socket, or a hang-up grace period without completion fail them.
3. Bounded reads: our own reader (``esl_frames``) reads with ``recv`` and stops at EOF, so a body
   truncated by the peer ends the connection instead of spinning the hub; a frame that has
   started and makes no progress for ``IO_TIMEOUT_S`` ends it too; every
   write, every reply and every application wait has a timeout.
4. No literal ``None``: arguments are built as strings (``pagd.PagdArgs``), never ``%s`` of None.
5. Parsing: header lines are split first and URL-decoded per line; split frames, CRLF, JSON
   events, a block without Content-Type, an unsolicited reply and duplicate headers are
   tolerated or end only this connection, never the process.

``SurveyServer`` subclasses ``OutboundESLServer``: a blocking accept with a real backlog (the
original polls every 0.1 s with a backlog of 100), bounded handshake, capacity and drain.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket as _stdsocket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.socket as gsocket
from gevent.event import AsyncResult
from greenswitch.esl import OutboundESLServer, OutboundSession, OutboundSessionHasGoneAway

from .esl_frames import (
    Event,
    Frame,
    FrameError,
    FrameParser,
    event_name_of,
    parse_json_event,
    parse_plain_event,
)
from .metrics import IvrMetrics

log = logging.getLogger(__name__)
_random = random.Random()  # Event-UUIDs: unique, not secret; no syscall per command

IO_TIMEOUT_S = 10.0  # a started frame or a write making no progress this long ends the call
REPLY_TIMEOUT_S = 10.0  # command -> command/reply
HANGUP_GRACE_S = 5.0  # after a hang-up, how long a pending app may take to report completion
RECV_BYTES = 65536
_WANTED_EVENTS = frozenset(
    {"CHANNEL_EXECUTE_COMPLETE", "DTMF", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"}
)


class ChannelGone(OutboundSessionHasGoneAway):
    """The channel hung up or the connection to FreeSWITCH is lost; no more commands run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommandFailed(RuntimeError):
    """FreeSWITCH answered a command with ``-ERR ...``."""


@dataclass(slots=True)
class AppResult:
    """An application's CHANNEL_EXECUTE_COMPLETE, with the DTMF digits seen while it ran."""

    headers: Mapping[str, str]
    dtmf: str = ""
    hung_up: bool = False  # the channel had hung up before the completion arrived

    def var(self, name: str) -> str | None:
        return self.headers.get(f"variable_{name}")


@dataclass(slots=True)
class _Execution:
    app: str
    app_uuid: str
    done: AsyncResult = field(default_factory=AsyncResult)
    dtmf: list[str] = field(default_factory=list)


def _reply_text(frame: Frame) -> str:
    return frame.headers.get("Reply-Text", "").strip()


class SurveySession(OutboundSession):
    def __init__(self, client_address: Any, sock: Any, metrics: IvrMetrics | None = None) -> None:
        # Set before super().__init__, which starts the reader greenlet.
        self._metrics = metrics
        self._parser = FrameParser()
        # Commands awaiting their reply, in order: (result to set or None, execution or None).
        self._replies: deque[tuple[AsyncResult | None, _Execution | None]] = deque()
        self._executions: dict[str, _Execution] = {}
        self._current: _Execution | None = None
        self._closing = False
        self._completed_at = 0.0  # when the last awaited EXECUTE_COMPLETE arrived
        self.hung_up = False
        self.hangup_cause = ""
        self.gone = gevent.event.Event()  # set at hang-up or connection loss
        self.peer = client_address
        self.session_data: dict[str, str] | None = None
        super().__init__(client_address, sock)

    # -- identity ---------------------------------------------------------------------------
    @property
    def channel_uuid(self) -> str:
        data = self.session_data or {}
        return data.get("Unique-ID") or data.get("variable_uuid") or ""

    def _error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.esl_errors.labels(kind).inc()

    def _log_extra(self) -> dict[str, str]:
        return {"call_uuid": self.channel_uuid}

    # -- reader -----------------------------------------------------------------------------
    def process_events(self) -> None:
        """greenswitch's dispatcher greenlet is not needed: the reader dispatches directly."""
        return

    def receive_events(self) -> None:
        try:
            while True:
                if self._parser.mid_frame:
                    # A frame has started: it must make progress within IO_TIMEOUT_S. (Only
                    # here: a timer on every read would cost the hub at 1,000 calls.)
                    stalled = FrameError(f"frame incomplete after {IO_TIMEOUT_S:.0f} s")
                    with gevent.Timeout(IO_TIMEOUT_S, stalled):
                        data = self.sock.recv(RECV_BYTES)
                else:
                    data = self.sock.recv(RECV_BYTES)
                if not data:
                    kind = "truncated_frame" if self._parser.mid_frame else "connection_closed"
                    self._lost(kind, "peer closed the connection")
                    return
                for frame in self._parser.feed(data):
                    self._dispatch(frame)
        except FrameError as exc:
            self._lost("malformed_frame", str(exc))
        except OSError as exc:
            self._lost("socket_error", repr(exc))
        except Exception as exc:  # a bug in a handler must end this call only
            log.exception("event-socket reader failed", extra=self._log_extra())
            self._lost("reader_error", repr(exc))

    def _dispatch(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype in ("command/reply", "api/response"):
            self._on_reply(frame)
        elif ctype == "text/event-plain":
            name = event_name_of(frame.body)
            if name and name not in _WANTED_EVENTS:
                return  # most of myevents' traffic; not even parsed
            self._on_event(parse_plain_event(frame.body))
        elif ctype == "text/event-json":
            self._on_event(parse_json_event(frame.body))
        elif ctype == "text/disconnect-notice":
            self._on_disconnect_notice(frame)
        elif ctype == "text/rude-rejection":
            self._error("rude_rejection")
            self._final("rude rejection")
        elif ctype in ("auth/request", "log/data"):
            pass
        else:
            self._error("unknown_frame")
            log.warning(
                "event-socket frame without a known Content-Type ignored",
                extra={**self._log_extra(), "content_type": ctype or "(none)"},
            )

    def _on_reply(self, frame: Frame) -> None:
        if not self._replies:
            self._error("unsolicited_reply")
            log.warning("reply without a pending command ignored", extra=self._log_extra())
            return
        result, execution = self._replies.popleft()
        if result is not None:
            result.set(frame)
        elif execution is not None:
            text = _reply_text(frame)
            if not text.startswith("+OK") and not execution.done.ready():
                execution.done.set_exception(CommandFailed(f"{execution.app}: {text}"))

    def _on_event(self, event: Event) -> None:
        headers = event.headers
        uid = headers.get("Unique-ID")
        if uid and self.session_data and uid != self.channel_uuid:
            self._error("foreign_event")
            return
        name = event.name
        if name == "CHANNEL_EXECUTE_COMPLETE":
            execution = self._executions.pop(headers.get("Application-UUID", ""), None)
            if execution is not None:
                result = AppResult(headers, "".join(execution.dtmf), self.hung_up)
                self._completed_at = time.monotonic()
                execution.done.set(result)
        elif name == "DTMF":
            if self._current is not None:
                self._current.dtmf.append(headers.get("DTMF-Digit", ""))
        elif name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self._mark_hung_up(headers.get("Hangup-Cause", ""))

    def _on_disconnect_notice(self, frame: Frame) -> None:
        if frame.headers.get("Content-Disposition") == "linger":
            # Hung up, but FreeSWITCH keeps sending this channel's events: wait for them.
            self._lingering = True
            self._mark_hung_up(self.hangup_cause)
        else:
            self._final("disconnect notice")

    def _mark_hung_up(self, cause: str) -> None:
        if cause and not self.hangup_cause:
            self.hangup_cause = cause
        if self.hung_up:
            return
        self.hung_up = True
        self._outbound_connected = False
        self.gone.set()
        if self._executions or self._replies:
            gevent.spawn_later(HANGUP_GRACE_S, self._fail_pending, "hung up, no completion")

    def _final(self, reason: str) -> None:
        self.connected = False
        self._mark_hung_up(self.hangup_cause)
        self._fail_pending(reason)

    def _lost(self, kind: str, detail: str) -> None:
        if not self._closing and self.connected:
            self._error(kind)
            level = (
                logging.INFO if kind == "connection_closed" and self.hung_up else logging.WARNING
            )
            log.log(
                level,
                "event-socket connection ended",
                extra={**self._log_extra(), "kind": kind, "detail": detail[:200]},
            )
        self._final(kind)

    def _fail_pending(self, reason: str) -> None:
        executions, self._executions = self._executions, {}
        for execution in executions.values():
            execution.done.set_exception(ChannelGone(reason))
        while self._replies:
            result, _ = self._replies.popleft()
            if result is not None:
                result.set_exception(ChannelGone(reason))

    # -- commands ---------------------------------------------------------------------------
    def _write(self, payload: bytes) -> None:
        if self._completed_at and self._metrics is not None:
            self._metrics.reaction_seconds.observe(time.monotonic() - self._completed_at)
            self._completed_at = 0.0
        try:
            try:
                sent = self.sock.send(payload, 0, 0.0)  # the usual case: room in the buffer
            except BlockingIOError:
                sent = 0
            if sent < len(payload):  # the peer is not reading: wait, but not for ever
                with gevent.Timeout(IO_TIMEOUT_S, TimeoutError("send timed out")):
                    self.sock.sendall(payload[sent:])
        except OSError as exc:
            self._lost("socket_error", repr(exc))
            raise ChannelGone("send failed") from exc

    def send(self, data: str, timeout: float = REPLY_TIMEOUT_S, body: str = "") -> Frame:
        """One command; returns its reply frame. Bounded: a missing reply ends the connection,
        because replies are matched in order and the order is then unknown."""
        if not self.connected:
            raise ChannelGone("not connected")
        result: AsyncResult = AsyncResult()
        self._replies.append((result, None))
        payload = (data + "\n\n").encode() + body.encode()
        self._write(payload)
        try:
            frame: Frame = result.get(timeout=timeout)
        except gevent.Timeout:
            self._lost("reply_timeout", f"no reply to {data.splitlines()[0]!r} in {timeout} s")
            raise ChannelGone("reply timeout") from None
        return frame

    def connect(self) -> dict[str, str]:
        if self._outbound_connected or self.session_data:
            return self.session_data or {}
        frame = self.send("connect")
        self.session_data = frame.headers
        self._outbound_connected = True
        return frame.headers

    def myevents(self) -> None:
        text = _reply_text(self.send("myevents"))
        if not text.startswith("+OK") and "aready enabled" not in text:
            raise CommandFailed(f"myevents: {text}")

    def linger(self, timeout: int | None = None) -> None:
        text = _reply_text(self.send("linger" if timeout is None else f"linger {timeout}"))
        if not text.startswith("+OK"):
            # Without `full` FreeSWITCH refuses linger: hang-ups may then lose the last events.
            self._error("linger_refused")
            log.warning(
                "linger refused; is the socket app called with `async full`?",
                extra={**self._log_extra(), "reply": text},
            )

    def execute(
        self, app: str, arg: str = "", timeout: float = 300.0, wait: bool = True
    ) -> AppResult | None:
        """Run a dialplan application; with ``wait`` block until its EXECUTE_COMPLETE.

        The ``+OK`` of the sendmsg is not waited for on its own (one hub round trip less per
        command): a ``-ERR`` reply fails the wait through the execution instead.
        """
        if not isinstance(arg, str):
            raise TypeError(f"{app}: argument must be a str, not {type(arg).__name__}")
        if self.hung_up or not self.connected:
            # During linger FreeSWITCH says +OK but never runs it (esl.md §2.2).
            raise ChannelGone("hung up")
        app_uuid = str(uuid.UUID(int=_random.getrandbits(128), version=4))
        lines = [
            "sendmsg",
            "call-command: execute",
            f"execute-app-name: {app}",
            f"Event-UUID: {app_uuid}",
        ]
        body = ""
        if "\n" in arg:  # a newline cannot travel in a header: send the arg as a body
            body = arg
            lines += ["Content-Type: text/plain", f"Content-Length: {len(body.encode())}"]
        elif arg:
            lines.append(f"execute-app-arg: {arg}")
        command = "\n".join(lines)
        if not wait:
            text = _reply_text(self.send(command, body=body))
            if not text.startswith("+OK"):
                raise CommandFailed(f"{app}: {text}")
            return None
        execution = _Execution(app, app_uuid)
        self._executions[app_uuid] = execution
        self._current = execution
        try:
            self._replies.append((None, execution))
            self._write((command + "\n\n").encode() + body.encode())
            try:
                result: AppResult = execution.done.get(timeout=timeout)
            except gevent.Timeout:
                self._lost("execute_timeout", f"{app} did not complete in {timeout:.0f} s")
                raise ChannelGone("execute timeout") from None
            return result
        finally:
            self._executions.pop(app_uuid, None)
            if self._current is execution:
                self._current = None

    def playback(self, path: str, block: bool = True, timeout: float = 600.0) -> AppResult | None:
        return self.execute("playback", path, timeout=timeout, wait=block)

    def hangup(self, cause: str = "NORMAL_CLEARING", wait_s: float = 3.0) -> None:
        """Hang up and wait (bounded) until FreeSWITCH reports the channel down."""
        if self.hung_up or not self.connected:
            return
        try:
            self.execute("hangup", cause, wait=False)
        except (ChannelGone, CommandFailed):
            return
        self.gone.wait(wait_s)

    def stop(self) -> None:
        """``exit`` (bounded), then close; FreeSWITCH answers with the final notice."""
        if self.connected and self.session_data is not None:
            with contextlib.suppress(ChannelGone, OutboundSessionHasGoneAway):
                self.send("exit", timeout=2.0)
        self.close()

    def close(self) -> None:
        """Close without a word (before ``connect`` FreeSWITCH would not answer one)."""
        self._closing = True
        self.connected = False
        self._fail_pending("session stopped")
        for closable in (self.sock, self.sock_file):
            with contextlib.suppress(OSError):
                closable.close()
        reader: Any = getattr(self, "_receive_events_greenlet", None)
        if reader is not None and not reader.dead:
            reader.kill(block=True, timeout=1.0)
        # Break the session's reference cycles (handlers are bound methods, greenlets run
        # bound methods) so it is freed at once instead of waiting for a full GC pass.
        self.event_handlers.clear()
        self._receive_events_greenlet = self._process_events_greenlet = None


AppFactory = Callable[[SurveySession], Any]


class SurveyServer(OutboundESLServer):
    """Accepts FreeSWITCH's outbound connections; one survey greenlet per connection."""

    def __init__(
        self,
        host: str,
        port: int,
        app_factory: AppFactory,
        max_connections: int,
        metrics: IvrMetrics,
    ) -> None:
        super().__init__(
            bind_address=host,
            bind_port=port,
            application=app_factory,
            max_connections=max_connections,
        )
        self._metrics = metrics
        self._listener: Any = None
        self.accepting = False

    def bind(self) -> int:
        """Bind and listen (backlog sized for bursts); returns the bound port."""
        sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
        sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_REUSEADDR, 1)
        sock.bind((self.bind_address, self.bind_port[0]))
        sock.listen(max(1024, self.max_connections))
        self._listener = sock
        self.bound_port = sock.getsockname()[1]
        return int(self.bound_port)

    def listen(self) -> None:
        if self._listener is None:
            self.bind()
        self._running = self.accepting = True
        log.info("IVR listening", extra={"port": self.bound_port})
        while self._running:
            try:
                sock, address = self._listener.accept()
            except OSError:
                if not self._running:
                    break
                log.exception("accept failed")
                gevent.sleep(0.05)
                continue
            gevent.spawn(self._accept_call, sock, address)
        self.accepting = False

    def stop(self) -> None:
        """Stop accepting; running surveys go on (see :meth:`drain`)."""
        self._running = self.accepting = False
        if self._listener is not None:
            self._listener.close()

    def _accept_call(self, sock: Any, address: Any) -> None:
        self._metrics.connections.inc()
        # (Here, not in the accept loop: a peer already gone must not end the loop.)
        with contextlib.suppress(OSError):
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        session = SurveySession(address, sock, self._metrics)
        if not self._running or self.connection_count >= self.max_connections:
            # FreeSWITCH then continues the dialplan (the next action hangs up).
            self._metrics.rejected.inc()
            log.warning(
                "connection refused",
                extra={"active": self.connection_count, "accepting": self._running},
            )
            session.close()
            return
        self._handle_call(session)

    def _handle_call(self, session: SurveySession) -> None:
        self.connection_count += 1  # counted from the handshake on, so capacity holds
        try:
            session.connect()
        except (ChannelGone, OSError) as exc:
            self.connection_count -= 1
            log.warning("event-socket handshake failed", extra={"error": repr(exc)})
            session.stop()
            return
        # The application is built inside the greenlet: whatever it raises still ends in
        # _handle_call_finish (capacity released, socket closed).
        handler = gevent.spawn(lambda: self.application(session).run())
        handler.session = session
        self._greenlets.add(handler)
        handler.link(self._handle_call_finish)

    def _handle_call_finish(self, handler: Any) -> None:
        self._greenlets.discard(handler)
        self.connection_count -= 1
        handler.session.stop()

    def drain(self, grace_s: float) -> int:
        """Wait up to ``grace_s`` for running surveys; end the rest. Returns how many were cut."""
        gevent.joinall(list(self._greenlets), timeout=grace_s)
        left = list(self._greenlets)
        if left:
            log.warning("grace period over; ending surveys", extra={"surveys": len(left)})
            gevent.killall(left, block=True, timeout=5)
        return len(left)
