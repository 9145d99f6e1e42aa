"""A raw-socket IVR for the simulator's fidelity tests: it speaks the event socket with plain
asyncio streams and hands every frame back as bytes, so tests can assert on the wire."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote

from simulator import CallResult, CallSpec, SimConfig, run_call

T = TypeVar("T")

FAST = SimConfig(timing=0.002)  # prompt 4 ms, PAGD timeout 5000 ms -> 10 ms
NUMBER = "+493012345678"
CALLER = "+491701234567"
PAGD = "1 1 3 5000 # q.wav invalid.wav q1 ^[12]$ 2000 ''"


@dataclass
class Frame:
    raw: bytes  # exactly what came over the wire
    head: list[tuple[str, str]]  # the outer header block (not decoded)
    body: bytes

    def outer(self, name: str) -> str | None:
        return next((v for k, v in self.head if k == name), None)

    @property
    def content_type(self) -> str | None:
        return self.outer("Content-Type")

    @property
    def body_lines(self) -> list[str]:
        """The event body's lines, still URL-encoded."""
        return [line for line in self.body.decode().split("\n") if line]

    @property
    def event(self) -> dict[str, str]:
        """Event headers, each line URL-decoded after splitting (like the official client)."""
        out: dict[str, str] = {}
        for line in self.body_lines:
            k, _, v = line.partition(": ")
            out.setdefault(k, unquote(v))
        return out

    @property
    def name(self) -> str:
        if self.content_type == "text/event-plain":
            return self.event.get("Event-Name", "?")
        if self.content_type == "text/disconnect-notice":
            return f"notice:{self.outer('Content-Disposition')}"
        return self.content_type or "?"


class RawIVR:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, text: str, body: bytes = b"") -> None:
        self.writer.write(text.encode() + b"\n\n" + body)
        await self.writer.drain()

    async def frame(self, timeout: float = 3.0) -> Frame:
        block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)
        head = []
        for line in block.decode().split("\n"):
            if ": " in line:
                k, _, v = line.partition(": ")
                head.append((k, v))
        length = next((int(v) for k, v in head if k == "Content-Length"), 0)
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout) if length else b""
        return Frame(block + body, head, body)

    async def command(self, text: str, body: bytes = b"") -> Frame:
        await self.send(text, body)
        return await self.frame()

    async def until(self, name: str, timeout: float = 3.0) -> list[Frame]:
        """Frames up to and including the first one called ``name``."""
        frames: list[Frame] = []
        while True:
            f = await self.frame(timeout)
            frames.append(f)
            if f.name == name:
                return frames

    async def eof(self, timeout: float = 3.0) -> bytes:
        """Everything left until the simulator closes the socket."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def quiet(self, seconds: float = 0.1) -> bool:
        """True if nothing arrives for ``seconds``."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        return data == b""

    async def start(self, *, linger: bool = True) -> Frame:
        """connect, myevents, (linger): the usual opening of an outbound session."""
        reply = await self.command("connect")
        assert (await self.command("myevents")).outer("Reply-Text") == "+OK Events Enabled"
        if linger:
            assert (await self.command("linger")).outer("Reply-Text") == "+OK will linger"
        return reply

    async def execute(self, app: str, arg: str = "", **headers: str) -> Frame:
        lines = ["sendmsg", "call-command: execute", f"execute-app-name: {app}"]
        if arg:
            lines.append(f"execute-app-arg: {arg}")
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        return await self.command("\n".join(lines))

    async def close(self) -> None:
        self.writer.close()


async def scenario(
    spec: CallSpec,
    ivr: Callable[[RawIVR], Awaitable[T]],
    config: SimConfig = FAST,
) -> tuple[CallResult, T]:
    """Run one simulated call against ``ivr``; returns the simulator's result and ivr's value."""
    outcome: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = RawIVR(reader, writer)
        try:
            outcome.set_result(await ivr(conn))
        except BaseException as exc:  # surfaced by the test through `outcome`
            outcome.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await asyncio.wait_for(run_call(spec, ("127.0.0.1", port), config), 10)
        value = await asyncio.wait_for(outcome, 10)
    finally:
        server.close()
    return result, value


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(main())


def call(**kwargs: object) -> CallSpec:
    base: dict[str, object] = {"number": NUMBER, "caller": CALLER, "uuid": UUID}
    base.update(kwargs)
    return CallSpec.model_validate(base)


UUID = "3f0e6a52-1c1e-4b7a-9d3e-0c5f2b7d2eb2"
