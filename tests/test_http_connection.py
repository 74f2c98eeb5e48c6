"""Tests of the server-side HTTP/1.1 connection (``anywire._http``).

The server side is a real ``ServerConnection``; the client is raw bytes, read
back through an h11 client. Streams are an in-memory byte stream pair (the
default) or a loopback TCP pair. Every wait is bounded with ``fail_after``;
no sleep is used to order events.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import anyio
import h11
import pytest
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anywire._http import HTTPLimits, Request, ServerConnection
from anywire._http._request import FirstLine, split_target, status_for_bad_head
from anywire.errors import ConcurrencyError, LimitExceeded, LocalProtocolError, RemoteProtocolError

from .conftest import timeout

pytestmark = pytest.mark.anyio

FAST = HTTPLimits(header_timeout=5, keep_alive_timeout=5, close_linger=1)


# -- streams ------------------------------------------------------------------


class MemoryByteStream(ByteStream):
    """One end of an in-memory byte stream pair, with anyio's stream semantics."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            self._pending = await self._receive.receive()
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        await self._send.send(bytes(item))

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


@asynccontextmanager
async def memory_pair(buffer: float = math.inf) -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    to_server = anyio.create_memory_object_stream[bytes](buffer)
    to_client = anyio.create_memory_object_stream[bytes](buffer)
    client = MemoryByteStream(to_server[0], to_client[1])
    server = MemoryByteStream(to_client[0], to_server[1])
    async with client, server:
        yield client, server


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        inner = listener.listeners[0]
        assert isinstance(inner, anyio.abc.SocketListener)
        port = inner.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await inner.accept()
        async with client, server:
            yield client, server


PairFactory = Callable[[], AbstractAsyncContextManager[tuple[ByteStream, ByteStream]]]


@pytest.fixture(params=["memory", "tcp"])
def make_pair(request: pytest.FixtureRequest) -> PairFactory:
    return memory_pair if request.param == "memory" else tcp_pair


# -- client and server helpers ------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    informational: list[int] = field(default_factory=list)


