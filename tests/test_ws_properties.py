"""Property tests: hostile bytes before and after the WebSocket handshake, on both sides.

Whatever a peer sends must end in a typed error or a close frame with the
right code (RFC 6455 sections 5 and 7.4), within a bound, without harming any
other connection, and without buffering more than ``max_message_size`` plus
one read. The expected codes come from the oracle in :mod:`tests.ws_fuzz`.

Each hypothesis test keeps one server (or raw peer) and one idle "bystander"
connection for all its examples and checks both after every example.
``HYPOTHESIS_PROFILE=long`` runs 20 times more examples.
"""

from __future__ import annotations

import logging
import os
import re
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import h11
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType

from anywire._http import HTTPLimits
from anywire.errors import ConnectionClosed, HandshakeError
from anywire.websocket import WebSocket, WebSocketOptions, connect
from anywire.websocket._deflate import default_extensions
from anywire.websocket._handshake import accept_token, negotiate_extensions
from tests.conftest import timeout
from tests.ws_fuzz import (
    ACCEPT,
    BINARY,
    CLOSE,
    KEY,
    PING,
    PONG,
    TEXT,
    Deflater,
    FrameReader,
    GatedStream,
    Inflater,
    Outcome,
    Script,
    TrickleStream,
    after_handshake_bytes,
    close_payload,
    deflate_sequences,
    frame,
    header_of,
    near_http_request,
    near_http_response,
    near_limit_request,
    pop_frame,
    predict,
    read_request_head,
    receive_all,
    send_quietly,
)
from tests.ws_helpers import echo, port_of, raw_peer, running_server, upgrade_request

pytestmark = pytest.mark.anyio

#: ``max_message_size`` of every server and client under test.
LIMIT = 1024
_SCALE = 20 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1
T = TypeVar("T")


def fuzz(examples: int) -> Callable[[T], T]:
    """Hypothesis settings for ``examples`` examples; 20 times more with HYPOTHESIS_PROFILE=long.

    The long run also lifts the per-test timeout of pyproject.toml (60 s) in proportion.
    """

    def apply(test: T) -> T:
        test = settings(
            max_examples=examples * _SCALE,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )(test)
        if _SCALE > 1:
            pytest.mark.timeout(60 * _SCALE)(test)  # marks ``test`` in place
        return test

    return apply


# -- fixtures: a server under test, a raw server, bystanders -------------------------------


@dataclass
class Served:
    """An echo server under test, with a connection that must survive every example."""

    url: str
    http: httpx.AsyncClient
    bystander: WebSocket
    errors: list[BaseException] = field(default_factory=list)

    async def check_healthy(self) -> None:
        """The idle connection still echoes, a new client gets in, no handler crashed."""
        with anyio.fail_after(timeout(5)):
            await self.bystander.send("still there?")
            assert await self.bystander.receive() == "still there?"
            async with connect(self.url, http_client=self.http) as ws:
                await ws.send(b"new")
                assert await ws.receive() == b"new"
        errors, self.errors[:] = self.errors[:], []
        assert not errors


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # One client for every connect() of a test (building its SSL context takes ~25 ms);
    # no keep-alive, so no example ever reuses another one's connection.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=None) as client:
        yield client


@pytest.fixture
async def server(http: httpx.AsyncClient) -> AsyncIterator[Served]:
    errors: list[BaseException] = []

    async def recording_echo(ws: WebSocket) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        except Exception as exc:
            errors.append(exc)
            raise

    async with (
        running_server(recording_echo, max_message_size=LIMIT) as url,
        connect(url, http_client=http) as bystander,
    ):
        yield Served(url, http, bystander, errors)


@dataclass
class RawServer:
    """A hand-written server for client tests: each connection follows the next Script."""

    url: str
    scripts: list[Script]
    bystander: WebSocket

    async def check_healthy(self) -> None:
        with anyio.fail_after(timeout(5)):
            await self.bystander.send("still there?")
            assert await self.bystander.receive() == "still there?"


def accept_for(head: bytes) -> bytes:
    """The Sec-WebSocket-Accept value that answers the request ``head``."""
    return accept_token((header_of(head, b"sec-websocket-key") or b"").decode()).encode()


def answer_101(head: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(head) + b"\r\n\r\n"
    )


