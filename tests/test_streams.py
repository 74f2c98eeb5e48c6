"""BufferedStream over scripted and loopback streams; serve_tcp / open_tcp_stream over loopback.

Synchronisation uses events and ``wait_all_tasks_blocked``, never sleeps; every
server runs in a task group of the test and is cancelled at the end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskStatus

import anywire.net
import anywire.stream
import anywire.streams
from anywire.errors import ConcurrencyError, DelimiterNotFound, LimitExceeded
from anywire.streams import (
    BufferedStream,
    TCPServerInfo,
    get_socket_peer_address,
    open_tcp_stream,
    serve_listeners,
    serve_tcp,
)
from tests.conftest import timeout

pytestmark = pytest.mark.anyio


class ScriptedStream(ByteStream):
    """Serves scripted chunks (split to honour ``max_bytes``), then EOF; records the rest.

    With ``stall=True`` a receive() that finds no chunk left sets ``waiting`` and
    blocks until ``feed()`` adds one (or ``feed_eof()``).
    """

    def __init__(self, *chunks: bytes, stall: bool = False) -> None:
        self.chunks = [chunk for chunk in chunks if chunk]
        self.stall = stall
        self.requests: list[int] = []
        self.sent: list[bytes] = []
        self.eof_sent = False
        self.closed = False
        self.waiting = anyio.Event()
        self._fed = anyio.Event()

    def feed(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._fed.set()

    def feed_eof(self) -> None:
        self.stall = False
        self._fed.set()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        self.requests.append(max_bytes)
        while self.stall and not self.chunks:
            self.waiting.set()
            await self._fed.wait()
            self._fed = anyio.Event()
        if not self.chunks:
            raise anyio.EndOfStream
        chunk = self.chunks.pop(0)
        if len(chunk) > max_bytes:
            self.chunks.insert(0, chunk[max_bytes:])
        return chunk[:max_bytes]

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        self.sent.append(item)

    async def send_eof(self) -> None:
        self.eof_sent = True

    async def aclose(self) -> None:
        self.closed = True


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """A connected (client, server) pair of anyio socket streams over loopback."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            listeners: Any = listener.listeners
            async with await listeners[0].accept() as server:
                yield client, server


# --- BufferedStream -------------------------------------------------------------------------


async def test_read_returns_buffered_bytes_then_stream_bytes_then_eof() -> None:
    stream = BufferedStream(ScriptedStream(b"hello\nworld", b"!"))
    assert await stream.read_until(b"\n") == b"hello\n"
    assert stream.buffer == b"world"
    assert await stream.read(3) == b"wor"
    assert await stream.read() == b"ld"
    assert await stream.read() == b"!"
    assert await stream.read() == b""
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()


async def test_read_exactly_across_chunks() -> None:
    stream = BufferedStream(ScriptedStream(b"ab", b"cd", b"ef", b"g"))
    assert await stream.read_exactly(3) == b"abc"
    assert await stream.read_exactly(size=3) == b"def"
    assert await stream.read_exactly(0) == b""
    assert await stream.read() == b"g"


async def test_read_exactly_incomplete_at_eof_keeps_the_partial_data() -> None:
    stream = BufferedStream(ScriptedStream(b"abc", b"de"))
    with pytest.raises(anyio.IncompleteRead):
        await stream.read_exactly(10)
    assert stream.buffer == b"abcde"
    assert await stream.read() == b"abcde"
    assert await stream.read() == b""


async def test_read_until_keeps_the_delimiter_and_finds_it_split_across_chunks() -> None:
    chunks = (b"HTTP/1.1 200 OK\r", b"\nA: 1\r\nB: 2\r\n\r", b"\nbody")
    stream = BufferedStream(ScriptedStream(*chunks))
    assert await stream.read_until(b"\r\n") == b"HTTP/1.1 200 OK\r\n"
    assert await stream.read_until(b"\r\n\r\n") == b"A: 1\r\nB: 2\r\n\r\n"
    assert await stream.read() == b"body"


async def test_read_until_every_two_way_and_three_way_split() -> None:
    data = b"key: value\r\n\r\nrest"
    for i in range(1, len(data)):
        for j in range(i, len(data)):
            stream = BufferedStream(ScriptedStream(data[:i], data[i:j], data[j:]))
            assert await stream.read_until(b"\r\n\r\n") == b"key: value\r\n\r\n", (i, j)
            assert await stream.read_exactly(4) == b"rest", (i, j)


