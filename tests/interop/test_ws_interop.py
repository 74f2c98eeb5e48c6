"""anywire's WebSocket client and server against real peers, on asyncio and trio.

Four pairings (docs/interop.md lists what each one covers):

1. our client -> the ``websockets`` asyncio server, run on its own event loop in a thread;
2. our server -> the ``websockets`` sync client, run in a worker thread;
3. our client -> node ``ws`` (``node/ws_server.js``, a child process);
4. our server -> node ``ws`` (``node/ws_client.js``, a child process).

The websockets peers never touch the test's event loop, so they behave the same under
both backends. Every server is owned by an ``async with`` block and stopped on exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed as PeerClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websockets_connect

from anywire.errors import ConnectionClosed, HandshakeRejected
from anywire.websocket import WebSocket, connect
from tests.conftest import timeout
from tests.ws_helpers import echo, running_server

if TYPE_CHECKING:
    from tests.interop.conftest import Event, NodePeers

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

MIB = 2**20


def incompressible() -> bytes:
    """1 MiB that deflate cannot shrink; ws_client.js builds the same bytes."""
    return b"".join(hashlib.sha256(f"anywire-{i}".encode()).digest() for i in range(32768))


#: What every echo test sends, in this order (ws_client.js's ``echo`` scenario too).
MESSAGES: list[str | bytes] = [
    "hello ✓",
    bytes([0, 1, 2, 255]),
    "anywire " * 8192,  # 64 KiB that deflate shrinks a lot
    "x" * MIB,  # exactly anywire's default max_message_size
    incompressible(),
]

#: websockets' ``max_size`` for the echo tests. websockets checks it against each
#: frame's payload *before* inflating it, and deflate makes incompressible data about
#: 0.25% larger (a 5-byte header per stored block), so its default of exactly 1 MiB
#: refuses a compressed 1 MiB message of random bytes -- from any deflating sender.
PEER_MAX_SIZE = 2 * MIB

#: Fragmented messages (fragments, is_text): a text one split inside "✓" (e2 9c 93),
#: a binary one, and a text one whose first fragment is big enough to be compressed.
FRAGMENTED: list[tuple[list[bytes], bool]] = [
    ([b"frag-", b"ment-ed \xe2", b"\x9c\x93"], True),
    ([b"\x00\x01\x02", b"\xfd\xfe\xff"], False),
    ([b"a" * 4096, b"b" * 4096, b"c"], True),
]


def reassembled(fragments: list[bytes], is_text: bool) -> str | bytes:
    data = b"".join(fragments)
    return data.decode() if is_text else data


#: What node's ws_server.js sends on /fragmented (the same three messages).
FRAGMENTED_MESSAGES = [reassembled(*message) for message in FRAGMENTED]

#: (our compression, the peer's compression); deflate is negotiated only when both are on.
COMPRESSION = pytest.mark.parametrize(
    ("ours", "theirs"),
    [(True, True), (True, False), (False, True), (False, False)],
    ids=["deflate", "peer-plain", "we-plain", "plain"],
)


def digest(message: str | bytes) -> tuple[bool, int, str]:
    """(binary, length in bytes, sha256): what ws_client.js prints for a message."""
    data = message.encode() if isinstance(message, str) else message
    return isinstance(message, bytes), len(data), hashlib.sha256(data).hexdigest()


def extensions(headers: Sequence[tuple[str, str]]) -> str:
    return ", ".join(value for name, value in headers if name == "sec-websocket-extensions")


async def receive(ws: WebSocket) -> str | bytes:
    with anyio.fail_after(timeout(10)):
        message = await ws.receive()
    assert message is not None
    return message


async def assert_echoed(ws: WebSocket, messages: Sequence[str | bytes]) -> None:
    """Send each message and check that the peer echoes it unchanged."""
    for message in messages:
        await ws.send(message)
        assert digest(await receive(ws)) == digest(message)


async def closed(ws: WebSocket) -> ConnectionClosed:
    """Wait for ``ws`` to close; fail if a message arrives instead."""
    with anyio.fail_after(timeout(10)):
        try:
            message = await ws.receive()
        except ConnectionClosed as exc:
            return exc
    pytest.fail(f"expected a close, got a message: {str(message)[:100]!r}")


async def wait_for_pong(ws: WebSocket) -> None:
    """Wait until a keep-alive ping was answered (``latency`` is set)."""
    with anyio.fail_after(timeout(10)):
        while ws.latency == 0:
            assert await ws.receive(timeout=0.05) is None


async def iterate_to_the_end(ws: WebSocket) -> str | int:
    """Return "end" if ``async for`` ends quietly, else the close code it raised."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed as exc:
        return exc.reason
    return "end"