async def _follow_script(stream: SocketStream, scripts: list[Script]) -> None:
    script = scripts.pop(0)
    try:
        async with stream:
            head = await read_request_head(stream)
            script.sent = script.respond(head)
            if not await send_quietly(stream, script.sent):
                return
            if script.close_after:
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.send_eof()
            reader = FrameReader(stream)
            while (got := await reader.next()) is not None:
                script.seen.append(got)
                if got.opcode == CLOSE:
                    break
    finally:
        script.done.set()


@pytest.fixture
async def raw_server(http: httpx.AsyncClient) -> AsyncIterator[RawServer]:
    scripts: list[Script] = []
    async with AsyncExitStack() as stack:
        listener = await stack.enter_async_context(
            await anyio.create_tcp_listener(local_host="127.0.0.1")
        )
        port = listener.extra(SocketAttribute.local_port)
        tg = await stack.enter_async_context(anyio.create_task_group())
        tg.start_soon(listener.serve, lambda s: _follow_script(s, scripts))
        stack.callback(tg.cancel_scope.cancel)
        echo_url = await stack.enter_async_context(running_server(echo))
        bystander = await stack.enter_async_context(connect(echo_url, http_client=http))
        yield RawServer(f"ws://127.0.0.1:{port}/", scripts, bystander)


# -- 1. the server, before the handshake ----------------------------------------------------


