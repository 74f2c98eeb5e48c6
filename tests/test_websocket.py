"""WebSocket client and server over loopback, on asyncio and trio."""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from anywire import websocket
from anywire.errors import (
    ConcurrencyError,
    ConnectFailed,
    ConnectionClosed,
    HandshakeRejected,
)
from anywire.websocket import WebSocket, connect
from anywire.websocket._handshake import accept_token
from tests.conftest import timeout
from tests.ws_helpers import (
    client_frame,
    close_code,
    echo,
    port_of,
    raw_peer,
    read_frame,
    read_head,
    running_server,
    upgrade_request,
)

pytestmark = pytest.mark.anyio


async def test_echo_text_and_binary_in_owned_mode() -> None:
    async with running_server(echo) as url, connect(url) as ws:
        await ws.send("héllo")
        assert await ws.receive() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.receive() == b"\x00\xff"
        big = bytes(range(256)) * 4096  # 1 MiB
        await ws.send(big)
        assert await ws.receive() == big
        assert ws.connected


async def test_await_form_and_receive_timeouts() -> None:
    async with running_server(echo) as url:
        ws = await connect(url)
        try:
            assert await ws.receive(timeout=0) is None
            assert await ws.receive(timeout=0.01) is None
            await ws.send("x")
            assert await ws.receive(timeout=timeout(5)) == "x"
        finally:
            await ws.close()
        assert not ws.connected
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert info.value.reason == 1000


async def test_seed_names_aioclient_and_connection_error() -> None:
    async with running_server(echo) as url:
        ws = await websocket.AioClient.connect(url)
        assert isinstance(ws, websocket.AioClient)
        await ws.send("Hello, Async Server!")
        assert await ws.receive(timeout=10) == "Hello, Async Server!"
        await ws.close()
    assert websocket.ConnectionError is websocket.HandshakeError


async def test_server_close_code_and_reason_reach_the_client() -> None:
    async def closer(ws: WebSocket) -> None:
        await ws.receive()
        await ws.close(4000, "bye now")

    async with running_server(closer) as url, connect(url) as ws:
        await ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert (info.value.reason, info.value.message) == (4000, "bye now")
        assert ws.close_code == 4000