#: Messages for the permessage-deflate parameter tests: the same one twice (context
#: takeover refers back to the first), then 1 MiB of text and 64 KiB of random bytes.
DEFLATE_MESSAGES: list[str | bytes] = [
    MESSAGES[2],
    MESSAGES[2],
    MESSAGES[3],
    incompressible()[: 64 * 1024],
]

#: The same permessage-deflate parameters, as (ws's perMessageDeflate options, the
#: keyword arguments of websockets' PerMessageDeflateFactory classes).
DEFLATE_PARAMETERS = pytest.mark.parametrize(
    ("ws_options", "py_options"),
    [
        (
            {"serverNoContextTakeover": True, "clientNoContextTakeover": True},
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
        ),
        (
            {"serverMaxWindowBits": 10, "clientMaxWindowBits": 10},
            {"server_max_window_bits": 10, "client_max_window_bits": 10},
        ),
        (
            {
                "serverMaxWindowBits": 9,
                "clientMaxWindowBits": 9,
                "serverNoContextTakeover": True,
                "clientNoContextTakeover": True,
            },
            {
                "server_max_window_bits": 9,
                "client_max_window_bits": 9,
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
            },
        ),
    ],
    ids=["no-context-takeover", "window-bits-10", "window-bits-9-no-takeover"],
)


class CloseWatcher:
    """A server handler that reads until the connection closes and records how."""

    def __init__(self) -> None:
        self.seen: tuple[int, str] | None = None
        self.done = anyio.Event()

    async def __call__(self, ws: WebSocket) -> None:
        try:
            while True:
                await ws.receive()
        except ConnectionClosed as exc:
            self.seen = (exc.reason, exc.message)
        finally:
            self.done.set()

    async def wait(self) -> tuple[int, str] | None:
        with anyio.fail_after(timeout(10)):
            await self.done.wait()
        return self.seen


async def close_after_first_message(ws: WebSocket) -> None:
    await ws.receive()
    await ws.close(4001, "server bye")


async def send_subprotocol(ws: WebSocket) -> None:
    await ws.send(ws.subprotocol or "")
    await echo(ws)


# -- the websockets peers -------------------------------------------------------------

Report = tuple[str, int | None, str | None]


async def peer_echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def peer_close(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.close(4001, "server bye")


async def peer_fragmented(ws: ServerConnection) -> None:
    await ws.recv()
    for fragments, is_text in FRAGMENTED:
        await ws.send(fragments, text=is_text)
    await ws.wait_closed()


async def peer_ping(ws: ServerConnection) -> None:
    pong = await ws.ping(b"abc")
    await asyncio.wait_for(pong, timeout(10))
    await ws.send("pong:abc")
    await ws.wait_closed()


async def peer_subprotocol(ws: ServerConnection) -> None:
    await ws.send(ws.subprotocol or "")
    await ws.wait_closed()


async def peer_headers(ws: ServerConnection) -> None:
    assert ws.request is not None
    headers = {name.lower(): value for name, value in ws.request.headers.raw_items()}
    await ws.send(json.dumps(headers))
    await ws.wait_closed()


async def peer_big(ws: ServerConnection) -> None:
    await ws.send("a" * 100_000)  # ~100 bytes on the wire when deflated
    await ws.wait_closed()


PEER_PATHS: dict[str, Callable[[ServerConnection], Awaitable[None]]] = {
    "/echo": peer_echo,
    "/close": peer_close,
    "/fragmented": peer_fragmented,
    "/ping": peer_ping,
    "/subprotocol": peer_subprotocol,
    "/headers": peer_headers,
    "/big": peer_big,
    "/observe": ServerConnection.wait_closed,
}


class WebsocketsPeer:
    """websockets' asyncio server on its own event loop, in its own thread.

    Each connection runs ``PEER_PATHS[path]``, then puts (path, the close code and
    reason it received) in ``reports``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.port = 0
        self.reports: queue.Queue[Report] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def report(self) -> Report:
        get = partial(self.reports.get, timeout=timeout(10))
        return await anyio.to_thread.run_sync(get)

    def start(self) -> None:
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="websockets-peer", daemon=True
        )
        self._thread.start()
        self.port = ready.result(timeout=timeout(10))

    def stop(self) -> None:
        assert self._thread is not None
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout(20))
        assert not self._thread.is_alive(), "the websockets server thread did not stop"

    async def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with websockets_serve(self._handle, "127.0.0.1", 0, **self.options) as server:
                ready.set_result(next(iter(server.sockets)).getsockname()[1])
                await self._stop.wait()
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "?"
        with suppress(PeerClosed):
            await PEER_PATHS[path](ws)
        await ws.wait_closed()
        self.reports.put((path, ws.close_code, ws.close_reason))


@asynccontextmanager
async def websockets_peer(**options: Any) -> AsyncIterator[WebsocketsPeer]:
    peer = WebsocketsPeer(options)
    await anyio.to_thread.run_sync(peer.start)
    try:
        yield peer
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(peer.stop)


def sync_client(url: str, **options: Any) -> ClientConnection:
    ws: ClientConnection = websockets_connect(
        url, open_timeout=timeout(10), close_timeout=timeout(10), **options
    )
    return ws


async def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a websockets sync-client exchange in a worker thread."""
    return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))