class Client:
    """Raw bytes out; responses parsed by an h11 client told what was asked."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    def expect(self, method: str = "GET") -> None:
        """Get the parser ready for the response to a request sent as raw bytes."""
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        self.h11.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        self.h11.send(h11.EndOfMessage())

    async def request(
        self, method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None
    ) -> Reply:
        await self.send(build(method, target, headers))
        self.expect(method)
        return await self.read_response()

    async def read_response(self) -> Reply:
        reply: Reply | None = None
        informational: list[int] = []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self._receive())
            elif isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                reply = Reply(event.status_code, dict(event.headers), informational=informational)
            elif isinstance(event, h11.Data):
                assert reply is not None
                reply.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert reply is not None
                return reply
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def _receive(self) -> bytes:
        try:
            return await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b""

    async def read_all(self) -> bytes:
        """Everything until the server closes (whatever the parser holds first)."""
        data = self.h11.trailing_data[0]
        while chunk := await self._receive():
            data += chunk
        return data


def build(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    fields = [("host", "example.com"), *(headers or [])]
    if body:
        fields.append(("content-length", str(len(body))))
    lines = [f"{method} {target} HTTP/{version}", *(f"{n}: {v}" for n, v in fields), "", ""]
    return "\r\n".join(lines).encode() + body


Handler = Callable[[ServerConnection, Request], Awaitable[None]]


async def echo(conn: ServerConnection, request: Request) -> None:
    body = await conn.read_body()
    text = f"{request.method} {request.path} {len(body)} ".encode() + body
    await conn.send_response(200, [(b"content-type", b"text/plain")], text)


@dataclass
class Server:
    conn: ServerConnection
    requests: list[Request] = field(default_factory=list)
    outcome: object = None
    done: anyio.Event = field(default_factory=anyio.Event)

    async def run(self, handler: Handler) -> None:
        try:
            while (request := await self.conn.next_request()) is not None:
                self.requests.append(request)
                await handler(self.conn, request)
                if self.conn.switched:
                    self.outcome = "switched"
                    return
            self.outcome = "closed"
        except (RemoteProtocolError, LimitExceeded) as exc:
            self.outcome = exc
        finally:
            self.done.set()

    async def wait(self) -> object:
        with anyio.fail_after(timeout(5)):
            await self.done.wait()
        return self.outcome


@asynccontextmanager
async def serving(
    handler: Handler = echo,
    limits: HTTPLimits = FAST,
    pair: PairFactory = memory_pair,
) -> AsyncIterator[tuple[Client, Server]]:
    async with pair() as (client_stream, server_stream):
        server = Server(ServerConnection(server_stream, limits=limits))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.run, handler)
            with anyio.fail_after(timeout(10)):
                yield Client(client_stream), server
                await client_stream.aclose()
                await server.wait()


# -- the request object and pure helpers --------------------------------------


def make_request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request("GET", b"/", "/", b"/", b"", "1.1", tuple(headers))


def test_header_helpers() -> None:
    request = make_request(
        [
            (b"connection", b"keep-alive, Upgrade"),
            (b"upgrade", b"WebSocket"),
            (b"x", b"1"),
            (b"x", b"2"),
        ]
    )
    assert request.header("X") == "1, 2"
    assert request.header(b"missing") is None
    assert request.header_tokens("connection") == ["keep-alive", "upgrade"]
    assert request.is_upgrade("websocket")
    assert not request.is_upgrade("h2c")
    assert not make_request([(b"upgrade", b"websocket")]).is_upgrade("websocket")


def test_content_length() -> None:
    assert make_request([]).content_length == 0
    assert make_request([(b"content-length", b"12")]).content_length == 12
    assert make_request([(b"transfer-encoding", b"chunked")]).content_length is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a%20b?x=1&y", (b"/a%20b", b"x=1&y")),
        (b"/", (b"/", b"")),
        (b"http://h:80/p?q", (b"/p", b"q")),
        (b"http://h", (b"/", b"")),
        (b"*", (b"*", b"")),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET / HTTP/2\r\n", 505),
        (b"GET / HTTP/10.0\r\n", 505),
        (b"GET / HTTP/3", 505),
        (b"GET / HTTP/1.x\r\n", 400),
        (b"garbage\r\n", 400),
    ],
)
def test_status_for_bad_head(line: bytes, status: int) -> None:
    assert status_for_bad_head(line, 400) == status
    assert status_for_bad_head(line, 431) == 431
    assert status_for_bad_head(line, 501) == 501


def test_first_line_stops_at_newline_and_limit() -> None:
    line = FirstLine(b"GET / HT", 100)
    line.feed(b"TP/2\r\nHost: x\r\n")
    line.feed(b"more")
    assert line.value == b"GET / HTTP/2\r\n"
    short = FirstLine(b"x" * 10, 4)
    short.feed(b"yy")
    assert short.value == b"xxxx"


@pytest.mark.parametrize(
    "kwargs",
    [{"max_header_bytes": 0}, {"receive_bytes": 0}, {"header_timeout": -1}, {"close_linger": -1}],
)
def test_limits_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        HTTPLimits(**kwargs)  # type: ignore[arg-type]


# -- requests and responses ---------------------------------------------------


async def test_simple_get(
    make_pair: PairFactory,
) -> None:
    async with serving(pair=make_pair) as (client, server):
        reply = await client.request("GET", "/hello%20world?x=1")
        assert reply.status == 200
        assert reply.body == b"GET /hello world 0 "
        await client.stream.aclose()
    assert server.outcome == "closed"
    request = server.requests[0]
    assert (request.raw_path, request.query_string, request.http_version) == (
        b"/hello%20world",
        b"x=1",
        "1.1",
    )
    assert request.headers[0] == (b"host", b"example.com")


async def test_keep_alive_three_requests(
    make_pair: PairFactory,
) -> None:
    async with serving(pair=make_pair) as (client, server):
        for path in ("/1", "/2", "/3"):
            reply = await client.request("GET", path)
            assert reply.body == f"GET {path} 0 ".encode()
        await client.stream.aclose()
    assert [r.path for r in server.requests] == ["/1", "/2", "/3"]
    assert server.outcome == "closed"


async def test_pipelined_requests() -> None:
    async with serving() as (client, server):
        await client.send(
            build("GET", "/a") + build("POST", "/b", body=b"xyz") + build("GET", "/c")
        )
        bodies = []
        for method in ("GET", "POST", "GET"):
            client.expect(method)
            bodies.append((await client.read_response()).body)
        await client.stream.aclose()
    assert bodies == [b"GET /a 0 ", b"POST /b 3 xyz", b"GET /c 0 "]
    assert len(server.requests) == 3


async def test_post_content_length_body() -> None:
    async with serving() as (client, _):
        await client.send(build("POST", "/up", body=b"hello world"))
        client.expect("POST")
        assert (await client.read_response()).body == b"POST /up 11 hello world"
        await client.stream.aclose()


async def test_post_chunked_body() -> None:
    async with serving() as (client, _):
        head = build("POST", "/up", [("transfer-encoding", "chunked")])
        await client.send(head + b"5\r\nhello\r\n")
        await client.send(b"6;ext=1\r\n world\r\n0\r\ntrailer: x\r\n\r\n")
        client.expect("POST")
        assert (await client.read_response()).body == b"POST /up 11 hello world"
        await client.stream.aclose()


async def test_body_complete_is_known_with_the_last_chunk() -> None:
    seen: list[tuple[bytes, bool]] = []

    async def record(conn: ServerConnection, request: Request) -> None:
        seen.append((b"", conn.body_complete))
        while not conn.body_complete:
            chunk = await conn.receive_body()
            seen.append((chunk, conn.body_complete))
        assert await conn.receive_body() == b""
        await conn.send_response(200)

    async with serving(record) as (client, _):
        await client.send(build("POST", "/", body=b"hello"))
        client.expect("POST")
        assert (await client.read_response()).status == 200
        assert seen == [(b"", False), (b"hello", True)]
        seen.clear()
        await client.send(build("GET", "/"))
        client.expect()
        assert (await client.read_response()).status == 200
        assert seen == [(b"", True)]
        seen.clear()
        head = build("POST", "/", [("transfer-encoding", "chunked")])
        await client.send(head + b"2\r\nhi\r\n0\r\n\r\n")
        client.expect("POST")
        assert (await client.read_response()).status == 200
        assert seen[-1] == (b"", True)
        assert (b"hi", False) in seen


async def test_413_on_content_length_before_reading() -> None:
    limits = HTTPLimits(max_body_size=10, close_linger=1)
    async with serving(limits=limits) as (client, server):
        await client.send(build("POST", "/", [("content-length", "100")]))
        client.expect("POST")
        reply = await client.read_response()
        assert reply.status == 413
        assert reply.headers[b"connection"] == b"close"
        assert await client.read_all() == b""
    assert isinstance(server.outcome, LimitExceeded)
    assert server.outcome.limit == 10
    with pytest.raises(anyio.ClosedResourceError):
        await server.conn.receive_body()


async def test_413_reaches_a_client_still_sending_over_tcp() -> None:
    limits = HTTPLimits(max_body_size=10, close_linger=5)
    async with serving(limits=limits, pair=tcp_pair) as (client, server):

        async def upload() -> None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await client.send(build("POST", "/", [("content-length", str(4 << 20))]))
                for _ in range(64):
                    await client.send(b"x" * 65536)

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            client.expect("POST")
            assert (await client.read_response()).status == 413
            await client.stream.aclose()
    assert isinstance(server.outcome, LimitExceeded)


async def test_413_on_chunked_body() -> None:
    limits = HTTPLimits(max_body_size=10, close_linger=1)
    async with serving(limits=limits) as (client, server):
        head = build("POST", "/", [("transfer-encoding", "chunked")])
        await client.send(head + b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
        client.expect("POST")
        assert (await client.read_response()).status == 413
        assert await client.read_all() == b""
    assert isinstance(server.outcome, LimitExceeded)


async def test_100_continue_sent_on_first_body_read() -> None:
    async with serving() as (client, _):
        await client.send(build("POST", "/", [("content-length", "5"), ("expect", "100-continue")]))
        informational = await client.stream.receive()  # the server waits for the body now
        assert informational == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        client.expect("POST")
        reply = await client.read_response()
        assert (reply.status, reply.body) == (200, b"POST / 5 hello")


async def test_413_instead_of_100_continue_for_a_too_large_body() -> None:
    limits = HTTPLimits(max_body_size=10, close_linger=1)
    async with serving(limits=limits) as (client, server):
        await client.send(build("PUT", "/", [("content-length", "11"), ("expect", "100-continue")]))
        data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in data
    assert isinstance(server.outcome, LimitExceeded)


async def test_100_continue_not_sent_when_body_not_read() -> None:
    async def refuse(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(401, body=b"no")

    async with serving(refuse) as (client, server):
        await client.send(build("PUT", "/", [("content-length", "5"), ("expect", "100-continue")]))
        data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 401 ")
    assert b"100 Continue" not in data
    assert b"connection: close" in data.lower()
    assert server.outcome == "closed"


async def test_unread_small_body_is_drained_for_keep_alive() -> None:
    async def ignore_body(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, body=request.path.encode())

    async with serving(ignore_body) as (client, server):
        await client.send(build("POST", "/a", body=b"x" * 1000) + build("GET", "/b"))
        client.expect("POST")
        assert (await client.read_response()).body == b"/a"
        client.expect("GET")
        assert (await client.read_response()).body == b"/b"
        await client.stream.aclose()
    assert len(server.requests) == 2


async def test_unread_large_body_closes_the_connection() -> None:
    limits = HTTPLimits(max_drain_size=100, close_linger=1)

    async def ignore_body(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, body=b"ok")

    async with serving(ignore_body, limits) as (client, server):
        await client.send(build("POST", "/", [("content-length", "1000")]) + b"x" * 500)
        data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in data.lower()
    assert server.outcome == "closed"


async def test_head_gets_no_body_bytes() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        if request.path == "/whole":
            await conn.send_response(200, body=b"hello")
        else:
            await conn.start_response(200)
            await conn.send_body(b"hello")
            await conn.end_response()

    async with serving(handler) as (client, _):
        await client.send(build("HEAD", "/whole") + build("HEAD", "/streamed"))
        await client.send(build("GET", "/whole", [("connection", "close")]))
        data = await client.read_all()
    responses = data.split(b"HTTP/1.1 ")
    assert len(responses) == 4  # b"" before the first one
    assert responses[1].endswith(b"content-length: 5\r\n\r\n")
    assert responses[2].lower().endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert responses[3].endswith(b"\r\n\r\nhello")


async def test_chunked_streamed_response() -> None:
    async def stream(conn: ServerConnection, request: Request) -> None:
        await conn.start_response(200, [("content-type", "text/plain")])
        for part in (b"one ", b"two ", b"three"):
            await conn.send_body(part)
        await conn.end_response()

    async with serving(stream) as (client, _):
        reply = await client.request()
        assert reply.headers[b"transfer-encoding"] == b"chunked"
        assert reply.body == b"one two three"
        await client.stream.aclose()


async def test_http_1_0_close_delimited_response(
    make_pair: PairFactory,
) -> None:
    async def stream(conn: ServerConnection, request: Request) -> None:
        assert request.http_version == "1.0"
        await conn.start_response(200)
        await conn.send_body(b"abc")
        await conn.send_body(b"def")
        await conn.end_response()

    async with serving(stream, pair=make_pair) as (client, server):
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        data = await client.read_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert body == b"abcdef"
    assert server.outcome == "closed"


async def test_connection_close_request_ends_the_connection() -> None:
    async with serving() as (client, server):
        await client.send(build("GET", "/", [("connection", "close")]) + build("GET", "/ignored"))
        data = await client.read_all()
    assert data.count(b"HTTP/1.1 200") == 1
    assert server.outcome == "closed"


# -- bad input ----------------------------------------------------------------


async def expect_refusal(client: Client, server: Server, status: int) -> bytes:
    data = await client.read_all()
    await client.stream.aclose()
    assert data.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"connection: close\r\n" in data.lower()
    assert b"content-type: text/plain; charset=utf-8" in data
    outcome = await server.wait()
    assert isinstance(outcome, RemoteProtocolError)
    assert outcome.hint == status
    assert server.conn.closed
    return data


async def test_malformed_request_line_gets_400(
    make_pair: PairFactory,
) -> None:
    async with serving(pair=make_pair) as (client, server):
        await client.send(b"this is not http\r\n\r\n")
        await expect_refusal(client, server, 400)


async def test_missing_host_gets_400() -> None:
    async with serving() as (client, server):
        await client.send(b"GET / HTTP/1.1\r\n\r\n")
        await expect_refusal(client, server, 400)


async def test_malformed_chunked_body_gets_400() -> None:
    async with serving() as (client, server):
        await client.send(build("POST", "/", [("transfer-encoding", "chunked")]) + b"zz\r\n")
        await expect_refusal(client, server, 400)


async def test_oversize_head_in_one_piece_gets_431() -> None:
    limits = HTTPLimits(max_header_bytes=1024, close_linger=1)
    async with serving(limits=limits) as (client, server):
        await client.send(build("GET", "/", [("x-big", "a" * 2000)]))
        await expect_refusal(client, server, 431)


async def test_oversize_incomplete_head_gets_431() -> None:
    limits = HTTPLimits(max_header_bytes=1024, close_linger=1)
    async with serving(limits=limits) as (client, server):
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(30):
            await client.send(b"x-filler: " + b"a" * 100 + b"\r\n")
        await expect_refusal(client, server, 431)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/2\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
    ],
)
async def test_other_http_versions_get_505(head: bytes) -> None:
    async with serving() as (client, server):
        await client.send(head)
        await expect_refusal(client, server, 505)


async def test_later_http_1_minor_is_served_as_1_1() -> None:
    async with serving() as (client, server):
        await client.send(build(version="1.2"))
        client.expect()
        assert (await client.read_response()).status == 200
        await client.stream.aclose()
    assert server.requests[0].http_version == "1.1"


async def test_connect_gets_501() -> None:
    async with serving() as (client, server):
        await client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        await expect_refusal(client, server, 501)


async def test_unknown_transfer_coding_gets_501() -> None:
    async with serving() as (client, server):
        await client.send(build("POST", "/", [("transfer-encoding", "gzip, chunked")]))
        await expect_refusal(client, server, 501)


async def test_client_disconnect_mid_body() -> None:
    async with serving() as (client, server):
        await client.send(build("POST", "/", [("content-length", "100")]) + b"partial")
        await client.stream.send_eof()
        outcome = await server.wait()
    assert isinstance(outcome, RemoteProtocolError)
    assert server.conn.client_disconnected


# -- timeouts -----------------------------------------------------------------


async def test_slow_loris_gets_408() -> None:
    limits = HTTPLimits(header_timeout=0.2, close_linger=1)
    async with serving(limits=limits) as (client, server):
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await expect_refusal(client, server, 408)


async def test_silent_connection_is_closed_quietly_by_header_timeout() -> None:
    limits = HTTPLimits(header_timeout=0.2, close_linger=1)
    async with serving(limits=limits) as (client, server):
        assert await client.read_all() == b""
    assert server.outcome == "closed"


async def test_idle_keep_alive_timeout_closes_quietly() -> None:
    limits = HTTPLimits(keep_alive_timeout=0.2, close_linger=1)
    async with serving(limits=limits) as (client, server):
        assert (await client.request()).status == 200
        assert await client.read_all() == b""
    assert server.outcome == "closed"


async def test_header_timeout_restarts_with_the_first_byte_of_a_kept_alive_request() -> None:
    limits = HTTPLimits(keep_alive_timeout=5, header_timeout=0.2, close_linger=1)
    async with serving(limits=limits) as (client, server):
        assert (await client.request()).status == 200
        await client.send(b"GET / HT")
        client.h11 = h11.Connection(h11.CLIENT)  # the next reply answers no request of ours
        await expect_refusal(client, server, 408)


# -- protocol switch, errors, cancellation ------------------------------------


UPGRADE = [("upgrade", "websocket"), ("connection", "Upgrade")]


async def test_switch_protocols_returns_trailing_data(
    make_pair: PairFactory,
) -> None:
    received: list[bytes] = []

    async def upgrade(conn: ServerConnection, request: Request) -> None:
        assert request.is_upgrade("websocket")
        received.append(await conn.switch_protocols(UPGRADE))
        await conn.stream.send(b"new protocol")
        await conn.aclose()  # does nothing: the stream is the caller's now
        assert not conn.closed
        with pytest.raises(LocalProtocolError):
            await conn.next_request()
        await conn.stream.aclose()

    async with serving(upgrade, pair=make_pair) as (client, server):
        await client.send(build("GET", "/ws", UPGRADE) + b"\x81\x05hello")
        data = await client.read_all()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"upgrade: websocket" in head
    assert rest == b"new protocol"
    assert received == [b"\x81\x05hello"]
    assert server.outcome == "switched"


async def test_switch_protocols_needs_an_upgrade_request() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        with pytest.raises(LocalProtocolError, match="upgrade"):
            await conn.switch_protocols(UPGRADE)
        await conn.send_response(200)

    async with serving(handler) as (client, _):
        assert (await client.request()).status == 200
        await client.stream.aclose()


async def test_send_error_426_with_headers() -> None:
    async def refuse(conn: ServerConnection, request: Request) -> None:
        await conn.send_error(426, "use WebSocket 13", [("Sec-WebSocket-Version", "13")])

    async with serving(refuse) as (client, server):
        await client.send(build("GET", "/ws", UPGRADE))
        data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"Sec-WebSocket-Version: 13\r\n" in data
    assert data.endswith(b"\r\n\r\n426 Upgrade Required: use WebSocket 13\n")
    assert server.outcome == "closed"


async def test_api_misuse_is_a_local_protocol_error() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        with pytest.raises(LocalProtocolError, match="start_response"):
            await conn.send_body(b"x")
        with pytest.raises(LocalProtocolError, match="not finished"):
            await conn.next_request()
        with pytest.raises(LocalProtocolError, match="range"):
            await conn.start_response(101)
        with pytest.raises(LocalProtocolError, match="header"):
            await conn.start_response(200, [("bad name", "x")])
        await conn.start_response(200, [("content-length", "2")])
        with pytest.raises(LocalProtocolError, match="already started"):
            await conn.start_response(200)
        with pytest.raises(LocalProtocolError, match="h11"):
            await conn.send_body(b"too long")
        assert conn.closed

    async with serving(handler) as (client, server):
        await client.send(build())
        assert (await client.read_all()).startswith(b"HTTP/1.1 200 ")
    assert server.outcome == "closed"


async def test_send_error_before_any_request() -> None:
    async with memory_pair() as (client_stream, server_stream):
        conn = ServerConnection(server_stream)
        client = Client(client_stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.send_error, 503, "overloaded")
            data = await client.read_all()
            await client_stream.aclose()
        assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert data.endswith(b"503 Service Unavailable: overloaded\n")
        assert conn.closed
        assert await conn.next_request() is None
        await conn.send_error(503)  # nothing left to refuse: a no-op


async def test_repr_and_exports() -> None:
    import anywire._http

    assert sorted(anywire._http.__all__) == ["HTTPLimits", "Request", "ServerConnection"]
    for name in anywire._http.__all__:
        assert getattr(anywire._http, name).__module__.startswith("anywire._http.")
    async with memory_pair() as (_, server_stream), ServerConnection(server_stream) as conn:
        assert "open" in repr(conn)
        assert "requests=0" in repr(conn)
    assert "closed" in repr(conn)


async def test_concurrent_readers_are_refused() -> None:
    async with memory_pair() as (_, server_stream):
        conn = ServerConnection(server_stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.next_request)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ConcurrencyError):
                await conn.next_request()
            tg.cancel_scope.cancel()


async def test_cancelled_write_leaves_the_connection_closed() -> None:
    async with memory_pair(buffer=0) as (client_stream, server_stream):
        conn = ServerConnection(server_stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client_stream.send, build())  # a zero-size buffer: waits for the reader
            with anyio.fail_after(timeout(5)):
                assert await conn.next_request() is not None
        with anyio.move_on_after(0.1) as scope:
            await conn.send_response(200, body=b"x" * 100)  # nobody reads: blocks
        assert scope.cancelled_caught
        assert conn.closed
        with pytest.raises(anyio.BrokenResourceError):
            await conn.send_body(b"more")
        with pytest.raises(anyio.BrokenResourceError):
            await conn.send_response(200)
        assert await conn.next_request() is None
        with pytest.raises(anyio.EndOfStream):
            await client_stream.receive()


async def test_wait_disconnected() -> None:
    async def watch(conn: ServerConnection, request: Request) -> None:
        await conn.start_response(200)
        await conn.send_body(b"event\n")
        await conn.wait_disconnected()
        assert conn.client_disconnected
        await conn.aclose()

    async with serving(watch) as (client, server):
        await client.send(build())
        assert (await client.stream.receive()).startswith(b"HTTP/1.1 200 ")
        await client.stream.send_eof()
        await server.wait()
    assert server.conn.client_disconnected


async def test_wait_disconnected_keeps_a_pipelined_request() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        if request.path == "/a":
            await conn.wait_disconnected()
        await conn.send_response(200, body=request.path.encode())

    async with serving(handler) as (client, server):
        await client.send(build("GET", "/a") + build("GET", "/b"))
        await client.stream.send_eof()
        data = await client.read_all()
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.endswith(b"/b")
    assert server.outcome == "closed"


# -- arbitrary input ----------------------------------------------------------

FRAGMENTS = [
    b"GET / HTTP/1.1\r\n",
    b"POST /x HTTP/1.0\r\n",
    b"Host: a\r\n",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Upgrade: websocket\r\n",
    b"\r\n",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/2.0",
    b" ",
    b":",
]
CHAOS = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=12), max_size=12).map(b"".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=CHAOS)
async def test_arbitrary_bytes_never_break_the_server(data: bytes) -> None:
    limits = HTTPLimits(
        max_header_bytes=256, max_body_size=64, header_timeout=1, keep_alive_timeout=1
    )
    async with serving(limits=limits) as (client, server):
        await client.send(data)
        await client.stream.send_eof()
        await client.read_all()
        await client.stream.aclose()
    assert server.outcome == "closed" or isinstance(
        server.outcome, RemoteProtocolError | LimitExceeded
    )