async def test_read_until_eof_before_delimiter() -> None:
    stream = BufferedStream(ScriptedStream(b"no", b" newline"))
    with pytest.raises(anyio.IncompleteRead):
        await stream.read_until(b"\n")
    assert await stream.read() == b"no newline"


async def test_delimiter_not_found_leaves_the_data_readable() -> None:
    stream = BufferedStream(ScriptedStream(b"x" * 10, b"y" * 10, b"\nz"))
    with pytest.raises(DelimiterNotFound) as info:
        await stream.read_until(b"\n", max_bytes=15)
    assert info.value.limit == 15
    assert isinstance(info.value, LimitExceeded)
    assert stream.buffer == b"x" * 10 + b"y" * 5
    assert await stream.read() == b"x" * 10 + b"y" * 5
    assert await stream.read_until(b"\n", max_bytes=15) == b"yyyyy\n"
    assert await stream.read() == b"z"


async def test_read_until_limit_includes_the_delimiter() -> None:
    stream = BufferedStream(ScriptedStream(b"abc\r\n"))
    assert await stream.read_until(b"\r\n", max_bytes=5) == b"abc\r\n"
    stream = BufferedStream(ScriptedStream(b"abcd\r\n"))
    with pytest.raises(DelimiterNotFound):
        await stream.read_until(b"\r\n", max_bytes=5)
    assert await stream.read_until(b"\r\n", max_bytes=6) == b"abcd\r\n"


async def test_buffer_is_bounded_by_the_request() -> None:
    fake = ScriptedStream(b"a" * 100_000, b"b" * 100_000)
    stream = BufferedStream(fake)
    with pytest.raises(DelimiterNotFound):
        await stream.read_until(b"\n", max_bytes=1000)
    assert len(stream.buffer) == 1000
    assert max(fake.requests) <= 1000
    fake.requests.clear()
    assert await stream.read_exactly(5000) == b"a" * 5000
    assert len(stream.buffer) == 0
    assert max(fake.requests) <= 4000


async def test_requests_above_max_buffer_size_raise_before_reading() -> None:
    fake = ScriptedStream(b"abc")
    stream = BufferedStream(fake, max_buffer_size=16)
    with pytest.raises(LimitExceeded) as info:
        await stream.read_exactly(17)
    assert info.value.limit == 16
    with pytest.raises(LimitExceeded):
        await stream.read_until(b"\n", max_bytes=17)
    assert fake.requests == []
    assert await stream.read() == b"abc"


async def test_invalid_arguments() -> None:
    stream = BufferedStream(ScriptedStream(b"abc"))
    with pytest.raises(ValueError, match="max_bytes"):
        await stream.read(0)
    with pytest.raises(ValueError, match="delimiter"):
        await stream.read_until(b"")
    with pytest.raises(ValueError, match="max_bytes"):
        await stream.read_until(b"\n", max_bytes=0)
    with pytest.raises(ValueError, match="size"):
        await stream.read_exactly(-1)
    with pytest.raises(ValueError, match="max_buffer_size"):
        BufferedStream(ScriptedStream(), max_buffer_size=0)


async def test_write_write_all_send_and_send_eof_reach_the_wrapped_stream() -> None:
    fake = ScriptedStream()
    stream = BufferedStream(fake)
    await stream.write(b"a")
    await stream.write_all(b"b")
    await stream.send(b"c")
    await stream.write(b"")
    await stream.send_eof()
    assert fake.sent == [b"a", b"b", b"c"]
    assert fake.eof_sent


async def test_context_manager_closes_and_closed_stream_raises() -> None:
    fake = ScriptedStream(b"data")
    async with BufferedStream(fake) as stream:
        assert await stream.read(2) == b"da"
    assert fake.closed
    assert stream.buffer == b""
    with pytest.raises(anyio.ClosedResourceError):
        await stream.read()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.write(b"x")
    await stream.aclose()  # a second close is harmless
    assert "closed" in repr(stream)


async def test_concurrent_reads_raise_concurrency_error() -> None:
    fake = ScriptedStream(stall=True)
    stream = BufferedStream(fake)
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.read_exactly, 4)
        await fake.waiting.wait()
        with pytest.raises(ConcurrencyError):
            await stream.read()
        fake.feed(b"abcd")
    assert stream.buffer == b""


async def test_cancelled_read_until_keeps_what_it_received() -> None:
    fake = ScriptedStream(b"abc", stall=True)
    stream = BufferedStream(fake)
    with anyio.fail_after(timeout(5)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.read_until, b"\n")
            await fake.waiting.wait()
            tg.cancel_scope.cancel()
    assert stream.buffer == b"abc"
    fake.feed(b"def\n")
    assert await stream.read_until(b"\n") == b"abcdef\n"