def exchange_messages(
    url: str, messages: Iterable[Any], **options: Any
) -> tuple[str | None, list[str | bytes]]:
    """Send each message and receive one reply to each.

    A ``(fragments, is_text)`` tuple is sent as one fragmented message.
    """
    with sync_client(url, **options) as ws:
        received = []
        for message in messages:
            if isinstance(message, tuple):
                ws.send(message[0], text=message[1])
            else:
                ws.send(message)
            received.append(ws.recv(timeout=timeout(10)))
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions"), received


def send_and_wait_close(url: str, message: Any, **options: Any) -> tuple[int, str]:
    """Send ``message`` (as in :func:`exchange_messages`); return the close frame received.

    (1006, "") when the connection ended without a close frame.
    """
    with sync_client(url, **options) as ws:
        with suppress(PeerClosed):  # the server may close while we are still sending
            if isinstance(message, tuple):
                ws.send(message[0], text=message[1])
            else:
                ws.send(message)
        return wait_close(ws)


def wait_close(ws: ClientConnection) -> tuple[int, str]:
    """The close frame received (once the connection is closed), or (1006, "")."""
    try:
        reply = ws.recv(timeout=timeout(10))
    except PeerClosed as exc:  # raised once the connection is fully closed
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
    raise AssertionError(f"expected a close, got a message: {str(reply)[:100]!r}")


def send_completes(url: str, message: bytes) -> tuple[bool, int]:
    """(whether sending ``message`` completed, the close code received)."""
    with sync_client(url, compression=None, max_size=None) as ws:
        try:
            ws.send(message)
        except PeerClosed:
            return False, wait_close(ws)[0]
        return True, wait_close(ws)[0]


def close_from_client(url: str, code: int, reason: str) -> tuple[int | None, str | None]:
    """Close with ``code``; return the close frame the server answered with."""
    with sync_client(url) as ws:
        ws.close(code, reason)
        return ws.close_code, ws.close_reason


def negotiated_subprotocol(url: str, offered: list[str] | None) -> tuple[str | None, str]:
    """(the client's subprotocol, what the server says it chose)."""
    with sync_client(url, subprotocols=offered) as ws:
        return ws.subprotocol, str(ws.recv(timeout=timeout(10)))


def ping_answered(url: str) -> bool:
    with sync_client(url) as ws:
        return ws.ping(b"abc").wait(timeout(10))


# -- 1. our client -> websockets server ----------------------------------------------


@COMPRESSION
async def test_client_echo_with_websockets_server(ours: bool, theirs: bool) -> None:
    async with (
        websockets_peer(compression="deflate" if theirs else None, max_size=PEER_MAX_SIZE) as peer,
        connect(peer.url("/echo"), compression=ours) as ws,
    ):
        negotiated = "permessage-deflate" in extensions(ws.response_headers)
        assert negotiated == (ours and theirs)
        await assert_echoed(ws, MESSAGES)


