"""Plain request heads (``_http/_plain.py``) are parsed exactly as h11 parses them.

``parse_plain`` takes a request from the connection's buffer without h11 when
the head is plain and the body all there. Whatever it accepts, h11 must accept
too and turn into the same :class:`Request`, body and leftover bytes (and no
refusal); whatever it waits on, h11 must wait on too. These tests check that on
heads built from a grammar with many odd pieces (hypothesis), and that a
connection serving plain requests behaves as one serving h11's: bodies,
pipelining, requests cut in pieces, and the API paths that hand a plain
request over to h11 (streamed responses, errors, HEAD, unread bodies).
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from anywire._http import HTTPLimits, Request, ServerConnection
from anywire._http._plain import NotPlain, PlainRequest, parse_plain
from anywire._http._request import build_request, refusal_for

from .test_http_connection import Client, Reply, build, serving

pytestmark = pytest.mark.anyio

LIMITS = HTTPLimits()
MAX_BODY = 64

METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS", b"CONNECT", b"get", b"G@T", b""])
TARGETS = st.one_of(
    st.sampled_from(
        [
            b"/",
            b"/engine.io/?EIO=4&transport=polling&t=abc&sid=x",
            b"/a%20b?q=1",
            b"*",
            b"http://example.com/p?q",
            b"example.com:443",
            b"/caf\xe9",
            b"/a b",
            b"",
        ]
    ),
    st.binary(max_size=6),
)
VERSIONS = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1", b"http/1.1"]
)
NAMES = st.one_of(
    st.sampled_from(
        [
            b"Host",
            b"host",
            b"HOST",
            b"Content-Length",
            b"content-length",
            b"Transfer-Encoding",
            b"Connection",
            b"Expect",
            b"Upgrade",
            b"User-Agent",
            b"Accept",
            b"X-Custom_1",
            b"bad name",
            b" folded",
            b"",
        ]
    ),
    st.from_regex(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]{1,8}", fullmatch=True),
    st.binary(max_size=5),
)
VALUES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"0",
            b"3",
            b"03",
            b"3, 3",
            b" 3 ",
            b"99999999999999999999999",
            b"chunked",
            b"close",
            b"keep-alive",
            b"upgrade",
            b"100-continue",
            b"websocket",
            b"example.com",
            b"a  \t b",
            b"caf\xe9",
            b"\x7f\x01",
            b"a\x00",
            b"a\x0bb",
            b"a\x0cb",
            b"a\rb",
            b"a\nb",
        ]
    ),
    st.binary(max_size=8),
)
FIELDS = st.lists(
    st.tuples(NAMES, st.sampled_from([b":", b": ", b":\t", b" : ", b""]), VALUES), max_size=6
)
LINE_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


PLAIN_METHODS = st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS", b"PUT"])
PLAIN_TARGETS = st.from_regex(rb"/[\x21-\x7e]{0,12}", fullmatch=True)
PLAIN_NAMES = st.one_of(
    st.sampled_from([b"Content-Length", b"content-length", b"Connection", b"HOST", b"Accept"]),
    st.from_regex(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]{1,8}", fullmatch=True),
)
PLAIN_VALUES = st.one_of(
    st.sampled_from([b"0", b"3", b"6", b"close", b"keep-alive"]),
    st.from_regex(
        rb"[\x21-\x7e\x80-\xff]{0,5}(?:[ \t]{1,2}[\x21-\x7e\x80-\xff]{1,5}){0,2}", fullmatch=True
    ),
)
PLAIN_FIELDS = st.lists(
    st.tuples(PLAIN_NAMES, st.sampled_from([b":", b": ", b":\t ", b":  "]), PLAIN_VALUES),
    max_size=5,
)


@st.composite
def buffers(draw: st.DrawFn) -> bytes:
    """A request head (mostly plain, or anything), some body bytes, maybe more after it."""
    odd = draw(st.integers(0, 3)) == 0
    method = draw(METHODS if odd else PLAIN_METHODS)
    target = draw(TARGETS if odd else PLAIN_TARGETS)
    version = draw(VERSIONS if odd else st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    fields = draw(PLAIN_FIELDS)
    if odd or draw(st.integers(0, 3)) == 0:
        fields += draw(FIELDS)  # maybe one odd piece among plain ones
    if draw(st.integers(0, 4)) > 0:
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", b": ", b"example.com"))
    ends = LINE_ENDS if odd else st.just(b"\r\n")
    lines = [name + sep + value + draw(ends) for name, sep, value in fields]
    head = method + b" " + target + b" " + version + draw(ends) + b"".join(lines)
    head += draw(st.sampled_from([b"\r\n", b"\n", b""]) if odd else st.just(b"\r\n"))
    tail = draw(st.sampled_from([b"", b"abc", b"abcdef", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]))
    cut = draw(st.integers(0, len(head) + len(tail)))
    return (head + tail)[: cut if draw(st.integers(0, 3)) == 0 else None]


def h11_reading(data: bytes) -> tuple[h11.Connection, object]:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=LIMITS.max_header_bytes)
    if data:  # b"" would mean the end of input
        conn.receive_data(data)
    try:
        return conn, conn.next_event()
    except h11.RemoteProtocolError as exc:
        return conn, exc


PLAIN_EXAMPLES = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n",
    b"GET /a%20b?q HTTP/1.0\r\nX-MiXed:  v \r\nACCEPT: */*\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\nEmpty:\r\nObs: caf\xe9\r\n\r\n",
]


@settings(max_examples=500)
@given(data=buffers())
@example(data=PLAIN_EXAMPLES[0])
@example(data=PLAIN_EXAMPLES[1])
@example(data=PLAIN_EXAMPLES[2])
@example(data=PLAIN_EXAMPLES[3])
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc")
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab")
@example(data=b"\x16\x03\x01")
@example(data=b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
def test_plain_requests_are_h11s_requests(data: bytes) -> None:
    buffer = bytearray(data)
    plain = parse_plain(buffer, LIMITS.max_header_bytes, MAX_BODY)
    assert buffer == data  # parse_plain reads, the connection consumes
    conn, event = h11_reading(data)
    if plain is NotPlain.INCOMPLETE:
        assert event is h11.NEED_DATA, "h11 does not wait for more here"
        return
    if plain is NotPlain.DECLINED:
        return  # h11's path: parsed or refused there
    assert isinstance(plain, PlainRequest)
    assert isinstance(event, h11.Request), f"h11 refuses it: {event!r}"
    assert refusal_for(event, LIMITS, len(data)) is None
    assert build_request(event) == plain.request
    assert not conn.they_are_waiting_for_100_continue
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    assert conn.their_state in (h11.DONE, h11.MUST_CLOSE)  # no upgrade proposed, not paused
    assert body == data[plain.head_end : plain.end]
    assert conn.trailing_data[0] == data[plain.end :]


@pytest.mark.parametrize("data", PLAIN_EXAMPLES)
def test_common_heads_are_plain(data: bytes) -> None:
    assert isinstance(parse_plain(bytearray(data), 16384, MAX_BODY), PlainRequest)


@pytest.mark.parametrize(
    ("data", "max_header_bytes", "max_body"),
    [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab",
            16384,
            64,
        ),  # body not all here
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 16384, 2),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 40, 64),  # head above half the limit
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 16384, 64),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", 16384, 64),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 16384, 64),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", 30, 64),  # incomplete, already above half the limit
    ],
)
def test_unusual_requests_go_to_h11(data: bytes, max_header_bytes: int, max_body: int) -> None:
    assert parse_plain(bytearray(data), max_header_bytes, max_body) is NotPlain.DECLINED


def test_an_incomplete_plain_head_waits() -> None:
    assert parse_plain(bytearray(b"GET / HTTP/1.1\r\nHo"), 16384, 64) is NotPlain.INCOMPLETE
    assert parse_plain(bytearray(), 16384, 64) is NotPlain.INCOMPLETE


# -- a connection serving plain requests ------------------------------------------------


async def echo_body(conn: ServerConnection, request: Request) -> None:
    body = await conn.read_body()
    await conn.send_response(200, [(b"x-path", request.path.encode())], body)


async def test_bodies_pipelining_and_split_heads() -> None:
    async with serving(echo_body) as (client, server):
        post = build("POST", "/p", [("content-length", "5")]) + b"hello"
        await client.send(post + build(target="/g") + post[:7])
        for path, body in ((b"/p", b"hello"), (b"/g", b"")):
            client.expect()
            reply = await client.read_response()
            assert (reply.status, reply.headers[b"x-path"], reply.body) == (200, path, body)
        await client.send(post[7:30])
        await client.send(post[30:])
        client.expect()
        assert (await client.read_response()).body == b"hello"
        # the body arrives later than its head: h11 reads it
        await client.send(post[:-2])
        await client.send(post[-2:])
        client.expect()
        assert (await client.read_response()).body == b"hello"
        # after an h11 request, plain ones again
        assert (await client.request("GET", "/again")).headers[b"x-path"] == b"/again"
    assert len(server.requests) == 5


async def test_plain_requests_handed_to_h11() -> None:
    async def handler(conn: ServerConnection, request: Request) -> None:
        if request.path == "/stream":
            assert await conn.receive_body() == b"abc"
            await conn.start_response(200, [(b"x", b"1")])
            await conn.send_body(b"stream")
            await conn.end_response()
        elif request.path == "/unread":  # the body is dropped, the connection kept
            await conn.send_response(200, [], b"unread")
        elif request.path == "/head":
            await conn.send_response(200, [], b"ignored")
        else:
            await conn.send_error(404, "nothing here")

    async def post(client: Client, target: str) -> Reply:
        await client.send(build("POST", target, body=b"abc"))
        client.expect("POST")
        return await client.read_response()

    async with serving(handler) as (client, server):
        reply = await post(client, "/stream")
        assert (reply.status, reply.body) == (200, b"stream")
        assert (await post(client, "/unread")).body == b"unread"
        reply = await client.request("HEAD", "/head")
        assert (reply.status, reply.headers[b"content-length"], reply.body) == (200, b"7", b"")
        reply = await client.request("GET", "/missing")
        assert reply.status == 404
        assert await client.read_all() == b""
    assert server.outcome == "closed"
