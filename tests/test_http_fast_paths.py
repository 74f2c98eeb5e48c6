"""The fast paths of the server connection behave like the general ones.

``ServerConnection.send_response`` writes the head of a kept-alive response
to a complete request itself (``response_head``); anything unusual goes
through h11. These tests compare its bytes with h11's for many header sets
(hypothesis), check that plain responses do take that path, and that the
connection behaves after it as after an h11 response (keep-alive,
pipelining, misuse). Inside ``idle_timeouts()`` the wait for a request moves
one cancel scope's deadline: the timeouts still hold, and only that wait.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import anyio
import anyio.abc
import h11
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from anywire._http import HTTPLimits, Request, ServerConnection, _request
from anywire._http._core import IdleWatch
from anywire._http._request import build_request, has_header, reason_phrase, response_head
from anywire.errors import LocalProtocolError, RemoteProtocolError

from .conftest import timeout
from .test_http_connection import Client, build, memory_pair, serving

pytestmark = pytest.mark.anyio

Fields = list[tuple[bytes, bytes]]


def h11_response(status: int, headers: Fields, body: bytes) -> tuple[bytes, bool] | None:
    """h11's bytes for ``send_response`` after a GET, and whether it keeps alive; None: refused."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    fields = list(headers)
    if not (
        status in (204, 304)
        or has_header(fields, b"content-length")
        or has_header(fields, b"transfer-encoding")
    ):
        fields.append((b"content-length", str(len(body)).encode()))
    try:
        data = conn.send(
            h11.Response(status_code=status, headers=fields, reason=reason_phrase(status))
        )
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return None
    return data, conn.our_state is h11.DONE


NAMES = st.one_of(
    st.sampled_from(
        [
            b"content-type",
            b"Content-Length",
            b"content-length",
            b"HOST",
            b"Connection",
            b"Transfer-Encoding",
            b"keep-alive",
            b"date",
            b"Server",
            b"X-Custom_1",
        ]
    ),
    st.from_regex(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]{1,12}", fullmatch=True),
    st.binary(max_size=6),
)
VALUES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"5",
            b"05",
            b"5, 5",
            b" 5",
            b"5 ",
            b"close",
            b"keep-alive",
            b"chunked",
            b"text/plain; charset=utf-8",
            b"a  \t b",
            b"caf\xe9",
            b"a\r\nb",
            b"a\x00",
            b"\x7f",
            b"\x1f",
        ]
    ),
    st.binary(max_size=8),
)
TOKENS = st.from_regex(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]{1,12}", fullmatch=True)
PLAIN_VALUES = st.from_regex(
    rb"[\x21-\x7e\x80-\xff]{0,5}(?:[ \t]{1,2}[\x21-\x7e\x80-\xff]{1,5}){0,2}", fullmatch=True
)
HEADER_SETS = st.one_of(
    st.lists(st.tuples(TOKENS, PLAIN_VALUES), max_size=6),  # mostly written without h11
    st.lists(st.tuples(NAMES, VALUES), max_size=6),  # mostly left to h11
)
STATUSES = st.one_of(
    st.sampled_from([100, 199, 200, 201, 204, 299, 304, 404, 500, 999, 1000]),
    st.integers(-1, 1100),
)


@given(
    status=STATUSES,
    headers=HEADER_SETS,
    body=st.sampled_from([b"", b"hello", b"x" * 50]),
)
@example(status=200, headers=[(b"Content-Length", b"05")], body=b"hello")
@example(status=200, headers=[(b"content-length", b"5"), (b"content-length", b"5")], body=b"hello")
@example(status=200, headers=[(b"x", b"1"), (b"Host", b"h")], body=b"")
@example(status=404, headers=[(b"connection", b"keep-alive")], body=b"hello")
def test_response_head_is_h11s_head(status: int, headers: Fields, body: bytes) -> None:
    head = response_head(status, headers, len(body))
    assert response_head(status, headers, len(body)) == head  # again, from the field cache
    if head is None:
        return  # h11 writes (or refuses) this one
    reference = h11_response(status, headers, body)
    assert reference is not None, "h11 refuses what the fast path would write"
    assert head + body == reference[0]
    assert reference[1], "h11 would close the connection after this response"


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, [(b"content-type", b"application/json"), (b"content-length", b"2")], b"{}"),
        (404, [(b"Content-Type", b"text/plain; charset=utf-8")], b"not found"),
        (200, [(b"set-cookie", b"a=b; Path=/"), (b"set-cookie", b"c=d"), (b"x", b"")], b""),
        (299, [(b"date", b"Sun, 22 Nov 2026 07:40:19 GMT"), (b"server", b"anywire")], b"x"),
        (500, [(b"x-obs", b"caf\xe9 \t ok")], b"oops"),
    ],
)
def test_plain_responses_take_the_fast_path(status: int, headers: Fields, body: bytes) -> None:
    head = response_head(status, headers, len(body))
    assert head is not None
    assert (head + body, True) == h11_response(status, headers, body)


