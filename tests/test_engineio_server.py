"""The Engine.IO server on our runner, on asyncio and trio.

Raw polling requests go through httpx, raw WebSockets through
``anywire.websocket.connect``; end-to-end tests use our Engine.IO client.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import anywire.engineio as engineio
from anywire.engineio import ASGIApp, AsyncServer, exceptions
from anywire.errors import ConnectionClosed, HandshakeError
from anywire.websocket import connect as ws_connect
from tests.conftest import timeout
from tests.server_helpers import running

pytestmark = pytest.mark.anyio

RS = "\x1e"


async def eventually(predicate: Any, seconds: float = 5) -> None:
    """Wait until ``predicate()`` is true (state with no event to wait on)."""
    with anyio.fail_after(timeout(seconds)):
        while not predicate():  # noqa: ASYNC110 - polling server state in a test
            await anyio.sleep(0.01)


def poll_parked(eio: AsyncServer, sid: str) -> Callable[[], bool]:
    """For :func:`eventually`: is a GET of ``sid`` parked, waiting for packets?"""
    return lambda: bool(eio._conns[sid].polls)


@dataclass
class Recorder:
    """Events the server's handlers saw."""

    connects: list[str] = field(default_factory=list)
    messages: list[tuple[str, Any]] = field(default_factory=list)
    disconnects: list[tuple[str, str]] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def note(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, predicate: Any, seconds: float = 5) -> None:
        with anyio.fail_after(timeout(seconds)):
            while not predicate():
                await self.changed.wait()


def echo_server(**options: Any) -> tuple[AsyncServer, Recorder]:
    options.setdefault("shutdown_timeout", 0.5)
    eio = AsyncServer(**options)
    rec = Recorder()

    @eio.on("connect")
    def connect(sid: str, environ: dict[str, Any]) -> None:
        rec.connects.append(sid)
        rec.note()

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        rec.messages.append((sid, data))
        rec.note()
        await eio.send(sid, data)

    @eio.on("disconnect")
    def disconnect(sid: str, reason: str) -> None:
        rec.disconnects.append((sid, reason))
        rec.note()

    return eio, rec


@dataclass
class Env:
    eio: AsyncServer
    url: str
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    async def handshake(self, **params: str) -> dict[str, Any]:
        r = await self.http.get(self.url, params={"EIO": "4", "transport": "polling", **params})
        assert r.status_code == 200, r.text
        assert r.text.startswith("0")
        data: dict[str, Any] = json.loads(r.text[1:])
        return data

    async def get(self, sid: str) -> httpx.Response:
        return await self.http.get(
            self.url, params={"EIO": "4", "transport": "polling", "sid": sid}
        )

    async def post(self, sid: str, body: str | bytes) -> httpx.Response:
        return await self.http.post(
            self.url, params={"EIO": "4", "transport": "polling", "sid": sid}, content=body
        )


@asynccontextmanager
async def serving(eio: AsyncServer, **app_options: Any) -> AsyncIterator[Env]:
    async with eio, running(ASGIApp(eio, **app_options)) as server:
        async with httpx.AsyncClient(timeout=timeout(10)) as http:
            yield Env(eio, server.url.rstrip("/") + "/engine.io/", http)


# -- handshake and polling --------------------------------------------------------------


async def test_polling_handshake_fields_and_round_trip() -> None:
    eio, rec = echo_server(ping_interval=0.3, ping_timeout=4.35)
    async with serving(eio) as env:
        hs = await env.handshake()
        assert list(hs) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
        assert hs["upgrades"] == ["websocket"]
        assert (hs["pingInterval"], hs["pingTimeout"], hs["maxPayload"]) == (300, 4350, 1000000)
        sid = hs["sid"]
        assert rec.connects == [sid]
        assert eio.transport(sid) == "polling"
        r = await env.post(sid, "4hello" + RS + "bAQID")
        assert (r.status_code, r.text) == (200, "ok")
        await rec.wait_for(lambda: len(rec.messages) == 2)
        # async_handlers: one task per message, in no guaranteed order (as python-engineio)
        assert sorted(rec.messages, key=repr) == [(sid, "hello"), (sid, b"\x01\x02\x03")]
        texts: list[str] = []
        while len([t for t in texts if t.startswith(("4", "b"))]) < 2:
            texts += (await env.get(sid)).text.split(RS)
        assert "4hello" in texts
        assert "bAQID" in texts