class CloseWatcher:
    """A server handler that waits for the client's close and records its code."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self._done = anyio.Event()

    async def __call__(self, ws: WebSocket) -> None:
        try:
            await ws.receive()
        except ConnectionClosed as exc:
            self.codes.append(exc.reason)
        self._done.set()

    async def wait(self) -> list[int]:
        """The close codes seen, once the handler has returned."""
        with anyio.fail_after(timeout(5)):
            await self._done.wait()
        return self.codes


async def test_leaving_async_with_sends_a_close_frame() -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        async with connect(url):
            pass
        assert await watcher.wait() == [1000]


async def test_body_error_closes_with_1011_and_propagates_unwrapped() -> None:
    watcher = CloseWatcher()
    async with running_server(watcher) as url:
        with pytest.raises(ValueError, match="boom"):
            async with connect(url):
                raise ValueError("boom")
        assert await watcher.wait() == [1011]


async def test_subprotocol_negotiation_and_hook() -> None:
    async with running_server(echo, subprotocols=["v1", "v2"]) as url:
        async with connect(url, subprotocols=["v2", "v1"]) as ws:
            assert ws.subprotocol == "v2"
        async with connect(url, subprotocols="v3") as ws:
            assert ws.subprotocol is None

    def pick_last(request: websocket.HandshakeRequest) -> str | None:
        return request.subprotocols[-1]

    async with running_server(echo, choose_subprotocol=pick_last) as url:
        async with connect(url, subprotocols=["a", "b"]) as ws:
            assert ws.subprotocol == "b"


async def test_message_too_big_closes_with_1009() -> None:
    async with running_server(echo, max_message_size=1000) as url, connect(url) as ws:
        await ws.send(b"x" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert info.value.reason == 1009


async def test_client_limit_applies_to_fragmented_messages() -> None:
    async def sender(ws: WebSocket) -> None:
        await ws.send("y" * 5000)
        await ws.receive(timeout=timeout(5))

    async with running_server(sender) as url, connect(url, max_message_size=100) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert info.value.reason == 1009


async def test_fragmented_message_is_reassembled() -> None:
    async with running_server(echo) as url, raw_peer(url) as (stream, rest):
        await stream.send(client_frame(0x1, b"frag", fin=False))
        await stream.send(client_frame(0x0, b"men", fin=False))
        await stream.send(client_frame(0x0, "ted ✓".encode()))
        opcode, payload, _ = await read_frame(stream, rest)
        assert (opcode, payload.decode()) == (0x1, "fragmented ✓")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8
        (client_frame(0x3, b"x"), 1002),  # reserved opcode
        (client_frame(0x1, b"x", rsv=0x20), 1002),  # RSV2 without extension
        (client_frame(0x9, b"p", fin=False), 1002),  # fragmented control frame
    ],
)
async def test_bad_frames_close_with_the_right_code(frame: bytes, code: int) -> None:
    async with running_server(echo) as url, raw_peer(url) as (stream, rest):
        await stream.send(frame)
        opcode, payload, _ = await read_frame(stream, rest)
        assert opcode == 0x8
        assert close_code(payload) == code


async def test_not_an_upgrade_gets_400_and_bad_version_426() -> None:
    async with running_server(echo) as url:
        async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 400")
        async with await anyio.connect_tcp("127.0.0.1", port_of(url)) as stream:
            await stream.send(upgrade_request(Sec_WebSocket_Version="8"))
            head, _ = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 426")
            assert b"sec-websocket-version: 13" in head.lower()


async def test_foreign_origin_is_refused_with_403() -> None:
    async with running_server(echo) as url:
        with pytest.raises(HandshakeRejected) as info:
            await connect(url, headers={"Origin": "http://evil.example"})
        assert info.value.status_code == 403
        assert b"origin" in info.value.body
        # same origin (Host is 127.0.0.1:PORT) passes
        origin = url.replace("ws://", "http://")
        async with connect(url, headers={"Origin": origin}) as ws:
            await ws.send("ok")
            assert await ws.receive() == "ok"
    async with running_server(echo, allowed_origins="*") as url:
        async with connect(url, headers={"Origin": "http://evil.example"}) as ws:
            assert ws.connected


async def test_unreachable_server_raises_connect_failed() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with pytest.raises(ConnectFailed):
        await connect(f"ws://127.0.0.1:{port}/")


async def test_peer_vanishing_mid_message_is_1006() -> None:
    async def waiter(ws: WebSocket) -> None:
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert info.value.reason == 1006
        got.set()

    got = anyio.Event()
    async with running_server(waiter) as url:
        async with raw_peer(url) as (stream, _):
            await stream.send(client_frame(0x2, b"a" * 100)[:50])
        with anyio.fail_after(timeout(5)):
            await got.wait()


async def test_keepalive_measures_latency() -> None:
    async with running_server(echo) as url, connect(url, ping_interval=0.01) as ws:
        with anyio.fail_after(timeout(5)):
            while ws.latency == 0.0:
                await ws.send("tick")
                await ws.receive()
        assert ws.latency > 0


async def test_keepalive_timeout_closes_a_silent_peer() -> None:
    async with running_server(echo, ping_interval=0.05, ping_timeout=0.05) as url:
        async with raw_peer(url) as (stream, rest):
            frames: list[int] = []
            with anyio.fail_after(timeout(5)):
                while True:
                    opcode, payload, rest = await read_frame(stream, rest)
                    frames.append(opcode)
                    if opcode == 0x8:
                        break
            assert frames[0] == 0x9  # a ping, left unanswered
            assert close_code(payload) == 1011


async def test_pull_mode_answers_pings_while_receiving() -> None:
    async with running_server(echo, ping_interval=0.02, ping_timeout=0.5) as url:
        ws = await connect(url)
        try:
            # Several server pings fall inside this wait; all must be answered.
            assert await ws.receive(timeout=0.2) is None
            await ws.send("still here")
            assert await ws.receive(timeout=timeout(5)) == "still here"
        finally:
            await ws.close()


async def test_two_concurrent_receives_raise_concurrency_error() -> None:
    async with running_server(echo) as url, connect(url) as ws, anyio.create_task_group() as tg:
        tg.start_soon(ws.receive)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(ConcurrencyError):
            await ws.receive()
        await ws.send("release")


async def test_backpressure_bounds_the_receive_queue() -> None:
    sent = 0
    flood_over = anyio.Event()

    async def flood(ws: WebSocket) -> None:
        nonlocal sent
        with anyio.move_on_after(0.5):
            while True:
                await ws.send(b"z" * 65536)
                sent += 1
        flood_over.set()

    async with running_server(flood) as url, connect(url, max_queue=4, compression=False) as ws:
        assert await ws.receive() is not None
        with anyio.fail_after(timeout(5)):
            await flood_over.wait()
        # The client stopped reading once 4 messages waited, so the server's sends
        # blocked on full socket buffers: far fewer than 0.5 s of loopback bandwidth.
        assert len(ws._messages) <= 4
        assert sent < 2000


async def test_cancelled_send_leaves_the_connection_closed_or_whole() -> None:
    release = anyio.Event()
    received: list[str | bytes] = []
    server_done = anyio.Event()

    async def slow_reader(ws: WebSocket) -> None:
        await release.wait()
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                received.append(message)
        server_done.set()

    chunk = b"q" * 1_000_000
    async with running_server(slow_reader, max_message_size=None) as url:
        ws = await connect(url, max_message_size=None)
        with anyio.move_on_after(0.2) as scope:
            while True:
                await ws.send(chunk)
        assert scope.cancelled_caught
        release.set()
        if ws.connected:
            # Cancelled before any byte of a frame went out: the stream is intact.
            await ws.send("after")
            await ws.close()
            with anyio.fail_after(timeout(10)):
                await server_done.wait()
            assert received[-1] == "after"
            assert all(m == chunk for m in received[:-1])
        else:
            with pytest.raises(ConnectionClosed):
                await ws.send("after")
            await ws.close()
            with anyio.fail_after(timeout(10)):
                await server_done.wait()
            assert all(m == chunk for m in received)


async def test_accept_over_a_raw_stream_and_headers_form() -> None:
    results: list[Any] = []
    got = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with await websocket.accept(stream=stream) as ws:
            results.append(await ws.receive())
            got.set()

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("via stream")
            with anyio.fail_after(timeout(5)):
                await got.wait()
            tg.cancel_scope.cancel()
    assert results == ["via stream"]


async def test_compression_is_negotiated_by_default_and_can_be_disabled() -> None:
    async with running_server(echo) as url:
        async with connect(url) as ws:
            assert "permessage-deflate" in dict(ws.response_headers).get(
                "sec-websocket-extensions", ""
            )
            text = "compress me " * 1000
            await ws.send(text)
            assert await ws.receive() == text
        async with connect(url, compression=False) as ws:
            assert "sec-websocket-extensions" not in dict(ws.response_headers)


async def test_wss_with_trustme(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with running_server(echo, ssl_context=server_context) as url:
        async with connect(url.replace("ws://", "wss://"), ssl_context=client_context) as ws:
            await ws.send("secret")
            assert await ws.receive() == "secret"


async def test_reconnect_iteration_yields_a_new_connection_after_each_loss() -> None:
    from anywire.reconnect import ReconnectPolicy

    async def one_message(ws: WebSocket) -> None:
        await ws.send("hi")
        await ws.close(1012, "restart")

    policy = ReconnectPolicy(initial_delay=0.001, max_delay=0.01)
    seen = 0
    async with running_server(one_message) as url:
        async for ws in connect(url, reconnect=policy):
            assert await ws.receive() == "hi"
            with pytest.raises(ConnectionClosed):
                await ws.receive()
            seen += 1
            if seen == 3:
                await ws.close()
                break
    assert seen == 3


async def test_seed_sock_and_headers_form() -> None:
    """simple-websocket's custom-socket example: the caller read the request itself."""
    server_sock = socket.create_server(("127.0.0.1", 0))
    port = server_sock.getsockname()[1]
    got = anyio.Event()
    results: list[Any] = []

    def accept_and_read_head() -> tuple[socket.socket, dict[str, str]]:
        sock, _ = server_sock.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        lines = data.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:]
        headers = dict(line.split(": ", 1) for line in lines)
        return sock, headers

    async def server() -> None:
        sock, headers = await anyio.to_thread.run_sync(accept_and_read_head)
        ws = await websocket.AioServer.accept(sock=sock, headers=headers)
        try:
            message = await ws.receive(timeout=timeout(5))
            results.append(message)
            await ws.send(f"Received: {message}")
        finally:
            await ws.close()
            got.set()

    with server_sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server)
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("custom socket")
                assert await ws.receive() == "Received: custom socket"
            with anyio.fail_after(timeout(5)):
                await got.wait()
    assert results == ["custom socket"]


async def test_frames_in_the_same_segment_as_the_101_are_received() -> None:
    # httpx reads them with the response head: the client's stream must hand them out first.
    def frame(opcode: int, payload: bytes) -> bytes:
        return bytes([0x80 | opcode, len(payload)]) + payload

    async def serve_one(stream: SocketStream) -> None:
        async with stream:
            head, _ = await read_head(stream)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            response = (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_token(key)}\r\n\r\n"
            )
            close = frame(0x8, (1000).to_bytes(2, "big") + b"done")
            await stream.send(response.encode() + frame(0x1, b"first") + frame(0x2, b"2nd") + close)
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:  # the client's close frame, then EOF
                    await stream.receive()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_one)
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            with anyio.fail_after(timeout(5)):
                assert await ws.receive() == "first"
                assert await ws.receive() == b"2nd"
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
        assert (info.value.code, info.value.message) == (1000, "done")
        tg.cancel_scope.cancel()
