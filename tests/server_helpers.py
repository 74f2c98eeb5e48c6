"""Helpers for the runner's tests: servers owned by a task group, raw clients, small apps."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import h11
from anyio.abc import SocketStream, TaskStatus

from anywire.server import ServerInfo, serve_app

from .conftest import timeout

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Running:
    """A server running in its own cancel scope, so a test can stop it and go on."""

    info: ServerInfo
    scope: anyio.CancelScope
    stopped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def url(self) -> str:
        return self.info.urls[0]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    def stop(self) -> None:
        """Begin the graceful shutdown (cancel ``serve_app``)."""
        self.scope.cancel()

    async def wait_stopped(self) -> None:
        with anyio.fail_after(timeout(10)):
            await self.stopped.wait()


@asynccontextmanager
async def running(app: App, **options: Any) -> AsyncIterator[Running]:
    """Serve ``app`` on a free loopback port for the body of the ``async with``.

    Lifespan is off unless asked for: most test apps only speak ``http``.
    """
    options.setdefault("graceful_shutdown", 5.0)
    options.setdefault("lifespan", "off")
    host = options.pop("host", "127.0.0.1")
    scope = anyio.CancelScope()
    stopped = anyio.Event()

    async def run(*, task_status: TaskStatus[ServerInfo]) -> None:
        try:
            with scope:
                await serve_app(app, host, 0, task_status=task_status, **options)
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        info = await tg.start(run)
        server = Running(info, scope, stopped)
        yield server
        scope.cancel()


async def start(tg: anyio.abc.TaskGroup, app: App, **options: Any) -> ServerInfo:
    """``await tg.start(serve_app, app, "127.0.0.1", 0, **options)``."""
    info: ServerInfo = await tg.start(partial(serve_app, app, "127.0.0.1", 0, **options))
    return info


# -- raw clients ------------------------------------------------------------------


async def read_until_closed(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with anyio.fail_after(timeout(10)):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes on a new connection; return all the server answers before closing."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        return await read_until_closed(stream)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    return int(response.split(b" ", 2)[1])


class RawClient:
    """A raw socket plus an h11 client parser, for keep-alive and chunked responses."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.informational: list[int] = []

    async def request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> None:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        fields = [("host", "test"), *(headers or [])]
        if body is not None:
            fields.append(("content-length", str(len(body))))
        data = self.h11.send(h11.Request(method=method, target=target, headers=fields)) or b""
        if body:
            data += self.h11.send(h11.Data(data=body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send(data)

    async def next_event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                assert not isinstance(event, type)
                return event
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
            self.h11.receive_data(data)

    async def response(self) -> tuple[h11.Response, list[bytes]]:
        """The next response: its head and its body chunks as they came."""
        while not isinstance(event := await self.next_event(), h11.Response):
            assert isinstance(event, h11.InformationalResponse), event
            self.informational.append(event.status_code)
        chunks: list[bytes] = []
        while not isinstance(part := await self.next_event(), h11.EndOfMessage):
            assert isinstance(part, h11.Data), part
            chunks.append(bytes(part.data))
        return event, chunks


@asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        yield RawClient(stream)


def header(response: h11.Response, name: bytes) -> bytes | None:
    values = [value for field_, value in response.headers if field_ == name]
    return b", ".join(values) if values else None


# -- small applications -----------------------------------------------------------------


async def text_response(send: Send, text: str, status: int = 200) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Says hello over HTTP; does not speak lifespan."""
    if scope["type"] != "http":
        raise RuntimeError(f"hello_app does not handle {scope['type']}")
    await text_response(send, "hello")


async def failing_startup_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers lifespan startup with ``lifespan.startup.failed`` (for the CLI's exit code)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await hello_app(scope, receive, send)


async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/slow`` never answers (and says so on stderr); anything else says hello."""
    if scope["type"] == "http" and scope["path"] == "/slow":
        print("slow request started", file=sys.stderr, flush=True)
        await anyio.sleep_forever()
    await hello_app(scope, receive, send)