async def test_client_sees_websockets_server_close_code() -> None:
    async with websockets_peer() as peer, connect(peer.url("/close")) as ws:
        await ws.send("close me")
        exc = await closed(ws)
        assert (exc.reason, exc.message) == (4001, "server bye")
        assert ws.close_code == 4001
    assert await peer.report() == ("/close", 4001, "server bye")  # our echo of its close


async def test_client_close_code_reaches_websockets_server() -> None:
    async with websockets_peer() as peer, connect(peer.url("/observe")) as ws:
        await ws.close(4005, "client done")
        assert await peer.report() == ("/observe", 4005, "client done")
        assert ws.close_code == 4005


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
async def test_client_reassembles_websockets_server_fragments(compression: bool) -> None:
    async with (
        websockets_peer() as peer,
        connect(peer.url("/fragmented"), compression=compression) as ws,
    ):
        await ws.send("go")
        assert [await receive(ws) for _ in FRAGMENTED] == FRAGMENTED_MESSAGES


async def test_client_answers_websockets_server_ping() -> None:
    async with websockets_peer() as peer, connect(peer.url("/ping")) as ws:
        assert await receive(ws) == "pong:abc"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v2", "chat.v1"], "chat.v1"), (["chat.v1"], "chat.v1")],
    ids=["server-order", "one-common"],
)
async def test_client_subprotocol_with_websockets_server(offered: list[str], chosen: str) -> None:
    # websockets picks the first of *its* list that the client offers.
    async with (
        websockets_peer(subprotocols=["chat.v1", "chat.v2"]) as peer,
        connect(peer.url("/subprotocol"), subprotocols=offered) as ws,
    ):
        assert ws.subprotocol == chosen
        assert await receive(ws) == chosen


async def test_client_without_common_subprotocol_is_refused_by_websockets() -> None:
    async with websockets_peer(subprotocols=["chat.v1"]) as peer:
        with pytest.raises(HandshakeRejected) as info:
            async with connect(peer.url("/subprotocol"), subprotocols=["other"]):
                pytest.fail("the handshake succeeded")
        assert info.value.status_code == 400


async def test_client_headers_reach_websockets_server() -> None:
    async with (
        websockets_peer() as peer,
        connect(peer.url("/headers"), headers={"X-Anywire-Test": "yes"}) as ws,
    ):
        headers = json.loads(await receive(ws))
        assert headers["x-anywire-test"] == "yes"
        assert headers["host"] == f"127.0.0.1:{peer.port}"


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
async def test_client_limit_closes_1009_with_websockets_server(compression: bool) -> None:
    async with websockets_peer() as peer:
        async with connect(peer.url("/big"), compression=compression, max_message_size=1000) as ws:
            assert (await closed(ws)).reason == 1009
        path, code, _ = await peer.report()
        assert (path, code) == ("/big", 1009)


async def test_client_keepalive_pings_are_answered_by_websockets_server() -> None:
    async with (
        websockets_peer() as peer,
        connect(peer.url("/observe"), ping_interval=0.05, ping_timeout=timeout(5)) as ws,
    ):
        await wait_for_pong(ws)
        assert ws.connected


@DEFLATE_PARAMETERS
async def test_client_deflate_parameters_with_websockets_server(
    ws_options: dict[str, Any], py_options: dict[str, Any]
) -> None:
    factory = ServerPerMessageDeflateFactory(**py_options)
    async with (
        websockets_peer(compression=None, extensions=[factory]) as peer,
        connect(peer.url("/echo")) as ws,
    ):
        agreed = extensions(ws.response_headers)
        assert all(name in agreed for name in py_options), agreed
        await assert_echoed(ws, DEFLATE_MESSAGES)


# -- 2. our server -> websockets sync client -----------------------------------------


