"""The runner's ASGI ``websocket`` cycle, and ``accept(asgi=)`` getting the full driver."""

from __future__ import annotations

import logging

import anyio
import pytest

from anywire.errors import ConnectionClosed, HandshakeRejected
from anywire.websocket import AioServer, WebSocket, accept, connect

from .conftest import timeout
from .server_helpers import Message, Receive, Scope, Send, exchange, running, status_of
from .ws_helpers import client_frame, close_code, read_frame, read_head, upgrade_request

pytestmark = pytest.mark.anyio


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts with the first offered subprotocol and an extra header; echoes; 'close' closes."""
    assert (await receive())["type"] == "websocket.connect"
    subprotocols = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocols[0] if subprotocols else None,
            "headers": [(b"x-served-by", b"echo")],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
            return
        reply = {k: message[k] for k in ("text", "bytes") if message.get(k) is not None}
        await send({"type": "websocket.send", **reply})


async def test_echo_text_and_binary_with_subprotocol_and_headers() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(echo_app) as server:
            async with connect(f"{server.ws_url}/ws", subprotocols=["chat", "v2"]) as ws:
                assert ws.subprotocol == "chat"
                assert ("x-served-by", "echo") in ws.response_headers
                await ws.send("hello")
                assert await ws.receive() == "hello"
                await ws.send(b"\x00\xff")
                assert await ws.receive() == b"\x00\xff"


async def test_app_close_code_and_reason_reach_the_client() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(echo_app) as server, connect(server.ws_url) as ws:
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
    assert info.value.code == 4001
    assert info.value.message == "asked to"


async def test_client_close_reaches_the_app_as_disconnect() -> None:
    seen: list[Message] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())
        done.set()

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with connect(server.ws_url) as ws:
                await ws.close(4002, "leaving")
            await done.wait()
    assert seen == [{"type": "websocket.disconnect", "code": 4002, "reason": "leaving"}]


async def test_websocket_scope() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.close"})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            with pytest.raises(HandshakeRejected):
                async with connect(f"{server.ws_url}/chat%20room?x=1", subprotocols=["a", "b"]):
                    pass
    scope = scopes[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat room"
    assert scope["raw_path"] == b"/chat%20room"
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["asgi"]["version"] == "3.0"
    assert "websocket.http.response" in scope["extensions"]
    assert callable(scope["extensions"]["anywire.websocket"]["accept"])
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server.port)


async def test_close_before_accept_is_a_403() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1000})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            with pytest.raises(HandshakeRejected) as info:
                async with connect(server.ws_url):
                    pass
    assert info.value.status_code == 403


async def test_denial_response_extension() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]
        start = {"type": "websocket.http.response.start", "status": 401, "headers": headers}
        await send(start)
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"token"})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            with pytest.raises(HandshakeRejected) as info:
                async with connect(server.ws_url):
                    pass
    assert info.value.status_code == 401
    assert info.value.body == b"no token"
    assert ("www-authenticate", "Bearer") in info.value.headers


async def test_app_raising_before_accept_gets_500_and_after_accept_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if scope["path"] == "/late":
            await send({"type": "websocket.accept"})
            await receive()
        raise ValueError("boom")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            with pytest.raises(HandshakeRejected) as info:
                async with connect(server.ws_url):
                    pass
            assert info.value.status_code == 500
            async with connect(f"{server.ws_url}/late") as ws:
                await ws.send("go")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.receive()
    assert closed.value.code == 1011
    assert caplog.text.count("boom") >= 2


async def test_app_returning_after_accept_closes_with_1000() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, connect(server.ws_url) as ws:
            assert await ws.receive() == "bye"
            with pytest.raises(ConnectionClosed) as info:
                await ws.receive()
    assert info.value.code == 1000


async def test_send_after_the_client_left_raises_oserror() -> None:
    errors: list[BaseException] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            errors.append(exc)
        done.set()

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with connect(server.ws_url):
                pass
            await done.wait()
    assert len(errors) == 1


@pytest.mark.parametrize(
    ("fields", "status"),
    [({"Sec_WebSocket_Version": "8"}, 426), ({"Sec_WebSocket_Key": "short"}, 400)],
)
async def test_invalid_upgrade_is_refused_without_calling_the_app(
    fields: dict[str, str], status: int
) -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            response = await exchange(server.port, upgrade_request(**fields))
    assert status_of(response) == status
    assert called == []


async def test_close_timeout_bounds_a_peer_that_never_answers_the_close() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    with anyio.fail_after(timeout(10)):
        async with running(app, ws_close_timeout=0.3) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(upgrade_request())
                _, rest = await read_head(stream)
                opcode, payload, rest = await read_frame(stream, rest)
                assert (opcode, close_code(payload)) == (8, 1000)
                # we never answer the close frame: the server hangs up by itself
                while True:
                    try:
                        await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break


# -- accept(asgi=) under our runner: the full driver ------------------------------------


async def test_accept_asgi_gets_the_full_driver_with_keepalive_latency() -> None:
    kinds: list[type] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with accept(asgi=(scope, receive, send), ping_interval=0.05) as ws:
            kinds.append(type(ws))
            assert await ws.receive() == "latency?"
            # latency has no event to wait for; the keep-alive task pings every 50 ms
            while ws.latency == 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            await ws.send(f"{ws.latency}")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, connect(server.ws_url) as ws:
            await ws.send("latency?")
            latency = float(str(await ws.receive()))
    assert kinds == [WebSocket]
    assert latency > 0


async def test_accept_asgi_checks_the_size_before_buffering_and_closes_with_1009() -> None:
    seen: list[object] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ws = await accept(asgi=(scope, receive, send), max_message_size=1000)
        try:
            seen.append(await ws.receive())
        except ConnectionClosed as exc:
            seen.append(exc.code)
        done.set()

    frame = client_frame(2, b"x" * 1_000_000)
    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(upgrade_request())
                _, rest = await read_head(stream)
                await stream.send(frame[:5000])  # a 1 MB frame announced; 5 kB of it sent
                opcode, payload, _ = await read_frame(stream, rest)
            await done.wait()
    assert (opcode, close_code(payload)) == (8, 1009)
    assert seen == [1009]


async def test_accept_asgi_compression_follows_the_apps_options() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        compression = scope["path"] == "/deflate"
        async with accept(asgi=(scope, receive, send), compression=compression) as ws:
            await ws.send("x" * 1000)

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with connect(f"{server.ws_url}/deflate") as ws:
                assert await ws.receive() == "x" * 1000
                deflate = dict(ws.response_headers).get("sec-websocket-extensions", "")
            async with connect(f"{server.ws_url}/plain") as ws:
                assert await ws.receive() == "x" * 1000
                plain = dict(ws.response_headers).get("sec-websocket-extensions")
    assert deflate.startswith("permessage-deflate")
    assert plain is None


async def test_aioserver_accept_under_the_runner_keeps_its_class_and_origin_check() -> None:
    kinds: list[type] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ws = await AioServer.accept(asgi=(scope, receive, send))
        kinds.append(type(ws))
        await ws.send("hi")
        await ws.close()

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with connect(server.ws_url) as ws:
                assert await ws.receive() == "hi"
            with pytest.raises(HandshakeRejected) as info:
                async with connect(server.ws_url, headers={"Origin": "http://evil.example"}):
                    pass
    assert kinds == [AioServer]
    assert info.value.status_code == 403


async def test_websocket_access_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="anywire.server.access")
    with anyio.fail_after(timeout(10)):
        async with running(echo_app) as server, connect(f"{server.ws_url}/ws?a=1"):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "anywire.server.access"]
    assert len(lines) == 1
    assert lines[0].endswith('"GET /ws?a=1 HTTP/1.1" 101')
