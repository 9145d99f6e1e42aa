"""One simulated call: FreeSWITCH's side of the outbound event socket for the agent leg.

The channel is the B leg that FreeSWITCH transferred to ``agent_survey`` after the bridge, where
the dialplan runs ``socket <ivr> async full``. FreeSWITCH is the TCP *client*: it connects to the
IVR, waits for ``connect`` and then serves commands (esl.md §2.2, §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from simulator import wire
from simulator.apps import APPS, atoi
from simulator.faults import Fault
from simulator.script import CallSpec
from simulator.tally import CallResult

log = logging.getLogger("simulator")

# mod_event_socket: what an outbound socket without ``full`` may still do.
NOT_FULL_ALLOWED = frozenset(
    {"exit", "filter", "resume", "connect", "getvar", "myevents", "divert_events", "sendmsg"}
)
LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4,
              "notice": 5, "info": 6, "debug": 7}  # fmt: skip


class ChannelGone(Exception):
    """Raised inside an application when the channel hung up (switch_channel_ready() false)."""


@dataclass
class SimConfig:
    """Knobs of the simulated FreeSWITCH and of the agent's human timing."""

    # Multiplies every in-call duration: prompts, typing, PAGD timeouts, sleep. 1.0 = real time.
    timing: float = 1.0
    prompt_seconds: float = 2.0  # length of any prompt file (we never open the audio)
    think_seconds: float = 0.8  # prompt end -> first key
    key_gap_seconds: float = 0.25  # between two keys
    async_mode: bool = True  # "socket ... async": +OK at once, apps run in the park loop
    full_control: bool = True  # "socket ... full"
    linger_before_complete: bool = False  # default side of the linger-notice race
    # Real time between a linger notice sent first and the EXECUTE_COMPLETE that follows it; in
    # FreeSWITCH two threads write them, so the client may well see the notice alone first.
    notice_gap: float = 0.01
    park_event: bool = False  # deliver CHANNEL_PARK after myevents (normally lost in the race)
    connect_wait: float = 25.0  # FreeSWITCH drops a socket that sends nothing for 25 s
    call_timeout: float = 300.0  # watchdog: a call that lasts longer is an error
    hostname: str = "fs-sim"
    ipv4: str = "192.0.2.10"
    core_uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    ivr_address: str = "127.0.0.1:8084"

    @property
    def scaled_think(self) -> float:
        return self.think_seconds * self.timing

    @property
    def scaled_gap(self) -> float:
        return self.key_gap_seconds * self.timing


_SEQUENCE = iter(range(1, 1 << 62))


def _now_us() -> int:
    return time.time_ns() // 1000


class _Output:
    """Everything FreeSWITCH writes, in order; optionally cut into random TCP writes."""

    def __init__(self, writer: asyncio.StreamWriter, tag: str, split: random.Random | None):
        self.writer = writer
        self.tag = tag
        self.closed = False
        self._split = split
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        if split is not None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._pump())

    def send(self, data: bytes, what: str) -> bool:
        if self.closed:
            log.debug("%s lost (socket closed): %s", self.tag, what)
            return False
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s >> %s %r", self.tag, what, data)
        if self._queue is not None:
            self._queue.put_nowait(data)
        else:
            self.writer.write(data)
        return True

    async def _pump(self) -> None:
        assert self._queue is not None and self._split is not None
        while (data := await self._queue.get()) is not None:
            cuts = sorted(self._split.sample(range(1, len(data)), min(3, len(data) - 1)))
            for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
                self.writer.write(data[a:b])
                try:
                    await self.writer.drain()
                except ConnectionError:
                    return
                await asyncio.sleep(0.001)  # separate TCP segments, read separately

    def shutdown(self, *, abort: bool = False) -> None:
        """Stop accepting frames now; flush what is queued and close in the background."""
        if self.closed:
            return
        self.closed = True
        self._closer = asyncio.get_running_loop().create_task(self._close(abort))

    async def wait_closed(self) -> None:
        if self._closer is not None:
            await asyncio.gather(self._closer, return_exceptions=True)

    async def _close(self, abort: bool) -> None:
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(None)
            if not abort:
                await asyncio.gather(self._task, return_exceptions=True)
            self._task.cancel()
        try:
            if abort:
                self.writer.transport.abort()
            else:
                await self.writer.drain()
                self.writer.close()
        except (ConnectionError, RuntimeError):
            pass