async def test_wrapping_a_buffered_stream_keeps_its_buffer() -> None:
    inner = BufferedStream(ScriptedStream(b"line\nrest", b"!"))
    assert await inner.read_until(b"\n") == b"line\n"
    outer = BufferedStream(inner)
    assert await outer.read_exactly(5) == b"rest!"


async def test_half_close_over_tcp() -> None:
    async with tcp_pair() as (client_raw, server_raw):
        client, server = BufferedStream(client_raw), BufferedStream(server_raw)
        await client.write_all(b"request")
        await client.send_eof()
        received = b""
        while data := await server.read():
            received += data
        assert received == b"request"
        await server.write_all(b"reply")
        await server.send_eof()
        assert await client.read_exactly(5) == b"reply"
        assert await client.read() == b""


async def test_extra_attributes_and_peer_address() -> None:
    async with tcp_pair() as (client_raw, server_raw):
        client, server = BufferedStream(client_raw), BufferedStream(server_raw)
        client_port = client.extra(SocketAttribute.local_port)
        assert server.extra(SocketAttribute.remote_port) == client_port
        assert get_socket_peer_address(server) == ("127.0.0.1", client_port)
        assert get_socket_peer_address(server_raw) == ("127.0.0.1", client_port)
        raw_socket = server.extra(SocketAttribute.raw_socket)
        assert get_socket_peer_address(raw_socket) == ("127.0.0.1", client_port)


async def test_peer_address_of_a_non_socket_stream_raises() -> None:
    with pytest.raises(anyio.TypedAttributeLookupError):
        get_socket_peer_address(BufferedStream(ScriptedStream()))


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")
def test_peer_address_of_a_unix_socket_raises() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right, pytest.raises(ValueError, match="not an IP socket"):
        get_socket_peer_address(left)


# --- TCP server and client ------------------------------------------------------------------


async def echo(stream: BufferedStream) -> None:
    while data := await stream.read():
        await stream.write_all(data)


async def start_server(
    tg: anyio.abc.TaskGroup, handler: Callable[[BufferedStream], Awaitable[object]], **kwargs: Any
) -> TCPServerInfo:
    info: TCPServerInfo = await tg.start(partial(serve_tcp, handler, **kwargs))
    return info


@asynccontextmanager
async def server_scope(
    handler: Callable[[BufferedStream], Awaitable[object]], **kwargs: Any
) -> AsyncIterator[tuple[TCPServerInfo, anyio.CancelScope]]:
    """Run serve_tcp in its own cancel scope, so a test can shut it down and go on."""
    scope = anyio.CancelScope()

    async def run(*, task_status: TaskStatus[TCPServerInfo]) -> None:
        with scope:
            await serve_tcp(handler, task_status=task_status, **kwargs)

    async with anyio.create_task_group() as tg:
        yield await tg.start(run), scope
        scope.cancel()


async def test_echo_round_trip() -> None:
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, echo)
            assert info.addresses == (("127.0.0.1", info.port),)
            assert info.port > 0
            async with await open_tcp_stream("127.0.0.1", info.port, timeout=timeout(5)) as s:
                await s.write(b"ping\n")
                assert await s.read_until(b"\n") == b"ping\n"
                await s.send_eof()
                assert await s.read() == b""
            tg.cancel_scope.cancel()


async def test_handler_exception_is_logged_and_other_connections_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(stream: BufferedStream) -> None:
        if await stream.read_until(b"\n") == b"boom\n":
            raise RuntimeError("handler failed on purpose")
        await echo(stream)

    caplog.set_level(logging.ERROR, logger="anywire.streams")
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, handler)
            async with await open_tcp_stream("127.0.0.1", info.port) as good:
                await good.write(b"hello\n")
                async with await open_tcp_stream("127.0.0.1", info.port) as bad:
                    await bad.write(b"boom\n")
                    assert await bad.read() == b""  # the server closed this connection
                await good.write(b"still here")
                assert await good.read_exactly(10) == b"still here"
            tg.cancel_scope.cancel()
    [record] = [r for r in caplog.records if r.name == "anywire.streams"]
    assert record.levelno == logging.ERROR
    assert "handler" in record.getMessage()
    assert "127.0.0.1:" in record.getMessage()
    assert record.exc_info is not None
    assert "handler failed on purpose" in caplog.text