@COMPRESSION
async def test_server_echo_with_websockets_client(ours: bool, theirs: bool) -> None:
    async with running_server(echo, compression=ours) as url:
        ext, received = await in_thread(
            exchange_messages,
            url,
            MESSAGES,
            compression="deflate" if theirs else None,
            max_size=PEER_MAX_SIZE,
        )
    assert ("permessage-deflate" in (ext or "")) == (ours and theirs)
    assert [digest(m) for m in received] == [digest(m) for m in MESSAGES]


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
async def test_server_reassembles_websockets_client_fragments(compression: bool) -> None:
    async with running_server(echo, compression=compression) as url:
        _, received = await in_thread(exchange_messages, url, FRAGMENTED)
    assert received == FRAGMENTED_MESSAGES


async def test_server_close_code_reaches_websockets_client() -> None:
    async with running_server(close_after_first_message) as url:
        assert await in_thread(send_and_wait_close, url, "close me") == (4001, "server bye")


async def test_websockets_client_close_code_reaches_server() -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        echoed = await in_thread(close_from_client, url, 4003, "client bye")
        assert await watcher.wait() == (4003, "client bye")
    assert echoed == (4003, "client bye")


async def test_server_answers_websockets_client_ping() -> None:
    async with running_server(echo) as url:
        assert await in_thread(ping_answered, url)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v2", "chat.v1"], "chat.v2"), (["other"], None), (None, None)],
    ids=["common", "none-common", "none-offered"],
)
async def test_server_subprotocol_with_websockets_client(
    offered: list[str] | None, chosen: str | None
) -> None:
    # anywire's default picks the first of the *client's* list that the server supports.
    async with running_server(send_subprotocol, subprotocols=["chat.v1", "chat.v2"]) as url:
        assert await in_thread(negotiated_subprotocol, url, offered) == (chosen, chosen or "")


TOO_BIG = {
    "plain": b"x" * 1001,
    "fragmented": ([b"x" * 600, b"x" * 600], False),
    "compressed": "a" * 100_000,
}


@pytest.mark.parametrize("kind", list(TOO_BIG))
async def test_server_limit_closes_1009_for_websockets_client(kind: str) -> None:
    async with running_server(echo, max_message_size=1000) as url:
        code, _ = await in_thread(send_and_wait_close, url, TOO_BIG[kind])
    assert code == 1009


async def test_server_default_limit_closes_1009_for_websockets_client() -> None:
    async with running_server(echo) as url:
        assert await in_thread(send_completes, url, bytes(MIB + 1)) == (True, 1009)


async def test_server_limit_close_lets_a_still_sending_client_finish() -> None:
    async with running_server(echo) as url:
        assert await in_thread(send_completes, url, bytes(64 * MIB)) == (True, 1009)


@DEFLATE_PARAMETERS
async def test_server_deflate_parameters_with_websockets_client(
    ws_options: dict[str, Any], py_options: dict[str, Any]
) -> None:
    factory = ClientPerMessageDeflateFactory(**py_options)
    async with running_server(echo) as url:
        agreed, received = await in_thread(
            exchange_messages, url, DEFLATE_MESSAGES, compression=None, extensions=[factory]
        )
    assert all(name in (agreed or "") for name in py_options), agreed
    assert [digest(m) for m in received] == [digest(m) for m in DEFLATE_MESSAGES]


class ShutdownHandler:
    """Keeps each connection open until the server shuts down; remembers them all."""

    def __init__(self) -> None:
        self.connections: list[WebSocket] = []
        self.got_message = anyio.Event()

    async def __call__(self, ws: WebSocket) -> None:
        self.connections.append(ws)
        await ws.receive()
        self.got_message.set()
        await ws.receive()


#: Shutdown tests use a short close_timeout: see the xfail tests below.
SHUTDOWN_OPTIONS = {"graceful_shutdown": None, "close_timeout": timeout(1)}


async def shut_down_with_websockets_client(handler: ShutdownHandler) -> tuple[int, str]:
    """Stop the server once ``handler`` has a connection; return the close seen."""
    result: list[tuple[int, str]] = []

    async def client(url: str) -> None:
        result.append(await in_thread(send_and_wait_close, url, "hi"))

    async with anyio.create_task_group() as tg:
        async with running_server(handler, **SHUTDOWN_OPTIONS) as url:
            tg.start_soon(client, url)
            with anyio.fail_after(timeout(10)):
                await handler.got_message.wait()
    return result[0]


async def test_server_shutdown_closes_websockets_client_with_1001() -> None:
    code, _ = await shut_down_with_websockets_client(ShutdownHandler())
    assert code == 1001