async def test_ping_interval_tuple_advertises_grace() -> None:
    eio, _ = echo_server(ping_interval=(1, 2), max_http_buffer_size=1234)
    async with serving(eio) as env:
        hs = await env.handshake()
        assert (hs["pingInterval"], hs["maxPayload"]) == (3000, 1234)


async def test_bad_requests_get_reference_codes() -> None:
    eio, _ = echo_server(transports=["polling"])
    async with serving(eio) as env:
        base = {"EIO": "4", "transport": "polling"}
        cases = [
            ({**base, "transport": "carrier-pigeon"}, "GET", 0),
            ({**base, "sid": "nope"}, "GET", 1),
            (base, "POST", 2),
            ({**base, "EIO": "3"}, "GET", 5),
        ]
        for params, method, code in cases:
            r = await env.http.request(method, env.url, params=params)
            assert r.status_code == 400
            assert r.json()["code"] == code
        hs = await env.handshake()
        r = await env.http.put(env.url, params={**base, "sid": hs["sid"]})
        assert (r.status_code, r.json()["code"]) == (400, 3)


async def test_concurrent_get_ends_the_session() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        results: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                results.append(await env.get(sid))

            tg.start_soon(first)
            await eventually(poll_parked(eio, sid))
            second = await env.get(sid)
        assert second.status_code == 400
        assert results[0].text == "1"
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "transport error")]
        assert (await env.get(sid)).status_code == 400


async def test_oversize_post_ends_the_session() -> None:
    eio, rec = echo_server(max_http_buffer_size=100)
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        r = await env.post(sid, "4" + "x" * 200)
        assert r.status_code == 413
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "transport error")]


async def test_invalid_payload_ends_the_session() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        other = (await env.handshake())["sid"]
        r = await env.post(sid, "9garbage")
        assert r.status_code == 400
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "transport error")]
        assert (await env.post(other, "4still here")).text == "ok"


async def test_connect_refusal() -> None:
    eio = AsyncServer(shutdown_timeout=0.5)
    seen: list[str] = []

    @eio.on("connect")
    def connect(sid: str, environ: dict[str, Any]) -> Any:
        token = environ["QUERY_STRING"]
        seen.append(environ["REQUEST_METHOD"])
        if "false" in token:
            return False
        if "data" in token:
            return {"why": "no"}
        if "raise" in token:
            raise engineio.ConnectionRefusedError("go away")
        if "boom" in token:
            raise RuntimeError("handler bug")
        return None

    async with serving(eio) as env:
        base = {"EIO": "4", "transport": "polling"}
        for flag, body in [
            ("false", "Unauthorized"),
            ("data", {"why": "no"}),
            ("raise", "go away"),
            ("boom", "Unauthorized"),
        ]:
            r = await env.http.get(env.url, params={**base, "x": flag})
            assert r.status_code == 401
            assert r.json() == body
        assert seen == ["GET"] * 4
        assert (await env.handshake())["sid"]
        with pytest.raises(HandshakeError):
            async with ws_connect(env.ws_url + "?EIO=4&transport=websocket&x=false"):
                pass


async def test_server_not_started_says_so() -> None:
    eio = AsyncServer()
    async with running(ASGIApp(eio)) as server:
        async with httpx.AsyncClient() as http:
            r = await http.get(server.url.rstrip("/") + "/engine.io/?EIO=4&transport=polling")
    assert r.status_code == 500
    assert "async with server" in r.text


async def test_lifespan_of_asgi_app_runs_the_server() -> None:
    eio, _ = echo_server()
    events: list[str] = []
    app = ASGIApp(
        eio, on_startup=lambda: events.append("start"), on_shutdown=lambda: events.append("stop")
    )
    async with running(app, lifespan="on") as server:
        async with engineio.connect(server.url) as client:
            await client.send("hi")
            with anyio.fail_after(timeout(5)):
                assert await client.receive() == "hi"
    assert events == ["start", "stop"]


# -- WebSocket ----------------------------------------------------------------------------


async def test_websocket_only_session_raw() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            first = await ws.receive()
            assert isinstance(first, str)
            assert first.startswith("0")
            hs = json.loads(first[1:])
            assert hs["upgrades"] == []
            await ws.send("4hello")
            assert await ws.receive() == "4hello"
            await ws.send(b"\x00\xff")
            assert await ws.receive() == b"\x00\xff"
            assert eio.transport(hs["sid"]) == "websocket"
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(hs["sid"], "transport close")]