async def test_graceful_shutdown_lets_a_running_handler_finish() -> None:
    started, proceed, finished = anyio.Event(), anyio.Event(), anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        await stream.read_exactly(1)
        started.set()
        await proceed.wait()
        await stream.write_all(b"done")
        finished.set()

    with anyio.fail_after(timeout(10)):
        async with server_scope(handler, graceful_shutdown=timeout(30)) as (info, scope):
            async with await open_tcp_stream("127.0.0.1", info.port) as client:
                await client.write(b"x")
                await started.wait()
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                # the listener closed at once: new connections are refused
                with pytest.raises(OSError, match="connection attempts failed"):
                    await anyio.connect_tcp("127.0.0.1", info.port)
                proceed.set()
                assert await client.read_exactly(4) == b"done"
                assert await client.read() == b""
    assert finished.is_set()


async def test_graceful_shutdown_cancels_a_handler_that_overruns_the_grace() -> None:
    grace = 0.2
    started = anyio.Event()
    cancelled_at: list[float] = []

    async def handler(stream: BufferedStream) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled_at.append(anyio.current_time())
            raise

    with anyio.fail_after(timeout(10)):
        async with server_scope(handler, graceful_shutdown=grace) as (info, scope):
            async with await open_tcp_stream("127.0.0.1", info.port) as client:
                await started.wait()
                shutdown_at = anyio.current_time()
                scope.cancel()
                assert await client.read() == b""  # closed once the grace ran out
    [when] = cancelled_at
    assert when - shutdown_at >= grace


async def test_without_graceful_shutdown_handlers_are_cancelled_at_once() -> None:
    started = anyio.Event()
    cancelled = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(timeout(10)):
        async with server_scope(handler) as (info, scope):
            async with await open_tcp_stream("127.0.0.1", info.port) as client:
                await started.wait()
                scope.cancel()
                await cancelled.wait()
                assert await client.read() == b""


async def test_graceful_shutdown_inf_waits_for_handlers() -> None:
    started, proceed = anyio.Event(), anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        started.set()
        await proceed.wait()
        await stream.write_all(b"late")

    with anyio.fail_after(timeout(10)):
        async with server_scope(handler, graceful_shutdown=math.inf) as (info, scope):
            async with await open_tcp_stream("127.0.0.1", info.port) as client:
                await started.wait()
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                proceed.set()
                assert await client.read_exactly(4) == b"late"


async def test_max_connections_makes_accept_wait() -> None:
    release = anyio.Event()
    served: list[bytes] = []

    async def handler(stream: BufferedStream) -> None:
        served.append(await stream.read_exactly(1))
        await release.wait()
        await stream.write_all(b"ok")

    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, handler, max_connections=1)
            async with (
                await open_tcp_stream("127.0.0.1", info.port) as first,
                await open_tcp_stream("127.0.0.1", info.port) as second,
            ):
                await first.write(b"1")
                await second.write(b"2")
                await anyio.wait_all_tasks_blocked()
                assert served == [b"1"]
                release.set()
                assert await first.read_exactly(2) == b"ok"
                assert await second.read_exactly(2) == b"ok"
            assert served == [b"1", b"2"]
            tg.cancel_scope.cancel()


async def test_max_connections_reached_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="anywire.streams")
    entered = anyio.Event()
    release = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        entered.set()
        await release.wait()

    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, handler, max_connections=1)
            async with await open_tcp_stream("127.0.0.1", info.port):
                await entered.wait()
                release.set()
            tg.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records if r.name == "anywire.streams"]
    assert messages == ["max_connections (1) reached: new connections wait until one closes"]


async def test_serve_listeners_serves_tcp_and_unix_listeners() -> None:
    directory = tempfile.mkdtemp(prefix="aw")  # Unix socket paths must stay short
    path = os.path.join(directory, "s.sock")
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    unix = await anyio.create_unix_listener(path)
    listeners = [*tcp.listeners, unix]
    try:
        with anyio.fail_after(timeout(10)):
            async with anyio.create_task_group() as tg:
                info = await tg.start(
                    partial(serve_listeners, echo, listeners)  # type: ignore[arg-type]
                )
                assert len(info.addresses) == 1  # the Unix socket has no IP address
                async with await open_tcp_stream("127.0.0.1", info.port) as client:
                    await client.write(b"tcp")
                    assert await client.read_exactly(3) == b"tcp"
                async with await anyio.connect_unix(path) as client_unix:
                    await client_unix.send(b"unix")
                    assert await client_unix.receive() == b"unix"
                tg.cancel_scope.cancel()
    finally:
        os.unlink(path)
        os.rmdir(directory)
    with pytest.raises(anyio.ClosedResourceError):
        await unix.accept()  # serve_listeners closed what it was given