def test_request_headers_are_h11s_lowercased_fields() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET /a%20b?q HTTP/1.1\r\nHost: x\r\nX-MiXed:  v \r\nACCEPT: */*\r\n\r\n")
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    request = build_request(event)
    assert request.headers == tuple(event.headers)
    assert request.headers[1] == (b"x-mixed", b"v")
    assert (request.path, request.raw_path, request.query_string) == ("/a b", b"/a%20b", b"q")


def test_the_field_cache_is_bounded() -> None:
    for n in range(3000):
        assert response_head(200, [(b"x-n", b"%d" % n)], 0) is not None
    assert 0 < len(_request._FIELD_LINES) <= _request._FIELD_LINES_MAX
    long_value = b"v" * (_request._FIELD_VALUE_MAX + 1)
    assert response_head(200, [(b"x-long", long_value)], 0) is not None
    assert (b"x-long", long_value) not in _request._FIELD_LINES


@pytest.mark.parametrize(
    ("status", "headers", "length"),
    [
        (204, [], 0),
        (304, [], 0),
        (101, [], 0),
        (200, [(b"connection", b"close")], 0),
        (200, [(b"transfer-encoding", b"chunked")], 0),
        (200, [(b"content-length", b"3")], 2),
        (200, [("content-type", "text/plain")], 0),
        (200, [(b"bad name", b"x")], 0),
        (200, [(b"x", b"a\nb")], 0),
    ],
)
def test_unusual_responses_go_through_h11(
    status: int, headers: list[tuple[object, object]], length: int
) -> None:
    assert response_head(status, headers, length) is None  # type: ignore[arg-type]


async def test_keep_alive_and_pipelining_after_fast_responses() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, [(b"content-type", b"text/plain")], request.path.encode())

    async with serving(handler) as (client, server):
        await client.send(build(target="/a") + build(target="/b") + build(target="/c"))
        for path in (b"/a", b"/b", b"/c"):
            client.expect()
            reply = await client.read_response()
            assert (reply.status, reply.body) == (200, path)
            assert reply.headers[b"content-length"] == str(len(path)).encode()
        reply = await client.request("GET", "/d", [("connection", "close")])
        assert (reply.status, reply.headers[b"connection"]) == (200, b"close")
        assert await client.read_all() == b""
    assert server.outcome == "closed"
    assert len(server.requests) == 4


async def test_misuse_after_a_fast_response() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, [], b"one")
        assert conn.body_complete
        assert await conn.receive_body() == b""
        with pytest.raises(LocalProtocolError, match="already started"):
            await conn.send_response(200, [], b"two")
        with pytest.raises(LocalProtocolError, match="already started"):
            await conn.switch_protocols()
        with pytest.raises(LocalProtocolError, match="start_response"):
            await conn.send_body(b"x")
        await conn.send_error(500)  # too late for a response: the connection is cut
        assert conn.closed

    async with serving(handler) as (client, server):
        await client.send(build())
        data = await client.read_all()
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none"
    assert server.outcome == "closed"


async def test_client_eof_after_a_fast_response_ends_the_connection() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, [], b"ok")

    async with serving(handler) as (client, server):
        await client.send(build())
        await client.stream.send_eof()
        client.expect()
        assert (await client.read_response()).body == b"ok"
        with anyio.fail_after(timeout(5)):
            await server.done.wait()
    assert server.outcome == "closed"


# -- idle_timeouts() ----------------------------------------------------------------


@pytest.fixture(params=["timer", "watch"])
def idle_watch(request: pytest.FixtureRequest) -> bool:
    """Whether the idle block's deadlines are kept by an IdleWatch (else a moved timer)."""
    return bool(request.param == "watch")


def start_watch(tg: anyio.abc.TaskGroup, limits: HTTPLimits, use: bool) -> IdleWatch | None:
    watch = IdleWatch.for_limits(limits) if use else None
    if watch is not None:
        tg.start_soon(watch.run)
    return watch


async def serve_in_idle_block(
    conn: ServerConnection, work: float = 0, watch: IdleWatch | None = None
) -> tuple[int, bool]:
    """Serve requests inside ``idle_timeouts()``: (requests served, block left by a return).

    The application takes ``work`` seconds per request.
    """
    served = 0
    returned = False
    with conn.idle_timeouts(watch):
        while (request := await conn.next_request()) is not None:
            await anyio.sleep(work)
            await conn.send_response(200, [], request.path.encode())
            served += 1
        returned = True
    await conn.aclose()
    return served, returned


async def test_idle_timeout_inside_the_block_cancels_it(idle_watch: bool) -> None:
    limits = HTTPLimits(keep_alive_timeout=0.2, header_timeout=timeout(5))
    async with memory_pair() as (client_stream, server_stream):
        conn = ServerConnection(server_stream, limits=limits)
        client = Client(client_stream)
        with anyio.fail_after(timeout(5)):
            async with anyio.create_task_group() as tg:
                watch = start_watch(tg, limits, idle_watch)
                outcome: list[tuple[int, bool]] = []
                tg.start_soon(lambda: _record(outcome, serve_in_idle_block(conn, 0, watch)))
                assert (await client.request(target="/a")).body == b"/a"
                assert (await client.request(target="/b")).body == b"/b"
                waited = anyio.current_time()
                assert await client.read_all() == b""  # closed after the keep-alive timeout
                waited = anyio.current_time() - waited
                tg.cancel_scope.cancel()
    assert outcome == [(2, False)]
    assert conn.closed
    assert waited >= 0.2 - 0.01  # not before the timeout (a coarse clock may round)
    if watch is not None:
        assert watch.waiting == {}


def test_an_idle_watch_ticks_a_tenth_of_the_shortest_timeout() -> None:
    assert IdleWatch.for_limits(HTTPLimits()).tick == 0.5  # keep-alive 5 s, header 10 s
    assert IdleWatch.for_limits(HTTPLimits(keep_alive_timeout=60, header_timeout=30)).tick == 1
    assert IdleWatch.for_limits(HTTPLimits(keep_alive_timeout=0.02)).tick == 0.005
    assert IdleWatch.for_limits(HTTPLimits(keep_alive_timeout=None, header_timeout=None)) is None
    with pytest.raises(ValueError, match="tick"):
        IdleWatch(0)


async def test_a_slow_application_inside_the_block_is_not_cut(idle_watch: bool) -> None:
    limits = HTTPLimits(keep_alive_timeout=0.1, header_timeout=0.1)
    async with memory_pair() as (client_stream, server_stream):
        conn = ServerConnection(server_stream, limits=limits)
        client = Client(client_stream)
        with anyio.fail_after(timeout(5)):
            async with anyio.create_task_group() as tg:
                watch = start_watch(tg, limits, idle_watch)
                outcome: list[tuple[int, bool]] = []
                # the application works past both timeouts:
                tg.start_soon(lambda: _record(outcome, serve_in_idle_block(conn, 0.3, watch)))
                await client.send(build(target="/slow"))
                client.expect()
                assert (await client.read_response()).body == b"/slow"
                await client_stream.send_eof()
                assert await client.read_all() == b""
                tg.cancel_scope.cancel()
    assert outcome == [(1, True)]  # the client's EOF ended it: next_request returned None


async def test_a_partial_head_inside_the_block_still_gets_408() -> None:
    limits = HTTPLimits(keep_alive_timeout=timeout(5), header_timeout=0.2, close_linger=0.1)
    async with memory_pair() as (client_stream, server_stream):
        conn = ServerConnection(server_stream, limits=limits)
        client = Client(client_stream)
        with anyio.fail_after(timeout(5)):
            async with anyio.create_task_group() as tg:
                outcome: list[object] = []
                tg.start_soon(lambda: _record(outcome, serve_in_idle_block(conn)))
                await client.send(b"GET / HTTP/1.1\r\nhost: x\r\n")  # never finished
                data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert len(outcome) == 1
    assert isinstance(outcome[0], RemoteProtocolError)


async def _record(outcome: list[Any], work: Awaitable[Any]) -> None:
    try:
        outcome.append(await work)
    except RemoteProtocolError as exc:
        outcome.append(exc)


@pytest.mark.parametrize(("headers", "version"), [([("connection", "close")], "1.1"), ([], "1.0")])
async def test_a_response_that_ends_the_connection_closes_it_at_once(
    headers: list[tuple[str, str]], version: str
) -> None:
    closed_after_response: list[bool] = []

    async def handler(conn: ServerConnection, request: Request) -> None:
        await conn.send_response(200, [(b"content-type", b"text/plain")], b"bye")
        closed_after_response.append(conn.closed)

    async with serving(handler) as (client, server):
        await client.send(build("GET", "/", headers, version=version))
        data = await client.read_all()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nbye")
    assert closed_after_response == [True]
    assert server.outcome == "closed"