async def test_server_shutdown_completes_the_close_handshake() -> None:
    handler = ShutdownHandler()
    await shut_down_with_websockets_client(handler)
    assert [ws.close_code for ws in handler.connections] == [1001]


# -- 3. our client -> node ws server ---------------------------------------------------


@COMPRESSION
async def test_client_echo_with_node_server(node: NodePeers, ours: bool, theirs: bool) -> None:
    args = [] if theirs else ["--no-deflate"]
    async with node.server(*args) as server, connect(server.url(), compression=ours) as ws:
        negotiated = "permessage-deflate" in extensions(ws.response_headers)
        assert negotiated == (ours and theirs)
        await assert_echoed(ws, MESSAGES)


async def node_server_closes(node: NodePeers, path: str) -> tuple[ConnectionClosed, Event]:
    """Our client sends a message to the node server's ``path``, which closes: the error
    the client raised, then the server's last event."""
    async with node.server() as server:
        async with connect(server.url(path)) as ws:
            await ws.send("close me")
            exc = await closed(ws)
        events = await server.events_until_close()
    return exc, events[-1]


async def test_client_sees_node_server_close_code(node: NodePeers) -> None:
    exc, last = await node_server_closes(node, "/close")
    assert (exc.reason, exc.message) == (4002, "bye")
    assert last == {"event": "close", "path": "/close", "code": 4002, "reason": "bye"}


async def test_client_close_code_reaches_node_server(node: NodePeers) -> None:
    async with node.server() as server:
        async with connect(server.url()) as ws:
            await ws.close(4005, "client done")
            assert ws.close_code == 4005
        events = await server.events_until_close()
    assert events[-1] == {"event": "close", "path": "/echo", "code": 4005, "reason": "client done"}


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
async def test_client_reassembles_node_server_fragments(node: NodePeers, compression: bool) -> None:
    async with node.server() as server:
        async with connect(server.url("/fragmented"), compression=compression) as ws:
            await ws.send("go")
            assert [await receive(ws) for _ in FRAGMENTED] == FRAGMENTED_MESSAGES
        events = await server.events_until_close()
    # The server pinged between two fragments of the first message; we answered.
    assert {"event": "pong", "path": "/fragmented", "data": "mid"} in events


async def test_client_answers_node_server_ping(node: NodePeers) -> None:
    async with node.server() as server, connect(server.url("/ping")) as ws:
        assert await receive(ws) == "pong:abc"


@pytest.mark.parametrize(
    ("server_protocols", "offered", "chosen"),
    [
        (["chat.v1", "chat.v2"], ["chat.v2", "chat.v1"], "chat.v1"),
        ([], ["chat.v2", "chat.v1"], "chat.v2"),  # ws's default: the client's first
        (["chat.v1"], ["other"], None),  # handleProtocols returns false: no subprotocol
    ],
    ids=["server-order", "ws-default", "none-common"],
)
async def test_client_subprotocol_with_node_server(
    node: NodePeers, server_protocols: list[str], offered: list[str], chosen: str | None
) -> None:
    args = [f"--protocols={','.join(server_protocols)}"] if server_protocols else []
    async with (
        node.server(*args) as server,
        connect(server.url("/subprotocol"), subprotocols=offered) as ws,
    ):
        assert ws.subprotocol == chosen
        assert await receive(ws) == (chosen or "")


async def test_client_headers_reach_node_server(node: NodePeers) -> None:
    async with (
        node.server() as server,
        connect(server.url("/headers"), headers={"X-Anywire-Test": "yes"}) as ws,
    ):
        headers = json.loads(await receive(ws))
        assert headers["x-anywire-test"] == "yes"
        assert headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("message", [b"x" * 2000, "a" * 100_000], ids=["plain", "compressed"])
async def test_client_limit_closes_1009_with_node_server(
    node: NodePeers, message: str | bytes
) -> None:
    async with node.server() as server:
        async with connect(server.url(), max_message_size=1000) as ws:
            await ws.send(message)  # the limit is on receiving: the echo is too big
            assert (await closed(ws)).reason == 1009
        events = await server.events_until_close()
    assert events[-1]["code"] == 1009