@pytest.mark.parametrize("family", ["tcp", "unix"])
async def test_connections_queued_in_the_backlog_are_accepted_in_a_few_turns(
    family: str,
) -> None:
    # One accept per scheduler turn starved new connections behind thousands of busy
    # ones (the Engine.IO load test: polling clients open a connection per request).
    queued, max_connections = 40, 30
    directory = tempfile.mkdtemp(prefix="aw")
    path = os.path.join(directory, "s.sock")
    listener: anyio.abc.SocketListener
    if family == "tcp":
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        address: Any = listener.extra(SocketAttribute.local_address)
    else:
        listener = await anyio.create_unix_listener(path)
        address = path
    kind = socket.AF_INET if family == "tcp" else socket.AF_UNIX
    clients = []
    for _ in range(queued):
        client = socket.socket(kind, socket.SOCK_STREAM)
        client.connect(address)  # completes in the listen backlog; nobody accepted yet
        clients.append(client)
    running = 0
    release = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        nonlocal running
        running += 1
        await release.wait()

    try:
        with anyio.fail_after(timeout(10)):
            async with anyio.create_task_group() as tg:
                await tg.start(
                    partial(serve_listeners, handler, [listener], max_connections=max_connections)
                )
                turns = 0
                while running < max_connections:
                    await anyio.lowlevel.checkpoint()
                    turns += 1
                assert turns <= 10  # one accept per turn would need more than 30
                await anyio.wait_all_tasks_blocked()
                assert running == max_connections  # the burst respects max_connections
                release.set()
                while running < queued:  # the rest once slots are free again
                    await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
    finally:
        for client in clients:
            client.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.rmdir(directory)


async def test_tls_round_trip(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, echo, ssl_context=server_context)
            client = await open_tcp_stream("127.0.0.1", info.port, ssl_context=client_context)
            async with client:
                await client.write_all(b"secret\n")
                assert await client.read_until(b"\n") == b"secret\n"
                assert get_socket_peer_address(client) == ("127.0.0.1", info.port)
                assert client.extra(anyio.streams.tls.TLSAttribute.server_side) is False
            tg.cancel_scope.cancel()


async def test_failed_tls_handshake_ends_only_that_connection(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, echo, ssl_context=server_context)
            async with await open_tcp_stream("127.0.0.1", info.port) as plain:
                await plain.write(b"GET / HTTP/1.1\r\n\r\n")
                with contextlib.suppress(anyio.BrokenResourceError):
                    while await plain.read():  # maybe a TLS alert, then EOF
                        pass
            async with await open_tcp_stream(
                "127.0.0.1", info.port, ssl_context=client_context
            ) as client:
                await client.write_all(b"ok\n")
                assert await client.read_until(b"\n") == b"ok\n"
            tg.cancel_scope.cancel()


async def test_connect_timeout_covers_the_tls_handshake(client_context: ssl.SSLContext) -> None:
    done = anyio.Event()

    async def silent(stream: BufferedStream) -> None:
        await done.wait()

    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await start_server(tg, silent)
            with pytest.raises(TimeoutError):
                await open_tcp_stream(
                    "127.0.0.1", info.port, ssl_context=client_context, timeout=0.1
                )
            done.set()
            tg.cancel_scope.cancel()


async def test_connection_refused_raises_oserror() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
    with pytest.raises(OSError, match="connection attempts failed"):
        await open_tcp_stream("127.0.0.1", port, timeout=timeout(5))


async def test_start_tcp_server_takes_the_seed_argument_order() -> None:
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(anywire.net.start_tcp_server, "127.0.0.1", 0, echo)
            async with await anywire.net.open_tcp_stream("127.0.0.1", info.port) as s:
                await s.write(b"seed")
                assert await s.read_exactly(4) == b"seed"
            tg.cancel_scope.cancel()


def test_compatibility_modules_reexport_the_streams_names() -> None:
    for module in (anywire.net, anywire.stream):
        for name in module.__all__:
            assert getattr(module, name) is getattr(anywire.streams, name)
    assert anywire.stream.BufferedStream is BufferedStream
    assert {"open_tcp_stream", "start_tcp_server", "get_socket_peer_address"} <= set(
        anywire.net.__all__
    )