async def test_upgrade_raw() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        url = env.ws_url + f"?EIO=4&transport=websocket&sid={sid}"
        async with anyio.create_task_group() as tg:
            polls: list[str] = []

            async def poll() -> None:
                polls.append((await env.get(sid)).text)

            tg.start_soon(poll)
            await eventually(poll_parked(eio, sid))
            async with ws_connect(url) as ws:
                await ws.send("2probe")
                assert await ws.receive() == "3probe"
                await eventually(lambda: polls == ["6"])  # the probe released the GET
                await ws.send("5")
                await eventually(lambda: eio.transport(sid) == "websocket")
                await eio.send(sid, "pushed")
                assert await ws.receive() == "4pushed"
                r = await env.get(sid)
                assert r.status_code == 400
                with pytest.raises(HandshakeError):
                    async with ws_connect(url):
                        pass
                await ws.send("1")
                await rec.wait_for(lambda: rec.disconnects)
        assert polls == ["6"]
        assert rec.disconnects == [(sid, "client disconnect")]


async def test_server_close_between_probe_and_upgrade_packet() -> None:
    """The CLOSE goes out on the WebSocket once "5" arrives; the session ends then."""
    eio, rec = echo_server(close_timeout=60)
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        url = env.ws_url + f"?EIO=4&transport=websocket&sid={sid}"
        async with ws_connect(url) as ws:
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await eio.disconnect(sid)
            assert rec.disconnects == [(sid, "server disconnect")]
            assert sid in eio._conns  # CLOSING: the CLOSE waits for the client's switch
            await ws.send("5")
            with anyio.fail_after(timeout(5)):
                assert await ws.receive() == "1"
                with pytest.raises(ConnectionClosed):
                    await ws.receive()
        assert sid not in eio._conns


async def test_websocket_origin_is_checked() -> None:
    eio, _ = echo_server()
    async with serving(eio) as env:
        url = env.ws_url + "?EIO=4&transport=websocket"
        with pytest.raises(HandshakeError):
            async with ws_connect(url, headers={"Origin": "http://evil.example"}):
                pass
        r = await env.http.get(
            env.url,
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": "http://evil.example"},
        )
        assert r.status_code == 403
        assert r.json()["code"] == 4


# -- heartbeat and disconnects ------------------------------------------------------------


async def test_ping_timeout_is_on_time() -> None:
    eio, rec = echo_server(ping_interval=0.1, ping_timeout=0.2)
    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            hs = json.loads(str(await ws.receive())[1:])
            assert await ws.receive() == "2"
            pinged = anyio.current_time()
            await rec.wait_for(lambda: rec.disconnects)
            late = anyio.current_time() - pinged - 0.2
            assert rec.disconnects == [(hs["sid"], "ping timeout")]
            assert -0.01 < late < timeout(0.1)
            assert await ws.receive() == "1"


async def test_server_disconnect_reason_and_closed_send() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        async with engineio.connect(env.url.removesuffix("/engine.io/")) as client:
            await rec.wait_for(lambda: rec.connects)
            sid = rec.connects[0]
            await eio.disconnect(sid)
            await rec.wait_for(lambda: rec.disconnects)
            assert rec.disconnects == [(sid, "server disconnect")]
            with pytest.raises(exceptions.SocketIsClosedError):
                await eio.send(sid, "late")
            with anyio.fail_after(timeout(5)):
                await client.wait()
        with pytest.raises(exceptions.SocketIsClosedError):
            await eio.send("unknown", "x")


@pytest.mark.parametrize("transports", [None, "polling", "websocket"])
async def test_end_to_end_with_our_client(transports: Any) -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        root = env.url.removesuffix("/engine.io/")
        async with engineio.connect(root, transports=transports) as client:
            for data in ["hello", b"\x00\x01", "x" * 5000]:
                await client.send(data)
                with anyio.fail_after(timeout(5)):
                    assert await client.receive() == data
            if transports is None:
                await eventually(lambda: client.current_transport == "websocket")
            sid = client.sid
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "client disconnect")]