async def test_client_keepalive_pings_are_answered_by_node_server(node: NodePeers) -> None:
    async with (
        node.server() as server,
        connect(server.url(), ping_interval=0.05, ping_timeout=timeout(5)) as ws,
    ):
        await wait_for_pong(ws)
        assert ws.connected


@DEFLATE_PARAMETERS
async def test_client_deflate_parameters_with_node_server(
    node: NodePeers, ws_options: dict[str, Any], py_options: dict[str, Any]
) -> None:
    async with (
        node.server(f"--deflate={json.dumps(ws_options)}") as server,
        connect(server.url()) as ws,
    ):
        agreed = extensions(ws.response_headers)
        # ws answers client_max_window_bits only because we offer it (bare).
        assert all(name in agreed for name in py_options), agreed
        await assert_echoed(ws, DEFLATE_MESSAGES)


async def test_client_inflates_with_an_8_bit_server_window(node: NodePeers) -> None:
    # ws compresses with server_max_window_bits=8 (zlib's smallest window).
    async with (
        node.server('--deflate={"serverMaxWindowBits": 8}') as server,
        connect(server.url()) as ws,
    ):
        assert "server_max_window_bits=8" in extensions(ws.response_headers)
        await assert_echoed(ws, DEFLATE_MESSAGES)


async def test_client_accepts_an_8_bit_client_window(node: NodePeers) -> None:
    async with (
        node.server('--deflate={"clientMaxWindowBits": 8}') as server,
        connect(server.url()) as ws,
    ):
        await assert_echoed(ws, DEFLATE_MESSAGES)


async def test_client_sees_node_server_close_without_code_as_1005(node: NodePeers) -> None:
    exc, last = await node_server_closes(node, "/close-no-code")
    assert (exc.reason, exc.message) == (1005, "")
    # We answered with an empty close frame too (1005 is never sent on the wire).
    assert last["code"] == 1005


async def test_async_for_ends_when_node_server_closes_without_code(node: NodePeers) -> None:
    async with node.server() as server, connect(server.url("/close-no-code")) as ws:
        await ws.send("close me")
        with anyio.fail_after(timeout(10)):
            assert await iterate_to_the_end(ws) == "end"


async def test_client_sees_node_server_drop_as_1006(node: NodePeers) -> None:
    async with node.server() as server, connect(server.url("/terminate")) as ws:
        await ws.send("drop me")
        assert (await closed(ws)).reason == 1006


async def test_client_closes_1007_on_invalid_utf8_from_node_server(node: NodePeers) -> None:
    async with node.server() as server:
        async with connect(server.url("/bad-utf8")) as ws:
            await ws.send("go")
            assert (await closed(ws)).reason == 1007
        events = await server.events_until_close()
    assert events[-1]["code"] == 1007


async def test_cancelled_client_completes_the_close_handshake(node: NodePeers) -> None:
    async with node.server() as server:
        with anyio.CancelScope() as scope:
            async with connect(server.url(), close_timeout=timeout(1)) as ws:
                scope.cancel()
                await anyio.sleep_forever()
        events = await server.events_until_close()
        assert events[-1]["code"] == 1001  # the server got our close frame
        assert ws.close_code == 1001  # ... and we its answer


# -- 4. our server -> node ws client ---------------------------------------------------


def messages_of(events: list[Event]) -> list[tuple[bool, int, str]]:
    return [(e["binary"], e["length"], e["sha256"]) for e in events if e["event"] == "message"]


def close_of(events: list[Event]) -> tuple[int, str]:
    assert events[-1]["event"] == "close", events
    return events[-1]["code"], events[-1]["reason"]


@COMPRESSION
async def test_server_echo_with_node_client(node: NodePeers, ours: bool, theirs: bool) -> None:
    async with running_server(echo, compression=ours) as url:
        events = await node.client(url, "echo", *([] if theirs else ["--no-deflate"]))
    assert events[0]["event"] == "open"
    assert ("permessage-deflate" in events[0]["extensions"]) == (ours and theirs)
    assert messages_of(events) == [digest(m) for m in MESSAGES]
    assert close_of(events) == (1000, "")


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
async def test_server_reassembles_node_client_fragments(node: NodePeers, compression: bool) -> None:
    async with running_server(echo, compression=compression) as url:
        events = await node.client(url, "fragmented")
    assert messages_of(events) == [digest(m) for m in MESSAGES]
    assert close_of(events) == (1000, "")


