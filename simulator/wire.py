"""Event-socket wire format, FreeSWITCH's side (esl.md §1, §2.3).

Everything here is pure (bytes in, bytes out) so the fidelity tests can check it byte by byte.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# switch_utils.h SWITCH_URL_UNSAFE: encoded on top of every byte < 0x20 or > 0x7E.
_URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_UPPER_HEX = frozenset(b"0123456789ABCDEF")
_ENCODED = [f"%{b:02X}" if b < 0x20 or b > 0x7E or b in _URL_UNSAFE else chr(b) for b in range(256)]
_ALL_SAFE = re.compile(r"[A-Za-z0-9/,.\-_*!'()$~]*\Z")

# mod_event_socket.c: the exact bodies and header sets of the two disconnect notices.
FINAL_NOTICE_BODY = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
assert len(FINAL_NOTICE_BODY) == 67

MAX_CONTENT_LENGTH = 16 * 1024 * 1024

Headers = list[tuple[str, str]]


@functools.lru_cache(maxsize=16384)
def url_encode(value: str) -> str:
    """``switch_url_encode_opt`` without double encoding: uppercase ``%XX`` per UTF-8 byte.

    A ``%`` already followed by two uppercase hex digits is left alone, which is FreeSWITCH's
    (lossy) behaviour for values that look encoded already. Cached: most values (caller ids,
    dates within one second, channel names) repeat across the events of a run.
    """
    if _ALL_SAFE.match(value):  # fast path: most values (uuids, numbers, names) need nothing
        return value
    raw = value.encode("utf-8")
    if b"%" not in raw:
        return "".join(map(_ENCODED.__getitem__, raw))
    out: list[str] = []
    for i, b in enumerate(raw):
        if b == 0x25 and i + 2 < len(raw) and raw[i + 1] in _UPPER_HEX and raw[i + 2] in _UPPER_HEX:
            out.append("%")
        else:
            out.append(_ENCODED[b])
    return "".join(out)


def serialize_event(headers: Iterable[tuple[str, str]]) -> bytes:
    """``switch_event_serialize(encode=TRUE)`` of an event without a body.

    One ``Name: <encoded value>\\n`` line per header in insertion order, then one extra ``\\n``.
    Empty values are skipped: FreeSWITCH deletes a header when it is set to an empty value.
    """
    lines = [f"{name}: {url_encode(value)}\n" for name, value in headers if value != ""]
    return ("".join(lines) + "\n").encode("utf-8")


def frame_event_plain(headers: Iterable[tuple[str, str]]) -> bytes:
    """A subscribed event as sent to the socket: Content-Length comes *before* Content-Type."""
    body = serialize_event(headers)
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def command_reply(text: str, extra: Headers | None = None) -> bytes:
    """``command/reply``; Reply-Text is written raw (not URL-encoded)."""
    lines = ["Content-Type: command/reply", f"Reply-Text: {text}"]
    lines += [f"{k}: {v}" for k, v in extra or []]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def api_response(body: str) -> bytes:
    data = body.encode("utf-8")
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def linger_notice(uuid: str, channel_name: str, linger_time: int) -> bytes:
    """The linger notice: formatted raw (not URL-encoded), Content-Length 0, socket stays open."""
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: linger\n"
        f"Channel-Name: {channel_name}\n"
        f"Linger-Time: {linger_time}\n"
        "Content-Length: 0\n\n"
    ).encode()


def final_notice(uuid: str) -> bytes:
    """The outbound final notice (67-byte body); the socket is closed right after it."""
    head = (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: disconnect\n"
        f"Content-Length: {len(FINAL_NOTICE_BODY)}\n\n"
    ).encode()
    return head + FINAL_NOTICE_BODY


@dataclass
class Command:
    """One command from the client: first line plus ``Name: value`` headers (+ optional body)."""

    line: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0].lower()

    @property
    def argument(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        """Header lookup, case-insensitive like ``switch_event_get_header``; first one wins."""
        wanted = name.lower()
        for k, v in self.headers:
            if k.lower() == wanted:
                return v
        return None

    def raw(self) -> str:
        lines = [self.line, *(f"{k}: {v}" for k, v in self.headers)]
        text = "\\n".join(lines)
        return text + (f" +body({len(self.body)})" if self.body else "")


class ProtocolError(Exception):
    """The client broke the framing in a way FreeSWITCH answers by dropping the connection."""


async def read_command(reader: asyncio.StreamReader) -> Command | None:
    """Read one command like mod_event_socket's ``read_packet``; None on a clean EOF.

    CR is stripped, blank lines before a command are skipped, a header splits at the first
    ``:`` with leading spaces of the value dropped, lines without ``:`` are ignored, values are
    *not* URL-decoded, and a Content-Length header makes that many body bytes follow.
    """
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            if lines:
                raise ProtocolError("connection closed in the middle of a command")
            return None
        line = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            if lines:
                break
            continue
        lines.append(line)
    cmd = Command(lines[0].strip())
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        cmd.headers.append((name.strip(), value.lstrip(" ")))
    length_text = cmd.header("Content-Length")
    if length_text is not None:
        try:
            length = int(length_text.strip())
        except ValueError as exc:
            raise ProtocolError(f"bad Content-Length {length_text!r}") from exc
        if length < 0 or length > MAX_CONTENT_LENGTH:
            raise ProtocolError(f"Content-Length {length} out of range")
        cmd.body = await reader.readexactly(length)
    return cmd


def frame_event_json(headers: Iterable[tuple[str, str]]) -> bytes:
    """``myevents json``: one cJSON object with raw (not URL-encoded) values."""
    import json

    body = json.dumps({k: v for k, v in headers if v != ""}, separators=(",", ":")).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body