async def test_failing_message_handler_keeps_session() -> None:
    eio = AsyncServer()
    got = anyio.Event()

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        if data == "boom":
            raise RuntimeError("handler bug")
        await eio.send(sid, data)
        got.set()

    async with serving(eio) as env:
        async with engineio.connect(env.url.removesuffix("/engine.io/")) as client:
            await client.send("boom")
            await client.send("ok")
            with anyio.fail_after(timeout(5)):
                assert await client.receive() == "ok"


# -- API --------------------------------------------------------------------------------


async def test_session_api_and_utilities(anyio_backend_name: str) -> None:
    eio, _rec = echo_server(async_handlers=False)
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        assert await eio.get_session(sid) == {}
        await eio.save_session(sid, {"a": 1})
        async with eio.session(sid) as s:
            s["b"] = 2
        assert await eio.get_session(sid) == {"a": 1, "b": 2}
        with pytest.raises(KeyError):
            await eio.get_session("nope")
        assert len(eio.generate_id()) >= 20
        modes = ["aiohttp", "asgi"] if anyio_backend_name == "asyncio" else ["asgi"]
        assert eio.async_modes() == modes
        q = eio.create_queue()
        with pytest.raises(eio.get_queue_empty_exception()):
            q.get_nowait()
        ev = eio.create_event()
        ev.set()
        await ev.wait()
        await eio.sleep(0)
        assert eio.reason.PING_TIMEOUT == "ping timeout"


async def test_background_task_is_owned_and_shutdown_cancels(
    anyio_backend_name: str,
) -> None:
    eio = AsyncServer()
    assert eio.is_asyncio_based() == (anyio_backend_name == "asyncio")
    with pytest.raises(RuntimeError):
        eio.start_background_task(anyio.sleep, 1)
    cancelled = anyio.Event()

    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with eio:
        task = eio.start_background_task(forever)
        result = await eio.start_background_task(lambda x: x * 2, 21)
        assert result == 42
        with anyio.fail_after(timeout(5)):
            await eio.shutdown()
        assert cancelled.is_set()
        assert task.done()


async def test_shutdown_closes_sessions() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            await ws.receive()
            with anyio.fail_after(timeout(5)):
                await eio.shutdown()
            assert await ws.receive() == "1"
            with pytest.raises(ConnectionClosed):
                await ws.receive()
        assert [r for _, r in rec.disconnects] == ["server disconnect"]


async def test_compression_cookie_and_cors() -> None:
    eio, _ = echo_server(
        cookie="io", cors_allowed_origins="http://ok.example", compression_threshold=10
    )
    async with serving(eio) as env:
        r = await env.http.get(
            env.url,
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": "http://ok.example", "Accept-Encoding": "gzip"},
        )
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["access-control-allow-origin"] == "http://ok.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        sid = json.loads(r.text[1:])["sid"]
        assert r.headers["set-cookie"] == f"io={sid}; path=/; SameSite=Lax"
        r = await env.http.options(env.url, headers={"Origin": "http://ok.example"})
        assert r.status_code == 200
        assert "GET" in r.headers["access-control-allow-methods"]
        assert gzip.decompress(gzip.compress(b"x")) == b"x"