def check_http_answer(request: bytes, response: bytes) -> None:
    """No answer, an error status, or (for a valid upgrade request) a right 101."""
    if not response:
        return  # closed without an answer
    head, blank, _ = response.partition(b"\r\n\r\n")
    assert blank, f"incomplete response head: {response!r}"
    match = re.fullmatch(rb"HTTP/1\.1 (\d{3}) [^\r\n]*", head.split(b"\r\n")[0])
    assert match, f"bad status line: {head!r}"
    status = int(match[1])
    if status == 101:
        assert request.startswith(b"GET "), request
        keys = re.findall(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", request)
        tokens = {accept_token(k.decode()).encode() for k in keys}
        assert header_of(head, b"sec-websocket-accept") in tokens, (request, head)
        version = request.split(b"\n", 1)[0].rstrip(b"\r").rsplit(b" ", 1)[-1]
        assert re.fullmatch(rb"HTTP/1\.[1-9]", version), request  # RFC 6455 4.2.1 (1)
    else:
        assert 400 <= status < 600, head


async def send_then_read_all(url: str, data: bytes) -> bytes:
    """Send ``data`` and end our side; return everything the server answers until it closes."""
    async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
        if await send_quietly(stream, data):
            with suppress(anyio.BrokenResourceError):
                await stream.send_eof()
        return await receive_all(stream)


@fuzz(100)
@given(data=st.one_of(st.binary(max_size=2048), near_http_request()))
@example(data=b"")
@example(data=b"GET / HTTP/1.1\r\n\r\n")
@example(data=upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0"))  # was bug B6
@example(data=b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")  # a TLS ClientHello
async def test_bytes_before_the_handshake_get_an_http_error_or_a_close(
    server: Served, data: bytes
) -> None:
    with anyio.fail_after(timeout(5)):
        response = await send_then_read_all(server.url, data)
    check_http_answer(data, response)
    await server.check_healthy()


@fuzz(40)
@given(case=near_limit_request())
async def test_request_heads_near_the_16_kib_limit(server: Served, case: tuple[bytes, int]) -> None:
    head, delta = case
    with anyio.fail_after(timeout(5)):
        response = await send_then_read_all(server.url, head)
    status = response[:12]
    assert status == (b"HTTP/1.1 101" if delta <= 0 else b"HTTP/1.1 431"), (len(head), response)
    await server.check_healthy()


@pytest.mark.parametrize(
    "partial",
    [b"G", b"GET / HTTP/1.1\r\n", upgrade_request()[:-2], b"\x00\xff" * 10],
    ids=["one-byte", "request-line", "no-blank-line", "binary"],
)
async def test_a_stalled_request_head_gets_408_within_the_header_timeout(partial: bytes) -> None:
    limits = HTTPLimits(header_timeout=0.2)
    async with running_server(echo, http_limits=limits) as url:
        with anyio.fail_after(timeout(5)):
            async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
                await stream.send(partial)
                response = await receive_all(stream)  # no end of stream from us
            async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
                silent = await receive_all(stream)
    if partial.startswith(b"\x00"):
        assert response.startswith((b"HTTP/1.1 400", b"HTTP/1.1 408")), response
    else:
        assert response.startswith(b"HTTP/1.1 408"), response
    assert silent == b""  # nothing sent: closed quietly


# -- 2. the server, after the handshake ------------------------------------------------------

MARKER = frame(TEXT, b"-- end of input --", mask=KEY)
CLOSE_1000 = frame(CLOSE, close_payload(1000), mask=KEY)


@dataclass
class Seen:
    """What the peer under test sent back: data frames, pongs, its close frame, EOF."""

    messages: list[str | bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    close: int | None = None


async def collect(reader: FrameReader, seen: Seen, *, masked: bool, until: int | None) -> None:
    """Read frames into ``seen``: until ``until`` data messages, else until close and EOF."""
    while until is None or len(seen.messages) < until:
        got = await reader.next()
        if got is None:
            return
        assert (got.masked, got.rsv, got.fin) == (masked, 0, True), got
        assert seen.close is None, f"{got} after the close frame"
        if got.opcode in (TEXT, BINARY):
            seen.messages.append(got.payload.decode() if got.opcode == TEXT else got.payload)
        elif got.opcode == PONG:
            seen.pongs.append(got.payload)
        else:
            assert got.opcode == CLOSE, got
            seen.close = got.close_code


def describe(expected: Outcome) -> str:
    """A label for hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if expected.codes:
        return "close " + "/".join(str(c) for c in sorted(expected.codes))
    return "all delivered" if expected.idle else "waiting inside a frame"


def check_outcome(seen: Seen, expected: Outcome, *, all_messages: bool) -> None:
    assert seen.pongs == expected.pongs
    if all_messages:
        assert seen.messages == expected.messages
    else:
        assert seen.messages == expected.messages[: len(seen.messages)]
    if expected.codes:
        assert seen.close in expected.codes, (seen.close, expected.codes)
    else:
        assert seen.close is None, seen.close  # the peer went away: nothing to answer


async def exchange_with_server(url: str, data: bytes) -> None:
    """Send ``data`` as a client; check the echoes, pongs and close code against the oracle."""
    wire = data + MARKER
    expected = predict(wire, masked=True, max_size=LIMIT)
    event(describe(expected))
    seen = Seen()
    async with raw_peer(url) as (stream, rest):
        reader = FrameReader(stream, rest)
        sent = await send_quietly(stream, wire)
        if expected.codes:
            await collect(reader, seen, masked=False, until=None)
            check_outcome(seen, expected, all_messages=False)
        elif expected.idle:
            # Every message was delivered: all echoes arrive, then a clean close.
            assert sent
            await collect(reader, seen, masked=False, until=len(expected.messages))
            await stream.send(CLOSE_1000)
            await collect(reader, seen, masked=False, until=None)
            check_outcome(
                seen, predict(wire + CLOSE_1000, masked=True, max_size=LIMIT), all_messages=True
            )
        else:
            # Inside a frame: the server waits for more, until we leave.
            with suppress(anyio.BrokenResourceError):
                await stream.send_eof()
            await collect(reader, seen, masked=False, until=None)
            check_outcome(seen, expected, all_messages=False)


@fuzz(150)
@given(data=after_handshake_bytes(mask=KEY, limit=LIMIT))
@example(data=frame(TEXT, b"hi", mask=None))  # unmasked client frame: 1002
@example(data=frame(CLOSE, close_payload(999), mask=KEY))
@example(data=frame(CLOSE, close_payload(1005), mask=KEY))
@example(data=frame(CLOSE, close_payload(1006), mask=KEY))
@example(data=frame(CLOSE, close_payload(5000), mask=KEY))
@example(data=frame(CLOSE, close_payload(1000, b"\xff"), mask=KEY))  # 1007
@example(data=frame(PING, b"p" * 126, mask=KEY))  # control frame > 125: 1002
@example(data=frame(PING, b"p", fin=False, mask=KEY))  # fragmented control frame: 1002
@example(data=frame(0x0, b"x", mask=KEY))  # continuation without a start: 1002
@example(data=frame(TEXT, b"\xe2\x82", fin=False, mask=KEY) + frame(0x0, b"(", mask=KEY))  # 1007
@example(data=frame(BINARY, b"a" * (LIMIT + 1), mask=KEY, length=2**62))  # 1009
@example(data=frame(BINARY, b"a", mask=KEY, length=2**63))  # 64-bit length with MSB set: 1002
@example(data=frame(TEXT, "é".encode() * LIMIT, mask=KEY))  # LIMIT characters: fits
async def test_frames_to_the_server_end_in_echoes_or_the_right_close_code(
    server: Served, data: bytes
) -> None:
    with anyio.fail_after(timeout(5)):
        await exchange_with_server(server.url, data)
    await server.check_healthy()


# -- 3. the client ------------------------------------------------------------------------------

SERVER_MARKER = frame(TEXT, b"-- end of input --", mask=None)
SERVER_CLOSE_1000 = frame(CLOSE, close_payload(1000), mask=None)


async def receive_until_closed(ws: WebSocket) -> tuple[list[str | bytes], int]:
    messages: list[str | bytes] = []
    while True:
        try:
            message = await ws.receive()
        except ConnectionClosed as exc:
            return messages, exc.reason
        assert message is not None
        messages.append(message)


async def client_run(
    url: str, http: httpx.AsyncClient, *, pull: bool, **options: Any
) -> tuple[list[str | bytes], int]:
    """Connect (``await connect()`` if ``pull``, else ``async with``) and receive until closed."""
    options = {"http_client": http, "compression": False, **options}
    if pull:
        ws = await connect(url, **options)
        try:
            return await receive_until_closed(ws)
        finally:
            await ws.close()
    async with connect(url, **options) as ws:
        return await receive_until_closed(ws)


@fuzz(100)
@given(data=after_handshake_bytes(mask=None, limit=LIMIT), pull=st.booleans())
@example(data=frame(TEXT, b"hi", mask=KEY), pull=False)  # a masked server frame: 1002
@example(data=frame(CLOSE, close_payload(1006), mask=None), pull=True)
@example(
    data=frame(TEXT, b"\xe2\x82", fin=False, mask=None) + frame(0x0, b"(", mask=None), pull=False
)
@example(data=frame(BINARY, b"a" * (LIMIT + 1), mask=None, length=2**62), pull=True)  # 1009
async def test_frames_to_the_client_end_in_messages_and_the_right_close_code(
    raw_server: RawServer, http: httpx.AsyncClient, data: bytes, pull: bool
) -> None:
    wire = data + SERVER_MARKER + SERVER_CLOSE_1000
    expected = predict(wire, masked=False, max_size=LIMIT)
    event(describe(expected))
    script = Script(respond=lambda head: answer_101(head) + wire, close_after=not expected.codes)
    raw_server.scripts.append(script)
    with anyio.fail_after(timeout(5)):
        messages, code = await client_run(raw_server.url, http, pull=pull, max_message_size=LIMIT)
        await script.done.wait()
    assert messages == expected.messages
    assert code in (expected.codes or {1006})
    # What the client sent: masked pongs, then its close frame (none after end of stream).
    assert all(f.masked and f.rsv == 0 and f.fin for f in script.seen), script.seen
    assert [f.payload for f in script.seen if f.opcode == PONG] == expected.pongs
    closes = [f.close_code for f in script.seen if f.opcode == CLOSE]
    assert closes == ([code] if expected.codes else [])
    await raw_server.check_healthy()


def final_status(response: bytes) -> int | None:
    """The status of the final response head h11 finds in ``response`` (101 included)."""
    conn = h11.Connection(h11.CLIENT)
    upgrade = [("Host", "x"), ("Connection", "Upgrade"), ("Upgrade", "websocket")]
    conn.send(h11.Request(method="GET", target="/", headers=upgrade))
    conn.send(h11.EndOfMessage())
    conn.receive_data(response)
    conn.receive_data(b"")
    try:
        while True:
            got = conn.next_event()
            if isinstance(got, h11.InformationalResponse) and got.status_code != 101:
                continue
            if isinstance(got, h11.Response | h11.InformationalResponse):
                return got.status_code
            return None
    except h11.RemoteProtocolError:
        return None


@fuzz(100)
@given(data=st.one_of(st.binary(max_size=300), near_http_response()), pull=st.booleans())
@example(data=b"", pull=False)
@example(data=b"HTTP/1.1 101 Switching Protocols\r\n\r\n", pull=False)
@example(data=b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno", pull=False)
@example(
    data=b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n",
    pull=True,
)
async def test_any_answer_to_the_upgrade_gives_a_handshake_error_or_a_connection(
    raw_server: RawServer, http: httpx.AsyncClient, data: bytes, pull: bool
) -> None:
    script = Script(respond=lambda head: data.replace(ACCEPT, accept_for(head)), close_after=True)
    raw_server.scripts.append(script)
    with anyio.fail_after(timeout(10)):
        try:
            await client_run(raw_server.url, http, pull=pull, open_timeout=timeout(5))
        except HandshakeError as exc:
            event(type(exc).__name__)
        else:
            event("connected")
            assert final_status(script.sent) == 101
        await script.done.wait()
    await raw_server.check_healthy()


# -- 4. bounded memory ---------------------------------------------------------------------------


async def trickle_until_closed(stream: TrickleStream, *, server: bool, **options: Any) -> int:
    """Run a WebSocket over ``stream`` (owned mode); return the close code it ends with."""
    kind = ConnectionType.SERVER if server else ConnectionType.CLIENT
    ws = WebSocket(stream, Connection(kind), options=WebSocketOptions(**options))
    with anyio.fail_after(timeout(10)):
        async with ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
    return info.value.reason


@fuzz(100)
@given(
    limit=st.integers(1, 4000),
    receive_bytes=st.sampled_from([1, 3, 1000, 65536]) | st.integers(1, 70000),
    chunk=st.integers(1, 5000),
    declared=st.sampled_from([2**62, 2**63 - 1]) | st.integers(65536, 2**63 - 1),
    opcode=st.sampled_from([TEXT, BINARY]),
    server=st.booleans(),
)
async def test_a_huge_frame_is_cut_off_right_after_max_message_size(
    limit: int, receive_bytes: int, chunk: int, declared: int, opcode: int, server: bool
) -> None:
    """RFC 6455 7.4.1 (1009), sent on the very read that crossed the limit.

    After the close frame the driver may go on reading to discard (until the
    peer's end of stream, or ``close_timeout``); the stream here ends soon.
    """
    step = min(chunk, receive_bytes)
    assume(limit // step < 2000)  # keep each example fast
    key = KEY if server else None
    head = frame(opcode, b"", mask=key, length=declared)
    stream = TrickleStream(head, chunk=chunk, key=key, cap=len(head) + limit + 3 * step)
    code = await trickle_until_closed(
        stream, server=server, max_message_size=limit, receive_bytes=receive_bytes
    )
    assert code == 1009
    assert stream.delivered_before_send is not None
    payload_read = stream.delivered_before_send - len(head)
    assert limit < payload_read <= limit + step
    close = pop_frame(stream.sent)
    assert close is not None
    assert (close.opcode, close.close_code, close.masked) == (CLOSE, 1009, not server)
    assert not stream.sent
    assert stream.closed


async def test_a_declared_length_is_never_allocated() -> None:
    head = frame(BINARY, b"", mask=KEY, length=2**31)  # 2 GiB declared; 8 MiB sent
    stream = TrickleStream(head, chunk=16384, key=KEY, cap=2**23)
    tracemalloc.start()
    try:
        code = await trickle_until_closed(stream, server=True, max_message_size=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1009
    assert stream.delivered >= 2**23  # what came after the close frame was read...
    assert peak < 2_000_000, peak  # ...and dropped: ~ max_message_size plus a few reads


async def test_a_huge_frame_over_tcp_gets_1009_and_the_server_stays_responsive(
    server: Served,
) -> None:
    async with raw_peer(server.url) as (stream, rest):
        reader = FrameReader(stream, rest)
        seen = Seen()
        with anyio.fail_after(timeout(5)):
            await stream.send(frame(BINARY, b"", mask=KEY, length=2**62))
            for start in range(0, LIMIT + 1, 100):  # LIMIT + 1 bytes, 100 at a time
                await stream.send(b"\x00" * min(100, LIMIT + 1 - start))
            await collect(reader, seen, masked=False, until=None)
    assert (seen.messages, seen.close) == ([], 1009)
    await server.check_healthy()


# -- bugs found by the properties above, kept as reproductions -------------------------------------


async def test_send_after_the_peers_close_frame_raises_connection_closed() -> None:
    stream = GatedStream()
    ws = WebSocket(stream, Connection(ConnectionType.SERVER))
    with anyio.fail_after(timeout(5)):
        async with ws, anyio.create_task_group() as tg:
            tg.start_soon(ws.send, "first")  # holds the send lock: the socket is slow
            await anyio.wait_all_tasks_blocked()
            second = anyio.Event()
            raised: list[Exception] = []

            async def send_second() -> None:
                try:
                    await ws.send("second")  # waits for the lock
                except Exception as exc:
                    raised.append(exc)
                second.set()

            tg.start_soon(send_second)
            await anyio.wait_all_tasks_blocked()
            await stream.feed(frame(CLOSE, close_payload(1000), mask=KEY))
            await anyio.wait_all_tasks_blocked()  # the reader waits to answer the close
            stream.gate.set()
            await second.wait()
    assert len(raised) == 1
    assert isinstance(raised[0], ConnectionClosed), raised  # with the peer's 1000, ideally
    close = pop_frame(stream.sent[len(frame(TEXT, b"first", mask=None)) :])
    assert close is not None
    assert (close.opcode, close.close_code) == (CLOSE, 1000)


async def test_an_upgrade_request_with_a_body_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    request = upgrade_request().replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\nabc")
    async with running_server(echo) as url:
        with anyio.fail_after(timeout(5)):
            response = await send_then_read_all(url, request)
    assert re.match(rb"HTTP/1\.1 (101|4\d\d) ", response), response
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_malformed_request_is_refused_without_logging_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_server(echo) as url:
        with anyio.fail_after(timeout(5)):
            response = await send_then_read_all(url, b"\x00 not HTTP\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_http_1_0_upgrade_is_refused() -> None:
    async with running_server(echo) as url:
        with anyio.fail_after(timeout(5)):
            request = upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0")
            response = await send_then_read_all(url, request)
    assert re.match(rb"HTTP/1\.1 4\d\d ", response), response


async def test_a_broken_rejection_body_raises_a_handshake_error(
    raw_server: RawServer, http: httpx.AsyncClient
) -> None:
    script = Script(
        respond=lambda head: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nonly this",
        close_after=True,
    )
    raw_server.scripts.append(script)
    with anyio.fail_after(timeout(5)), pytest.raises(HandshakeError):
        await connect(raw_server.url, http_client=http)


async def test_open_timeout_also_bounds_reading_a_rejection(
    raw_server: RawServer, http: httpx.AsyncClient
) -> None:
    script = Script(respond=lambda head: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\n")
    raw_server.scripts.append(script)
    with anyio.move_on_after(timeout(1)) as scope, pytest.raises((HandshakeError, TimeoutError)):
        await connect(raw_server.url, http_client=http, open_timeout=0.1)
    assert not scope.cancelled_caught, "connect() was still reading the 403 after open_timeout"


# -- permessage-deflate: compressed input stays bounded ------------------------------------------


@fuzz(60)
@given(case=deflate_sequences(limit=LIMIT))
async def test_compressed_frames_end_in_echoes_or_1007_1009(
    server: Served, case: tuple[bytes, list[str | bytes], bool]
) -> None:
    """RFC 7692: valid compressed messages are echoed; bad or too big ones end in 1007/1009."""
    wire, messages, broken = case
    inflater = Inflater()
    echoes: list[str | bytes] = []
    close: int | None = None

    async def read_until(count: int | None) -> None:
        nonlocal close
        while count is None or len(echoes) < count:
            got = await reader.next()
            if got is None:
                return
            assert close is None, f"{got} after the close frame"
            if got.opcode in (TEXT, BINARY):
                data = inflater.message(got)
                echoes.append(data.decode() if got.opcode == TEXT else data)
            else:
                assert got.opcode == CLOSE, got
                close = got.close_code

    headers = {"Sec_WebSocket_Extensions": "permessage-deflate"}
    with anyio.fail_after(timeout(5)):
        async with raw_peer(server.url, **headers) as (stream, rest):
            reader = FrameReader(stream, rest)
            if broken:
                await send_quietly(stream, wire + CLOSE_1000)
                await read_until(None)
                assert echoes == messages[: len(echoes)]
                assert close in (1000, 1007, 1009), close  # 1000: it inflated to a message
                event(f"broken: close {close}")
            else:
                await stream.send(wire)
                await read_until(len(messages))
                await stream.send(CLOSE_1000)
                await read_until(None)
                assert (echoes, close) == (messages, 1000)
    await server.check_healthy()


async def test_a_deflate_bomb_is_cut_off_without_inflating_it() -> None:
    limit = 100_000
    bomb = Deflater().message(b"\x00" * 2**20, repeat=64)  # 64 MiB in about 64 KiB
    extensions = negotiate_extensions(
        ["permessage-deflate"], default_extensions(compression=True, max_message_size=limit)
    )[1]
    head = frame(BINARY, bomb, rsv=0x40, mask=KEY)
    stream = TrickleStream(head, chunk=1, key=KEY, cap=len(head))
    ws = WebSocket(
        stream,
        Connection(ConnectionType.SERVER, extensions=extensions),
        options=WebSocketOptions(max_message_size=limit),
    )
    tracemalloc.start()
    try:
        with anyio.fail_after(timeout(10)):
            async with ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.reason == 1009
    assert peak < 4_000_000, peak  # the limit and a few reads, not 64 MiB