async def test_server_close_code_reaches_node_client(node: NodePeers) -> None:
    async with running_server(close_after_first_message) as url:
        events = await node.client(url, "wait-close")
    assert close_of(events) == (4001, "server bye")


async def test_node_client_close_code_reaches_server(node: NodePeers) -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        events = await node.client(url, "client-close")
        assert await watcher.wait() == (4003, "client bye")
    assert close_of(events) == (4003, "client bye")


async def test_server_answers_node_client_ping(node: NodePeers) -> None:
    async with running_server(echo) as url:
        events = await node.client(url, "ping")
    assert {"event": "pong", "data": "abc"} in events
    assert close_of(events) == (1000, "")


async def test_server_subprotocol_with_node_client(node: NodePeers) -> None:
    async with running_server(echo, subprotocols=["chat.v1", "chat.v2"]) as url:
        events = await node.client(url, "handshake", "--protocols=chat.v2,chat.v1")
    assert (events[0]["event"], events[0]["protocol"]) == ("open", "chat.v2")
    assert close_of(events) == (1000, "")


@pytest.mark.parametrize("scenario", ["too-big", "too-big-fragmented", "too-big-compressed"])
async def test_server_limit_closes_1009_for_node_client(node: NodePeers, scenario: str) -> None:
    async with running_server(echo, max_message_size=1000) as url:
        events = await node.client(url, scenario)
    assert close_of(events)[0] == 1009


@pytest.mark.parametrize(
    ("ws_options", "negotiated"),
    [
        ({"serverNoContextTakeover": True, "clientNoContextTakeover": True}, True),
        ({"serverMaxWindowBits": 10, "clientMaxWindowBits": 10}, True),
        ({"serverMaxWindowBits": 9, "clientMaxWindowBits": 9}, True),
        ({"clientMaxWindowBits": 8}, True),  # the client's window: we only inflate
        ({"serverMaxWindowBits": 8}, False),  # zlib cannot deflate with it: declined
    ],
    ids=["no-context-takeover", "window-bits-10", "window-bits-9", "client-8", "server-8"],
)
async def test_server_deflate_parameters_with_node_client(
    node: NodePeers, ws_options: dict[str, Any], negotiated: bool
) -> None:
    async with running_server(echo) as url:
        events = await node.client(url, "echo", f"--deflate={json.dumps(ws_options)}")
    assert ("permessage-deflate" in events[0]["extensions"]) == negotiated
    assert messages_of(events) == [digest(m) for m in MESSAGES]
    assert close_of(events) == (1000, "")


async def test_node_client_close_without_code_reaches_server_as_1005(node: NodePeers) -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        events = await node.client(url, "close-no-code")
        assert await watcher.wait() == (1005, "")
    assert close_of(events) == (1005, "")


async def test_async_for_ends_when_node_client_closes_without_code(node: NodePeers) -> None:
    outcome: list[str | int] = []
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            outcome.append(await iterate_to_the_end(ws))
        finally:
            done.set()

    async with running_server(handler) as url:
        await node.client(url, "close-no-code")
        with anyio.fail_after(timeout(10)):
            await done.wait()
    assert outcome == ["end"]


async def test_node_client_drop_reaches_server_as_1006(node: NodePeers) -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        events = await node.client(url, "terminate")
        assert await watcher.wait() == (1006, "")
    assert close_of(events)[0] == 1006


async def test_server_closes_1007_on_invalid_utf8_from_node_client(node: NodePeers) -> None:
    async with running_server(echo) as url:
        events = await node.client(url, "bad-utf8")
    assert close_of(events)[0] == 1007


async def test_server_shutdown_closes_node_client_with_1001(node: NodePeers) -> None:
    handler = ShutdownHandler()
    events: list[Event] = []

    async def client(url: str) -> None:
        events.extend(await node.client(url, "wait-close"))

    async with anyio.create_task_group() as tg:
        async with running_server(handler, **SHUTDOWN_OPTIONS) as url:
            tg.start_soon(client, url)
            with anyio.fail_after(timeout(10)):
                await handler.got_message.wait()
    assert close_of(events)[0] == 1001