async def test_static_files(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    eio = AsyncServer()
    app_opts = {"static_files": {"/": str(tmp_path / "index.html"), "/static": str(tmp_path)}}
    async with serving(eio, **app_opts) as env:
        root = env.url.removesuffix("/engine.io/")
        r = await env.http.get(root)
        assert (r.status_code, r.text) == (200, "<h1>hi</h1>")
        assert r.headers["content-type"] == "text/html"
        assert (await env.http.get(root + "/static/index.html")).text == "<h1>hi</h1>"
        assert (await env.http.get(root + "/missing")).status_code == 404


def test_binary_on_polling_is_base64() -> None:
    assert base64.b64encode(b"\x01\x02\x03").decode() == "AQID"
    logging.getLogger("anywire.engineio.server").debug("ok")


# -- bounds and isolation -----------------------------------------------------------------


async def test_client_that_never_reads_is_disconnected() -> None:
    eio, rec = echo_server(max_queue=8)
    async with serving(eio) as env:
        other = (await env.handshake())["sid"]
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            sid = json.loads(str(await ws.receive())[1:])["sid"]
            blob = os.urandom(65536)  # incompressible: permessage-deflate is on

            async def flood() -> None:
                while True:  # the writer blocks on TCP; the bounded queue fills
                    await eio.send(sid, blob)
                    await anyio.lowlevel.checkpoint()

            with anyio.fail_after(timeout(10)), pytest.raises(exceptions.SocketIsClosedError):
                await flood()
            await rec.wait_for(lambda: rec.disconnects)
            assert rec.disconnects == [(sid, "transport error")]
        assert (await env.post(other, "4alive")).text == "ok"
        assert eio.transport(other) == "polling"


# -- foreign host -------------------------------------------------------------------------


async def test_mounted_under_uvicorn_with_outer_lifespan(anyio_backend_name: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("uvicorn runs on asyncio only")
    import socket

    import uvicorn

    eio, rec = echo_server()
    inner = ASGIApp(eio, engineio_path="")

    async def outer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the framework's lifespan enters the server
            await receive()
            async with eio:
                await send({"type": "lifespan.startup.complete"})
                await receive()
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["path"].startswith("/rt/"):
            await inner({**scope, "path": scope["path"][3:]}, receive, send)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(outer, lifespan="on", log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(timeout(5)):
            while not server.started:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        for transports in (None, "polling", "websocket"):
            async with engineio.connect(url, engineio_path="rt/", transports=transports) as client:
                await client.send("via uvicorn")
                with anyio.fail_after(timeout(5)):
                    assert await client.receive() == "via uvicorn"
        server.should_exit = True
    sock.close()
    assert len(rec.disconnects) == 3


async def test_disconnect_all_with_reason_and_failing_disconnect_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    eio, rec = echo_server()
    failing = eio.handlers["disconnect"]

    def disconnect(sid: str, reason: str) -> None:
        failing(sid, reason)
        raise RuntimeError("disconnect handler bug")

    eio.on("disconnect", disconnect)
    async with serving(eio) as env:
        sids = {(await env.handshake())["sid"] for _ in range(3)}
        with caplog.at_level(logging.ERROR, "anywire.engineio.server"):
            await eio.disconnect(reason=eio.reason.TRANSPORT_ERROR)
        assert {(sid, "transport error") for sid in sids} == set(rec.disconnects)
        assert "disconnect handler error" in caplog.text
        for sid in sids:  # the CLOSE packet waits for each session's next GET
            assert (await env.get(sid)).text == "1"
        hs = await env.handshake()
        assert (await env.post(hs["sid"], "4after")).text == "ok"


async def test_ping_over_polling_and_pong_keeps_session() -> None:
    eio, rec = echo_server(ping_interval=0.1, ping_timeout=0.3)
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        for _ in range(3):
            assert (await env.get(sid)).text == "2"
            assert (await env.post(sid, "3")).text == "ok"
        assert rec.disconnects == []
        assert (await env.get(sid)).text == "2"
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "ping timeout")]


async def test_many_concurrent_sessions_both_transports() -> None:
    """A small load test: 100 WebSocket and 20 polling sessions echo concurrently."""
    eio, rec = echo_server()
    n_ws, n_poll, rounds = 100, 20, 5
    async with serving(eio) as env:

        async def ws_client(i: int) -> None:
            async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
                await ws.receive()
                for r in range(rounds):
                    await ws.send(f"4{i}-{r}")
                    assert await ws.receive() == f"4{i}-{r}"

        async def polling_client(i: int) -> None:
            sid = (await env.handshake())["sid"]
            for r in range(rounds):
                assert (await env.post(sid, f"4p{i}-{r}")).text == "ok"
                assert (await env.get(sid)).text == f"4p{i}-{r}"
            assert (await env.post(sid, "1")).text == "ok"

        with anyio.fail_after(timeout(60)):
            async with anyio.create_task_group() as tg:
                for i in range(n_ws):
                    tg.start_soon(ws_client, i)
                for i in range(n_poll):
                    tg.start_soon(polling_client, i)
        await rec.wait_for(lambda: len(rec.disconnects) == n_ws + n_poll, 10)
    assert len(rec.messages) == (n_ws + n_poll) * rounds
    assert {reason for _, reason in rec.disconnects} == {"transport close", "client disconnect"}


async def test_binary_content_type_post_ends_the_session() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        r = await env.http.post(
            env.url,
            params={"EIO": "4", "transport": "polling", "sid": sid},
            content=b"4hi",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 400
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "transport error")]
