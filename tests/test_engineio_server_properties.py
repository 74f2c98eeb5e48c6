"""Property tests of the Engine.IO server's ASGI app, driven in-process (no sockets).

Arbitrary requests (query strings, methods, paths, sids, headers, POST bodies of
any bytes, lying Content-Length, over ``max_http_buffer_size``) and arbitrary
WebSocket messages after a handshake: every request gets one well-formed
response with a status the reference server uses (never a 500, never an
exception escaping) or a proper close, and an unrelated open session stays
healthy. Runs on both backends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from anywire.engineio import ASGIApp, AsyncServer
from tests.conftest import timeout

pytestmark = pytest.mark.anyio

Message = dict[str, Any]
MAX = 100  # max_http_buffer_size: small, so that bodies past it are cheap
STATUSES = {200, 400, 403, 404, 413}
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Exchange:
    """One in-process ASGI exchange: what the app sent, and whether it returned."""

    sent: list[Message] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def http(
    app: ASGIApp,
    method: str = "GET",
    query: bytes = b"",
    body: list[bytes] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    path: str = "/engine.io/",
    truncated: bool = False,
) -> Exchange:
    """Call ``app`` with one HTTP request; the body comes in ``body`` chunks, then
    the client goes away (``truncated``: before the last chunk said so)."""
    chunks = list(body or [b""])
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": truncated or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 12345),
        "server": ("testserver", 80),
    }
    exchange = Exchange()

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        exchange.sent.append(message)

    with anyio.fail_after(timeout(5)):
        await app(scope, receive, send)
    return exchange


def assert_well_formed(exchange: Exchange) -> None:
    kinds = [m["type"] for m in exchange.sent]
    assert kinds == ["http.response.start", "http.response.body"], kinds
    assert exchange.status in STATUSES
    headers = dict(exchange.sent[0]["headers"])
    assert int(headers[b"content-length"]) == len(exchange.body)
    if exchange.status != 200 and headers.get(b"content-type") == b"application/json":
        error = json.loads(exchange.body)
        assert isinstance(error["code"], int)
        assert isinstance(error["message"], str)


async def handshake(app: ASGIApp) -> str:
    exchange = await http(app, query=b"EIO=4&transport=polling")
    assert exchange.status == 200
    text = exchange.body.decode()
    assert text.startswith("0")
    sid: str = json.loads(text[1:])["sid"]
    return sid


@dataclass
class World:
    eio: AsyncServer
    app: ASGIApp
    victim: str  # the target of arbitrary requests
    bystander: str  # must not notice
    received: list[tuple[str, Any]]


@asynccontextmanager
async def world() -> AsyncIterator[World]:
    eio = AsyncServer(max_http_buffer_size=MAX, shutdown_timeout=0, async_handlers=False)
    received: list[tuple[str, Any]] = []

    @eio.on("message")
    def message(sid: str, data: Any) -> None:
        received.append((sid, data))

    app = ASGIApp(eio)
    async with eio:
        victim, bystander = await handshake(app), await handshake(app)
        yield World(eio, app, victim, bystander, received)


async def assert_healthy(w: World) -> None:
    """The bystander still sends and receives over polling."""
    sid = w.bystander
    assert w.eio.transport(sid) == "polling"
    await w.eio.send(sid, "still there?")
    poll = await http(w.app, query=f"EIO=4&transport=polling&sid={sid}".encode())
    assert (poll.status, poll.body) == (200, b"4still there?")
    post = await http(w.app, "POST", f"EIO=4&transport=polling&sid={sid}".encode(), [b"4yes"])
    assert (post.status, post.body) == (200, b"ok")
    assert w.received[-1] == (sid, "yes")


# -- strategies ---------------------------------------------------------------------------

SIDS = st.sampled_from(["victim", "bystander-never", "", "x" * 30, "../..", "%00"]) | st.text(
    max_size=25
)
METHODS = st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD", "PATCH"]) | st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8
)
ENGINEIO_PATH = st.just("/engine.io/")
PATHS = st.one_of(
    ENGINEIO_PATH,
    ENGINEIO_PATH,
    ENGINEIO_PATH,
    st.sampled_from(["/engine.io", "/engine.io/x", "/", "/other"]),
    st.text(max_size=20).map(lambda s: "/" + s),
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            [b"origin", b"content-type", b"content-length", b"accept-encoding", b"x-any"]
        ),
        st.sampled_from(
            [b"http://testserver", b"http://evil.example", b"application/octet-stream",
             b"text/plain", b"999999999999999", b"-1", b"gzip", b"deflate, gzip;q=0.5"]
        ) | st.binary(max_size=20),
    ),
    max_size=4,
)  # fmt: skip
BODY_PIECES = st.sampled_from(
    [b"4hello", b"1", b"2", b"3", b"5", b"6", b"40", b"bAAEC", b"b!!", b"4a\x1e4b", b"\x1e", b"9"]
) | st.binary(max_size=40)
BODIES = st.lists(
    st.one_of(
        BODY_PIECES,
        st.lists(BODY_PIECES, max_size=4).map(b"\x1e".join),
        st.integers(MAX - 2, 3 * MAX).map(lambda n: b"4" + b"x" * n),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def queries(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A query string and the sid it names (``"victim"`` is replaced by the real one)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=60)), None
    params: list[tuple[str, str]] = []
    eio = draw(st.sampled_from(["4", "3", "", "x", None]))
    transport = draw(st.sampled_from(["polling", "websocket", "flash", "", None]))
    sid = draw(st.none() | SIDS)
    for name, value in (("EIO", eio), ("transport", transport), ("sid", sid)):
        if value is not None:
            params.append((name, value))
    extra = draw(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=2))
    params += extra
    text = "&".join(f"{k}={v}" for k, v in params)
    return text.encode("utf-8", "surrogatepass"), sid


# -- HTTP ---------------------------------------------------------------------------------


@SETTINGS
@given(
    method=METHODS,
    path=PATHS,
    query=queries(),
    headers=HEADERS,
    body=BODIES,
    truncated=st.booleans(),
)
async def test_any_http_request_gets_a_well_formed_answer(
    method: str,
    path: str,
    query: tuple[bytes, str | None],
    headers: list[tuple[bytes, bytes]],
    body: list[bytes],
    truncated: bool,
) -> None:
    raw, sid = query
    async with world() as w:
        raw = raw.replace(b"sid=victim", b"sid=" + w.victim.encode())
        exchange = await http(w.app, method, raw, body, headers, path, truncated)
        if not exchange.sent:  # only a parked poll whose client went away sends nothing
            assert (method, sid) == ("GET", "victim")
            assert path.startswith("/engine.io")
        else:
            assert_well_formed(exchange)
        event(f"status {exchange.status}")
        await assert_healthy(w)


@SETTINGS
@given(body=BODIES, truncated=st.booleans())
async def test_any_post_to_a_live_session(body: list[bytes], truncated: bool) -> None:
    async with world() as w:
        query = f"EIO=4&transport=polling&sid={w.victim}".encode()
        exchange = await http(w.app, "POST", query, body, truncated=truncated)
        assert_well_formed(exchange)
        event(f"status {exchange.status}")
        size = sum(map(len, body))
        if size > MAX:
            assert exchange.status == 413
        if exchange.status != 200:
            assert w.victim not in w.eio._conns or w.eio._conns[w.victim].closed_reason
        await assert_healthy(w)


async def test_huge_content_length_claim_is_not_trusted() -> None:
    async with world() as w:
        query = f"EIO=4&transport=polling&sid={w.victim}".encode()
        headers = [(b"content-length", b"99999999999999999999")]
        exchange = await http(w.app, "POST", query, [b"4small"], headers)
        assert (exchange.status, exchange.body) == (200, b"ok")
        assert w.received == [(w.victim, "small")]


# -- WebSocket ----------------------------------------------------------------------------

FRAMES = st.lists(
    st.one_of(
        st.sampled_from(["2probe", "5", "4hi", "2", "3", "1", "6", "", "0", "9", "3probe"]),
        st.text(max_size=30),
        st.binary(max_size=30),
        st.integers(MAX - 2, 2 * MAX).map(lambda n: "4" + "x" * n),
    ),
    max_size=6,
)


async def websocket(app: ASGIApp, query: bytes, frames: list[str | bytes]) -> list[Message]:
    """A WebSocket exchange: connect, ``frames``, then the client disconnects."""
    incoming: list[Message] = [{"type": "websocket.connect"}]
    for frame in frames:
        key = "text" if isinstance(frame, str) else "bytes"
        incoming.append({"type": "websocket.receive", key: frame})
    incoming.append({"type": "websocket.disconnect", "code": 1000})
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/engine.io/",
        "raw_path": b"/engine.io/",
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 12345),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    sent: list[Message] = []
    closed = False

    async def receive() -> Message:  # the client goes away after its last frame
        return incoming.pop(0) if len(incoming) > 1 else incoming[0]

    async def send(message: Message) -> None:
        nonlocal closed
        assert not closed, f"{message['type']} after websocket.close"
        sent.append(message)
        closed = message["type"] == "websocket.close"

    with anyio.fail_after(timeout(5)):
        await app(scope, receive, send)
    return sent


def assert_proper_websocket(sent: list[Message]) -> None:
    kinds = [m["type"] for m in sent]
    assert set(kinds) <= {"websocket.accept", "websocket.send", "websocket.close"}, kinds
    if "websocket.accept" in kinds:
        assert kinds[0] == "websocket.accept"
    else:
        assert kinds == ["websocket.close"]  # refused: the host answers 403
    assert kinds.count("websocket.close") <= 1
    for message in sent:
        if message["type"] == "websocket.send":
            assert (message.get("text") is None) != (message.get("bytes") is None)


@SETTINGS
@given(frames=FRAMES, upgrade=st.booleans(), bad_query=st.booleans())
async def test_any_websocket_messages_end_properly(
    frames: list[str | bytes], upgrade: bool, bad_query: bool
) -> None:
    async with world() as w:
        query = "EIO=4&transport=websocket" + (f"&sid={w.victim}" if upgrade else "")
        if bad_query:
            query = query.replace("EIO=4", "EIO=3")
        sent = await websocket(w.app, query.encode(), frames)
        assert_proper_websocket(sent)
        event(" ".join(sorted({m["type"] for m in sent})))
        if bad_query:
            assert [m["type"] for m in sent] == ["websocket.close"]
        await assert_healthy(w)