class Channel:
    """One agent leg under the IVR's control, from ``connect`` to the close of the socket."""

    Gone = ChannelGone

    def __init__(
        self,
        spec: CallSpec,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cfg: SimConfig,
        result: CallResult,
    ) -> None:
        self.spec = spec
        self.cfg = cfg
        self.result = result
        self.reader = reader
        self.uuid = spec.uuid or str(uuidlib.uuid4())
        result.uuid = self.uuid
        self.tag = f"[{result.index}:{self.uuid[:8]}]"
        self.channel_name = f"sofia/internal/{spec.agent}@{cfg.ipv4}"
        split = random.Random(self.uuid) if spec.has(Fault.SPLIT_FRAMES) else None
        self.out = _Output(writer, self.tag, split)
        self.vars: dict[str, str] = {}
        self.created_us = _now_us()
        self.ready = True  # switch_channel_ready()
        self.answer_state = "answered"
        self.hangup_cause = ""
        self.events: str | None = None  # None = not subscribed; else "plain" | "json"
        self.subscribed: set[str] = set()
        self.logging_level: int | None = None
        self.linger: int | None = None  # None: no linger; -1: forever; N: seconds
        self.linger_sent = False
        self.torn_down = False
        self.connected = False
        self.current_app_uuid = ""
        self.depth = 0
        self.locked = False
        self.break_requested = False
        self.pagd_started = 0
        self.prompts_started = 0
        self.last_complete_at: float | None = None
        self.cut_by_fault = False
        self._queue: asyncio.Queue[wire.Command] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._static_hold: list[tuple[bytes, str]] | None = None
        self._done = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self._init_variables()

    # ------------------------------------------------------------------ channel data

    def _init_variables(self) -> None:
        s, c = self.spec, self.cfg
        now = str(self.created_us)
        v = {
            "direction": "outbound",
            "uuid": self.uuid,
            "session_id": str(self.result.index + 1),
            "sip_profile_name": "internal",
            "channel_name": self.channel_name,
            "sip_destination_url": f"sip:{s.agent}@{c.ipv4}:5060",
            "ct_tracking_number": s.number,
            "ct_caller": s.caller,
            "dialed_user": s.agent,
            "dialed_domain": c.ipv4,
            "originate_early_media": "true",
            "originating_leg_uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, self.uuid)),
            "export_vars": "ct_tracking_number,ct_caller",
            "call_uuid": self.uuid,  # reset to B's own uuid when the bridge ends [BR]
            "endpoint_disposition": "ANSWER",
            "answer_epoch": now[:-6],
            "bridge_hangup_cause": "NORMAL_CLEARING",
            "transfer_history": f"{now[:-6]}:{self.uuid}:bl_xfer:agent_survey/default/XML",
            "transfer_source": f"{now[:-6]}:{self.uuid}:bl_xfer:agent_survey/default/XML",
            "DP_MATCH": "ARRAY::agent_survey|:agent_survey",
            "call_timeout": "30",
            "current_application_data": f"{c.ivr_address} {'async' if c.async_mode else ''}"
            f"{' full' if c.full_control else ''}".replace("  ", " ").strip(),
            "current_application": "socket",
            "socket_host": c.ivr_address.rsplit(":", 1)[0],
        }
        if s.has(Fault.ENCODED_NEWLINE):
            v["ct_note"] = "first line\nX-Injected: bogus"
        self.vars.update(v)

    def get_var(self, name: str) -> str | None:
        return self.vars.get(name)

    def set_var(self, name: str, value: str) -> None:
        if value == "":  # FreeSWITCH: setting an empty value deletes the variable
            self.vars.pop(name, None)
        else:
            self.vars[name] = value

    def unset_var(self, name: str) -> None:
        if name:
            self.vars.pop(name, None)

    def expand(self, text: str) -> str:
        """Channel-variable expansion of Application-Data (``${var}``; unknown -> empty)."""
        return re.sub(r"\$\{([^{}]+)\}", lambda m: self.vars.get(m.group(1), ""), text)

    def _standard(self, name: str, func: str, file: str = "switch_core_session.c") -> wire.Headers:
        ts = _now_us()
        t = time.gmtime(ts / 1e6)
        return [
            ("Event-Name", name),
            ("Core-UUID", self.cfg.core_uuid),
            ("FreeSWITCH-Hostname", self.cfg.hostname),
            ("FreeSWITCH-Switchname", self.cfg.hostname),
            ("FreeSWITCH-IPv4", self.cfg.ipv4),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", t)),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", t)),
            ("Event-Date-Timestamp", str(ts)),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", func),
            ("Event-Calling-Line-Number", "1"),
            ("Event-Sequence", str(next(_SEQUENCE))),
        ]

    def _profile(self, prefix: str) -> wire.Headers:
        s, c = self.spec, self.cfg
        created = str(self.created_us)
        return [
            (f"{prefix}-Direction", "outbound"),
            (f"{prefix}-Logical-Direction", "outbound"),
            (f"{prefix}-Username", s.agent),
            (f"{prefix}-Dialplan", "XML"),
            (f"{prefix}-Caller-ID-Name", s.caller),
            (f"{prefix}-Caller-ID-Number", s.caller),
            (f"{prefix}-Orig-Caller-ID-Name", s.caller),
            (f"{prefix}-Orig-Caller-ID-Number", s.caller),
            (f"{prefix}-Callee-ID-Name", s.agent),
            (f"{prefix}-Callee-ID-Number", s.agent),
            (f"{prefix}-Network-Addr", c.ipv4),
            (f"{prefix}-ANI", s.caller),
            (f"{prefix}-Destination-Number", "agent_survey"),
            (f"{prefix}-Unique-ID", self.uuid),
            (f"{prefix}-Source", "mod_sofia"),
            (f"{prefix}-Context", "default"),
            (f"{prefix}-RDNIS", s.agent),
            (f"{prefix}-Channel-Name", self.channel_name),
            (f"{prefix}-Profile-Index", "2"),
            (f"{prefix}-Profile-Created-Time", created),
            (f"{prefix}-Channel-Created-Time", created),
            (f"{prefix}-Channel-Answered-Time", created),
            (f"{prefix}-Channel-Progress-Time", "0"),
            (f"{prefix}-Channel-Progress-Media-Time", "0"),
            (f"{prefix}-Channel-Hangup-Time", "0" if self.ready else str(_now_us())),
            (f"{prefix}-Channel-Transfer-Time", "0"),
            (f"{prefix}-Screen-Bit", "true"),
            (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false"),
        ]

    def _basic(self, state: str | None = None) -> wire.Headers:
        """``switch_channel_event_set_basic_data``."""
        state = state or ("CS_EXECUTE" if self.ready else "CS_HANGUP")
        numbers = {"CS_EXECUTE": "4", "CS_HANGUP": "10", "CS_REPORTING": "11"}
        h: wire.Headers = [
            ("Channel-State", state),
            ("Channel-Call-State", "ACTIVE" if self.ready else "HANGUP"),
            ("Channel-State-Number", numbers.get(state, "4")),
            ("Channel-Name", self.channel_name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", "outbound"),
            ("Presence-Call-Direction", "outbound"),
            ("Channel-HIT-Dialplan", "true"),
            ("Channel-Call-UUID", self.vars.get("call_uuid", self.uuid)),
            ("Answer-State", self.answer_state),
        ]
        if self.hangup_cause:
            h.append(("Hangup-Cause", self.hangup_cause))
        h += [
            ("Channel-Read-Codec-Name", "PCMA"),
            ("Channel-Read-Codec-Rate", "8000"),
            ("Channel-Read-Codec-Bit-Rate", "64000"),
            ("Channel-Write-Codec-Name", "PCMA"),
            ("Channel-Write-Codec-Rate", "8000"),
            ("Channel-Write-Codec-Bit-Rate", "64000"),
        ]
        return h + self._profile("Caller")

    def _variables(self) -> wire.Headers:
        return [(f"variable_{k}", v) for k, v in self.vars.items()]

    def connect_reply(self) -> bytes:
        """The CHANNEL_DATA event answering ``connect`` (esl.md §2.2): URL-encoded, no outer
        Content-Length, command/reply headers last."""
        h = self._standard("CHANNEL_DATA", "parse_command", "mod_event_socket.c")
        h += self._profile("Channel") + self._basic() + self._variables()
        h += [
            ("Content-Type", "command/reply"),
            ("Reply-Text", "+OK\n"),
            ("Socket-Mode", "async" if self.cfg.async_mode else "static"),
            ("Control", "full" if self.cfg.full_control else "single-channel"),
        ]
        return wire.serialize_event(h)

    # ------------------------------------------------------------------ output

    def _send(self, data: bytes, what: str) -> bool:
        if self._static_hold is not None and not what.startswith("reply"):
            self._static_hold.append((data, what))
            return True
        return self.out.send(data, what)

    def _reply(self, text: str, extra: wire.Headers | None = None) -> None:
        self.out.send(wire.command_reply(text, extra), f"reply {text!r}")

    def emit(self, name: str, extra: wire.Headers, *, variables: bool = True) -> None:
        """Fire one of this channel's events; delivered only once subscribed (myevents/event)."""
        if self.events is None or (self.subscribed and not self._wants(name)):
            return
        app = dict(extra).get("Application", "")
        # Faults aim at the first question: its EXECUTE comes before begin_criterion().
        first_pagd = app == "play_and_get_digits" and self.pagd_started == (
            0 if name == "CHANNEL_EXECUTE" else 1
        )
        if name == "CHANNEL_EXECUTE" and first_pagd and self.spec.has(Fault.MALFORMED_FRAME):
            self._send_malformed()
        h = self._standard(name, "switch_core_session_exec")
        if name == "CHANNEL_HANGUP_COMPLETE":
            h.append(("Hangup-Cause", self.hangup_cause))  # and once more in the basic data
        state = "CS_REPORTING" if name == "CHANNEL_HANGUP_COMPLETE" else None
        h += self._basic(state)
        if variables:
            h += self._variables()
        h += extra
        frame = wire.frame_event_json(h) if self.events == "json" else wire.frame_event_plain(h)
        if (
            name == "CHANNEL_EXECUTE_COMPLETE"
            and first_pagd
            and self.spec.has(Fault.TRUNCATED_BODY)
        ):
            self._send_truncated(frame)
            return
        if self._send(frame, f"event {name} {app}".rstrip()) and name == "CHANNEL_EXECUTE_COMPLETE":
            self.last_complete_at = time.perf_counter()

    def _wants(self, name: str) -> bool:
        return "ALL" in self.subscribed or name in self.subscribed

    def _send_malformed(self) -> None:
        body = b"Event-Name: CHANNEL_STATE\nUnique-ID: " + self.uuid.encode() + b"\n\n"
        frame = b"Content-Length: %d\n\n" % len(body) + body
        self._send(frame, "FAULT malformed frame (no Content-Type)")

    def _send_truncated(self, frame: bytes) -> None:
        head, _, body = frame.partition(b"\n\n")
        self.out.send(head + b"\n\n" + body[: len(body) // 2], "FAULT truncated body, then close")
        if self.result.criteria:  # the IVR never learns this answer
            self.result.criteria[-1].status = "hangup"
        self._cut_connection()

    def _cut_connection(self) -> None:
        """A fault ends the TCP connection without a notice; the channel is gone for the IVR."""
        self.cut_by_fault = True
        if self.ready:
            self.ready = False
            self.answer_state = "hangup"
            self.hangup_cause = "NORMAL_CLEARING"
            self.result.hangup_by = "agent"
            self.result.hangup_cause = "NORMAL_CLEARING (connection cut by fault)"
        self._wake.set()
        self._end(notice=False)

    def emit_dtmf(self, key: str) -> None:
        self.emit(
            "DTMF",
            [("DTMF-Digit", key), ("DTMF-Duration", "2000"), ("DTMF-Source", "RTP")],
            variables=False,
        )

    # ------------------------------------------------------------------ hang-up and the end

    def hangup(self, cause: str, *, by: str) -> None:
        """The channel goes down (``switch_channel_hangup``): CHANNEL_HANGUP, then the notice
        race of mod_event_socket's listener (esl.md §2.2 end of session, §8.8)."""
        if not self.ready:
            return
        self.ready = False
        self.answer_state = "hangup"
        self.hangup_cause = cause
        self.set_var("hangup_cause", cause)
        self.result.hangup_by = by  # type: ignore[assignment]
        self.result.hangup_cause = cause
        log.debug("%s channel hung up by %s: %s", self.tag, by, cause)
        self.emit("CHANNEL_HANGUP", [])
        self._wake.set()
        if self.linger is None:
            # The listener sees the channel down and closes: later events are lost.
            self._end()
        elif self._linger_first():
            self._send_linger_notice()

    def _linger_first(self) -> bool:
        if self.spec.has(Fault.LINGER_BEFORE_COMPLETE):
            return True
        if self.spec.has(Fault.LINGER_AFTER_COMPLETE):
            return False
        return self.cfg.linger_before_complete

    def _send_linger_notice(self) -> None:
        if self.linger_sent:
            return
        self.linger_sent = True
        notice = wire.linger_notice(self.uuid, self.channel_name, self.linger or -1)
        self._send(notice, "linger notice")

    def _teardown(self) -> None:
        """After the running app returned on a dead channel: linger notice (if not sent yet),
        CHANNEL_HANGUP_COMPLETE, then keep the socket until the linger time ends."""
        if self.torn_down or self.ready:
            return
        self.torn_down = True
        if self.linger is None or self.out.closed:
            return
        self._send_linger_notice()
        self.emit("CHANNEL_HANGUP_COMPLETE", [])
        if self.linger > 0:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(self.linger, self._end))

    def _end(self, *, notice: bool = True) -> None:
        """The listener ends: final disconnect notice (67-byte body), then close; whatever is
        fired later is lost. ``notice=False`` is a fault: the connection just drops."""
        if self.out.closed:
            return
        if notice:
            self._flush_static()
            self.out.send(wire.final_notice(self.uuid), "final disconnect notice")
        self.out.shutdown(abort=not notice)
        self._done.set()

    # ------------------------------------------------------------------ agent behaviour

    def media_seconds(self, file: str) -> float:
        m = re.match(r"silence_stream://(\d+)", file)
        seconds = int(m.group(1)) / 1000 if m else self.cfg.prompt_seconds
        return seconds * self.cfg.timing

    async def media(self, seconds: float, *, breakable: bool = False) -> bool:
        """Spend call time in an app; True if ``uuid_break`` cut it short.

        Like ``switch_ivr_parse_all_events`` in every media loop, this runs queued sendmsg
        executes *nested* unless the running message holds an event-lock.
        """
        loop = asyncio.get_running_loop()
        remaining = seconds
        while True:
            if not self.ready:
                raise ChannelGone
            if breakable and self.break_requested:
                self.break_requested = False
                return True
            if not self.locked and not self._queue.empty():
                # Time spent in the nested app does not count: the outer media is paused.
                await self._run_message(self._queue.get_nowait())
                continue
            if remaining <= 0:
                return False
            started = loop.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
            remaining -= loop.time() - started

    def begin_criterion(self) -> int:
        self.pagd_started += 1
        self.prompts_started += 1
        return self.pagd_started - 1

    def agent_hangs_up_in_criterion(self, index: int) -> bool:
        if self.spec.hangup_after is not None and self.spec.hangup_after == index:
            return True
        if self.spec.has(Fault.DROP_CONNECTION) and index == 0:
            return True
        return self.spec.has(Fault.HANGUP_MID_PROMPT) and self.prompts_started == 1

    def agent_hangs_up_in_playback(self) -> bool:
        self.prompts_started += 1
        k = self.spec.hangup_after
        # Past the last criterion the hang-up hits the goodbye prompt (docs/CONTRACTS.md); never
        # the welcome prompt, which comes before the first criterion.
        if k is not None and self.pagd_started >= max(k, 1):
            return True
        return self.spec.has(Fault.HANGUP_MID_PROMPT) and self.prompts_started == 1

    async def agent_hangup_mid_prompt(self, file: str) -> None:
        await self.media(self.media_seconds(file) / 2)
        if self.spec.has(Fault.DROP_CONNECTION) and self.pagd_started == 1:
            log.debug("%s FAULT dropping the connection mid-prompt", self.tag)
            self._cut_connection()
        else:
            self.hangup("NORMAL_CLEARING", by="agent")
        raise ChannelGone

    def transfer_on_failure(self, target: str) -> None:
        """We model no dialplan: a PAGD failure transfer leaves the socket and hangs up."""
        log.warning("%s PAGD failure transfer to %r (no such extension here)", self.tag, target)
        self.result.error = f"play_and_get_digits transferred on failure to {target!r}"
        self.hangup("NO_ROUTE_DESTINATION", by="dialplan")

    # ------------------------------------------------------------------ executing messages

    async def _run_message(self, msg: wire.Command) -> None:
        """``switch_ivr_parse_event`` for one queued sendmsg."""
        if not self.ready:
            return  # during linger: queued, never executed, no events (greenswitch issue #34)
        command = (msg.header("call-command") or "").strip().lower()
        if command == "hangup":
            cause = (msg.header("hangup-cause") or "NORMAL_CLEARING").strip().upper()
            self.hangup(cause, by="ivr")
            return
        if command != "execute":
            log.info("%s call-command %r not modelled; ignored", self.tag, command)
            return
        name = (msg.header("execute-app-name") or "").strip()
        arg = msg.header("execute-app-arg") or ""
        if not arg and (msg.header("content-type") or "").strip().lower() == "text/plain":
            arg = msg.body.decode("utf-8", "replace")
        loops = max(atoi(msg.header("loops")) if msg.header("loops") else 1, 1)
        lock = (msg.header("event-lock") or "").strip().lower() in ("true", "yes", "1")
        event_uuid = (msg.header("Event-UUID") or "").strip()
        was_locked = self.locked
        self.locked = self.locked or lock
        try:
            for _ in range(loops):
                if not self.ready:
                    break
                await self._execute(name, arg, event_uuid)
        finally:
            self.locked = was_locked

    async def _execute(self, name: str, arg: str, event_uuid: str) -> None:
        """``switch_core_session_exec``: CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE."""
        app = APPS.get(name.lower())
        if app is None:
            # switch_core_session_execute_application: "Invalid Application", the channel is
            # hung up with DESTINATION_OUT_OF_ORDER and no EXECUTE events are fired.
            log.warning("%s invalid application %r: hanging up", self.tag, name)
            self.result.error = f"IVR executed unknown application {name!r}"
            self.hangup("DESTINATION_OUT_OF_ORDER", by="dialplan")
            return
        name = name.lower()
        expanded = self.expand(arg)
        app_uuid = event_uuid or str(uuidlib.uuid4())
        self.set_var("current_application", name)
        self.set_var("current_application_data", expanded)
        self.unset_var("current_application_response")
        app_headers = [
            ("Application", name),
            ("Application-Data", expanded),
            ("Application-UUID", app_uuid),
        ]
        self.emit("CHANNEL_EXECUTE", app_headers)
        outer_uuid, self.current_app_uuid = self.current_app_uuid, app_uuid
        self.depth += 1
        try:
            await app(self, expanded)
        except ChannelGone:
            pass
        finally:
            self.depth -= 1
            self.current_app_uuid = outer_uuid
        if self.linger_sent and self.cfg.notice_gap > 0:
            await asyncio.sleep(self.cfg.notice_gap)
        response = self.vars.get("current_application_response") or "_none_"
        self.emit(
            "CHANNEL_EXECUTE_COMPLETE",
            [
                ("Application", name),
                ("Application-Data", expanded),
                ("Application-Response", response),
                ("Application-UUID", app_uuid),
            ],
        )

    async def _park_loop(self) -> None:
        """Async mode: the socket app parks the channel and runs queued messages in order."""
        while self.ready:
            if not self._queue.empty():
                await self._run_message(self._queue.get_nowait())
                continue
            self._wake.clear()
            await self._wake.wait()
        self._teardown()

    # ------------------------------------------------------------------ commands

    def _flush_static(self) -> None:
        held, self._static_hold = self._static_hold, None
        for data, what in held or []:
            self.out.send(data, what)

    async def _handle(self, cmd: wire.Command) -> None:
        verb = cmd.verb
        if not self.cfg.full_control and verb not in NOT_FULL_ALLOWED:
            self._reply("-ERR command not found")
            return
        handler = self._COMMANDS.get(verb)
        if handler is None:
            self._reply("-ERR command not found")
            return
        await handler(self, cmd)

    async def _cmd_connect(self, cmd: wire.Command) -> None:
        self.connected = True
        self.out.send(self.connect_reply(), "connect reply (CHANNEL_DATA)")

    async def _cmd_exit(self, cmd: wire.Command) -> None:
        self._reply("+OK bye")
        if self.ready:
            # async: the dialplan continues after the socket app; ours hangs up next.
            log.debug("%s exit: dialplan continues and hangs up", self.tag)
            self.ready = False
            self.result.hangup_by = "dialplan"
            self.result.hangup_cause = "NORMAL_CLEARING"
            self._wake.set()
        self._end()

    async def _cmd_myevents(self, cmd: wire.Command) -> None:
        if self.events is not None:
            self._reply("-ERR aready enabled.")
            return
        fmt = cmd.argument.split(" ")[0].lower() if cmd.argument else "plain"
        self.events = "json" if fmt == "json" else "plain"
        self._reply("+OK Events Enabled")
        if self.cfg.park_event:
            self.emit("CHANNEL_PARK", [])

    async def _cmd_event(self, cmd: wire.Command) -> None:
        words = cmd.argument.split()
        fmt = "plain"
        if words and words[0].lower() in ("plain", "json", "xml"):
            fmt = words.pop(0).lower()
        if not words:
            self._reply("-ERR no keywords supplied")
            return
        self.events = "json" if fmt == "json" else "plain"
        self.subscribed.update(w.upper() for w in words)
        self._reply(f"+OK event listener enabled {fmt}")

    async def _cmd_nixevent(self, cmd: wire.Command) -> None:
        self.subscribed.difference_update(w.upper() for w in cmd.argument.split())
        self._reply("+OK events nixed")

    async def _cmd_noevents(self, cmd: wire.Command) -> None:
        if self.events is None:
            self._reply("-ERR not listening for events")
            return
        self.events = None
        self.subscribed.clear()
        self._reply("+OK no longer listening for events")

    async def _cmd_linger(self, cmd: wire.Command) -> None:
        seconds = atoi(cmd.argument) if cmd.argument else 0
        if seconds > 0:
            self.linger = seconds
            self._reply(f"+OK will linger {seconds} seconds")
        else:
            self.linger = -1
            self._reply("+OK will linger")

    async def _cmd_nolinger(self, cmd: wire.Command) -> None:
        self.linger = None
        self._reply("+OK will not linger")

    async def _cmd_sendmsg(self, cmd: wire.Command) -> None:
        target = cmd.argument
        if target and target != self.uuid:
            self._reply(f"-ERR invalid session id [{target}]")
            return
        if not self.cfg.async_mode and (cmd.header("async") or "").lower() != "true":
            # static: the listener runs the app in the channel thread, +OK after it finished,
            # the events it fired follow the reply.
            self._static_hold = []
            await self._run_message(cmd)
            held, self._static_hold = self._static_hold, None
            self._reply("+OK")
            for data, what in held:
                self.out.send(data, what)
            if not self.ready:
                self._teardown()
            return
        self._reply("+OK")
        self._queue.put_nowait(cmd)
        self._wake.set()

    async def _cmd_getvar(self, cmd: wire.Command) -> None:
        value = self.vars.get(cmd.argument)
        self._reply(value if value else "-ERR command not found")

    async def _cmd_filter(self, cmd: wire.Command) -> None:
        words = cmd.argument.split(" ", 2)
        if len(words) >= 2 and words[0].lower() == "delete":
            value = words[2] if len(words) > 2 else ""
            self._reply(f"+OK filter deleted. [{words[1]}][{value}]")
        elif len(words) == 2 or (len(words) == 3 and words[0].lower() != "delete"):
            header, value = words[0], " ".join(words[1:])
            self._reply(f"+OK filter added. [{header}]=[{value}]")
        else:
            self._reply("-ERR invalid syntax")

    async def _cmd_resume(self, cmd: wire.Command) -> None:
        self._reply("+OK")

    async def _cmd_divert_events(self, cmd: wire.Command) -> None:
        on = cmd.argument.lower().startswith("on")
        self._reply("+OK events diverted" if on else "+OK events not diverted")

    async def _cmd_log(self, cmd: wire.Command) -> None:
        word = cmd.argument.lower() or "debug"
        level = LOG_LEVELS.get(word, atoi(word) if word.isdigit() else None)
        if level is None or not 0 <= level <= 7:
            self._reply("-ERR invalid log level")
            return
        self.logging_level = level
        self._reply(f"+OK log level {word} [{level}]")

    async def _cmd_nolog(self, cmd: wire.Command) -> None:
        if self.logging_level is None:
            self._reply("-ERR not loging")
            return
        self.logging_level = None
        self._reply("+OK no longer logging")

    async def _cmd_sendevent(self, cmd: wire.Command) -> None:
        self._reply(f"+OK {uuidlib.uuid4()}")

    async def _cmd_api(self, cmd: wire.Command) -> None:
        self.out.send(wire.api_response(self._api(cmd.argument)), f"api/response {cmd.argument!r}")

    async def _cmd_bgapi(self, cmd: wire.Command) -> None:
        job = (cmd.header("Job-UUID") or "").strip() or str(uuidlib.uuid4())
        self._reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])
        output = self._api(cmd.argument)
        if self.events is not None and self._wants("BACKGROUND_JOB"):
            h = self._standard("BACKGROUND_JOB", "api_exec", "mod_event_socket.c")
            name, _, arg = cmd.argument.partition(" ")
            h += [("Job-UUID", job), ("Job-Command", name), ("Job-Command-Arg", arg)]
            h += [("Job-Owner-UUID", self.uuid)]
            body = wire.serialize_event(h)[:-1]  # the event's own body follows its headers
            data = output.encode()
            inner = body + b"Content-Length: %d\n\n" % len(data) + data
            self._send(
                b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner,
                "event BACKGROUND_JOB",
            )

    def _api(self, line: str) -> str:
        name, _, rest = line.strip().partition(" ")
        args = rest.split()
        own = bool(args) and args[0] == self.uuid
        if name == "uuid_break":
            if not own or not self.ready:
                return "-ERR No such channel!\n"
            self.break_requested = True
            self._wake.set()
            return "+OK\n"
        if name == "uuid_kill":
            if not own or not self.ready:
                return "-ERR No such channel!\n"
            self.hangup(args[1].upper() if len(args) > 1 else "NORMAL_CLEARING", by="ivr")
            return "+OK\n"
        if name == "uuid_getvar":
            if not own or len(args) < 2:
                return "-ERR No such channel!\n"
            return self.vars.get(args[1], "_undef_")
        if name == "uuid_setvar":
            if not own or len(args) < 2:
                return "-ERR No such channel!\n"
            self.set_var(args[1], " ".join(args[2:]))
            return "+OK\n"
        if name == "uuid_exists":
            return "true" if own and self.ready else "false"
        if name == "status":
            return f"UP 0 years, 0 days\nFreeSWITCH ({self.cfg.hostname}) is ready (simulated)\n"
        if name == "version":
            return "FreeSWITCH Version 1.10.12-release (simulator)\n"
        if name == "hostname":
            return self.cfg.hostname
        if name == "eval":
            return self.expand(rest)
        return f"-ERR {name} Command not found!\n"

    _COMMANDS: ClassVar[dict[str, Callable[[Channel, wire.Command], Awaitable[None]]]] = {}

    # ------------------------------------------------------------------ the call

    async def run(self) -> None:
        """Serve the socket until it is closed by either side."""
        loop = asyncio.get_running_loop()
        park: asyncio.Task[None] | None = None
        try:
            first = await asyncio.wait_for(wire.read_command(self.reader), self.cfg.connect_wait)
            if first is None:
                raise ConnectionError("IVR closed the connection before 'connect'")
            self._log_in(first)
            self.result.commands += 1
            if first.verb != "connect":
                # FreeSWITCH parses the first packet but never sends its reply.
                log.warning("%s first command %r is not connect; no reply", self.tag, first.line)
                self.result.error = f"first command was {first.line!r}, not connect"
            else:
                await self._cmd_connect(first)
            park = loop.create_task(self._park_loop()) if self.cfg.async_mode else None
            await self._serve(loop)
        finally:
            for t in self._timers:
                t.cancel()
            if park is not None:
                park.cancel()
                await asyncio.gather(park, return_exceptions=True)
            self.out.shutdown()
            await self.out.wait_closed()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.out.closed:
            read = loop.create_task(wire.read_command(self.reader))
            done_wait = loop.create_task(self._done.wait())
            finished, _ = await asyncio.wait({read, done_wait}, return_when="FIRST_COMPLETED")
            done_wait.cancel()
            if read not in finished:
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)
                return
            try:
                cmd = read.result()
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if self.out.closed:
                    return
                raise ConnectionError(f"connection lost: {exc}") from exc
            if cmd is None:
                self._client_closed()
                return
            if self.last_complete_at is not None:
                if self.ready:
                    self.result.turnarounds.append(time.perf_counter() - self.last_complete_at)
                self.last_complete_at = None
            self._log_in(cmd)
            self.result.commands += 1
            await self._handle(cmd)

    def _client_closed(self) -> None:
        log.debug("%s IVR closed the socket", self.tag)
        # Only a fault that cut the connection itself excuses a close mid-application; the
        # linger faults must still catch an IVR that abandons the running app.
        if self.depth and not self.cut_by_fault and self.result.error is None:
            app = self.vars.get("current_application", "?")
            self.result.error = f"IVR closed the socket while {app} was running"
        if self.ready:
            # The socket app returns; with no further dialplan action the leg is hung up.
            self.ready = False
            self.result.hangup_by = "dialplan"
            self.result.hangup_cause = "NORMAL_CLEARING"
            self._wake.set()

    def _log_in(self, cmd: wire.Command) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s << %s", self.tag, cmd.raw())


Channel._COMMANDS = {
    "connect": Channel._cmd_connect,
    "exit": Channel._cmd_exit,
    "...": Channel._cmd_exit,
    "myevents": Channel._cmd_myevents,
    "event": Channel._cmd_event,
    "nixevent": Channel._cmd_nixevent,
    "noevents": Channel._cmd_noevents,
    "linger": Channel._cmd_linger,
    "nolinger": Channel._cmd_nolinger,
    "sendmsg": Channel._cmd_sendmsg,
    "getvar": Channel._cmd_getvar,
    "filter": Channel._cmd_filter,
    "resume": Channel._cmd_resume,
    "divert_events": Channel._cmd_divert_events,
    "log": Channel._cmd_log,
    "nolog": Channel._cmd_nolog,
    "sendevent": Channel._cmd_sendevent,
    "api": Channel._cmd_api,
    "bgapi": Channel._cmd_bgapi,
}
