"""The Engine.IO server's hot path: handler dispatch, the heartbeat timer, parked GETs.

Messages reach handlers without a task each (``_server_handlers.HandlerRunner``), the
heartbeat timer is not touched per message, and a parked GET waits in its own task:
these tests pin the behaviour those shortcuts must keep.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywire.engineio import AsyncServer
from anywire.engineio._packets import Packet, PacketType, Transport
from anywire.engineio._server_handlers import MAX_IDLE_WORKERS
from anywire.engineio._server_http import query_of
from anywire.engineio._server_session import ServerConfig, ServerSession
from anywire.engineio._session_events import Closed, CloseTransport, SendPackets, SessionState
from anywire.errors import ConnectionClosed
from anywire.websocket import connect as ws_connect
from tests.conftest import timeout
from tests.test_engineio_server import RS, echo_server, eventually, serving

pytestmark = pytest.mark.anyio


# -- message handlers ---------------------------------------------------------------------


async def test_waiting_handler_does_not_hold_back_the_next_message() -> None:
    """async_handlers=True: each message runs as if in its own task (python-engineio)."""
    eio = AsyncServer(shutdown_timeout=0.5)
    second_seen = anyio.Event()

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        if data == "first":
            await second_seen.wait()  # only the next message's handler can set it
            await eio.send(sid, "first done")
        else:
            second_seen.set()
            await eio.send(sid, "second done")

    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            assert str(await ws.receive()).startswith("0")
            await ws.send("4first")
            await ws.send("4second")
            with anyio.fail_after(timeout(5)):
                assert await ws.receive() == "4second done"
                assert await ws.receive() == "4first done"


async def test_many_waiting_handlers_run_at_once_and_workers_are_bounded() -> None:
    eio = AsyncServer(shutdown_timeout=0.5)
    count = 3 * MAX_IDLE_WORKERS
    arrived: list[str] = []
    all_in = anyio.Event()

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        arrived.append(data)
        if len(arrived) == count:
            all_in.set()
        await all_in.wait()  # every handler waits until all of them started
        await eio.send(sid, data)

    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            assert str(await ws.receive()).startswith("0")
            for n in range(count):
                await ws.send(f"4m{n}")
            with anyio.fail_after(timeout(5)):
                echoed = {await ws.receive() for _ in range(count)}
            assert echoed == {f"4m{n}" for n in range(count)}
            runner = eio._runner
            assert runner is not None
            await eventually(lambda: runner.workers <= MAX_IDLE_WORKERS)


@pytest.mark.parametrize(("async_handlers", "use_sync"), [(False, False), (True, True)])
async def test_handlers_in_order_without_async_handlers_and_for_sync_handlers(
    async_handlers: bool, use_sync: bool
) -> None:
    eio = AsyncServer(async_handlers=async_handlers, shutdown_timeout=0.5)
    seen: list[str] = []
    busy = False

    async def async_message(sid: str, data: Any) -> None:
        nonlocal busy
        assert not busy, "handlers overlapped"
        busy = True
        await anyio.sleep(0.001)
        seen.append(data)
        busy = False

    def sync_message(sid: str, data: Any) -> None:
        seen.append(data)

    eio.on("message", sync_message if use_sync else async_message)
    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            assert str(await ws.receive()).startswith("0")
            for n in range(20):
                await ws.send(f"4m{n}")
            await eventually(lambda: len(seen) == 20)
    assert seen == [f"m{n}" for n in range(20)]


async def test_failing_sync_and_async_handlers_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    eio = AsyncServer(shutdown_timeout=0.5)

    @eio.on("message")
    def message(sid: str, data: Any) -> Any:
        if data == "sync boom":
            raise RuntimeError("sync bug")

        async def later() -> None:
            if data == "async boom":
                raise RuntimeError("async bug")
            await eio.send(sid, data)

        return later()  # a sync callable returning an awaitable is awaited too

    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            assert str(await ws.receive()).startswith("0")
            for data in ("sync boom", "async boom", "fine"):
                await ws.send("4" + data)
            with anyio.fail_after(timeout(5)):
                assert await ws.receive() == "4fine"
    errors = [r.getMessage() for r in caplog.records if r.exc_info]
    assert errors == ["message handler error", "message handler error"]


# -- heartbeat ---------------------------------------------------------------------------


async def test_ping_timeout_is_on_time_while_messages_flow() -> None:
    """Messages do not move the heartbeat; the PONG deadline holds to the millisecond."""
    eio, rec = echo_server(ping_interval=0.2, ping_timeout=0.3)
    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            hs = json.loads(str(await ws.receive())[1:])
            pinged = None
            with anyio.fail_after(timeout(5)):
                while not rec.disconnects:
                    await ws.send("4tick")
                    frame = await ws.receive()
                    if frame == "2" and pinged is None:
                        pinged = anyio.current_time()
            assert pinged is not None
            late = anyio.current_time() - pinged - 0.3
            assert rec.disconnects == [(hs["sid"], "ping timeout")]
            assert -0.01 < late < timeout(0.1)


async def test_upgrade_timeout_fires_before_the_next_ping() -> None:
    """A deadline that moves earlier (the upgrade's) wakes the sleeping timer."""
    eio, rec = echo_server(ping_interval=20, upgrade_timeout=0.2)
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        url = env.ws_url + f"?EIO=4&transport=websocket&sid={sid}"
        async with ws_connect(url) as ws:
            started = anyio.current_time()
            with anyio.fail_after(timeout(5)), pytest.raises(ConnectionClosed):
                await ws.receive()  # closed by the server at the upgrade timeout
            took = anyio.current_time() - started
        assert 0.15 < took < 0.2 + timeout(0.2)
        assert eio.transport(sid) == "polling"
        assert rec.disconnects == []


# -- polling ------------------------------------------------------------------------------


async def test_parked_get_whose_client_leaves_ends_the_session() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        with anyio.move_on_after(0.2):
            await env.get(sid)  # parked: nothing to send; cancelling closes the connection
        await rec.wait_for(lambda: rec.disconnects)
        assert rec.disconnects == [(sid, "transport error")]


async def test_parked_get_is_answered_by_a_later_message() -> None:
    eio, rec = echo_server()
    async with serving(eio) as env:
        sid = (await env.handshake())["sid"]
        async with anyio.create_task_group() as tg:
            bodies: list[str] = []

            async def poll() -> None:
                bodies.append((await env.get(sid)).text)

            tg.start_soon(poll)
            await eventually(lambda: bool(eio._conns[sid].polls))
            await eio.send(sid, "late")
        assert bodies == ["4late"]
        r = await env.post(sid, "4a" + RS + "4b")
        assert r.text == "ok"
        await rec.wait_for(lambda: len(rec.messages) == 2)


# -- request parsing ----------------------------------------------------------------------

_QUERY_CHARS = st.sampled_from(list("abEIO4=&%+;2Fx_- "))


@given(st.text(_QUERY_CHARS, max_size=30))
def test_query_of_reads_as_parse_qs(text: str) -> None:
    raw = text.encode("latin-1")
    expected = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    assert query_of({"query_string": raw}) == expected


# -- the core's poll_more (sans-I/O) -----------------------------------------------------


def _answered_session(max_payload: int = 1000) -> ServerSession:
    config = ServerConfig(max_payload=max_payload)
    core = ServerSession("sid", Transport.POLLING, now=0.0, config=config)
    core.handle_get(0.0)  # the OPEN packet
    (sent,) = core.handle_get(0.0) + core.send_message("m1", 0.0)
    assert isinstance(sent, SendPackets)
    assert [p.data for p in sent.packets] == ["m1"]
    return core


def test_poll_more_adds_what_was_queued_since() -> None:
    core = _answered_session()
    assert core.send_message("m2", 0.0) + core.send_message(b"\x01", 0.0) == []
    extra, events = core.poll_more((Packet(PacketType.MESSAGE, "m1"),), 0.0)
    assert [p.data for p in extra] == ["m2", b"\x01"]
    assert events == []
    assert core.queued == (0, 0)
    assert core.poll_more((Packet(PacketType.MESSAGE, "m1"),), 0.0) == ((), [])


def test_poll_more_keeps_to_max_payload() -> None:
    core = _answered_session(max_payload=12)  # "4m1" + RS + "4m2" = 7 bytes; "4m3" makes 11
    sent = (Packet(PacketType.MESSAGE, "m1"),)
    for data in ("m2", "m3", "m4"):
        core.send_message(data, 0.0)
    extra, _ = core.poll_more(sent, 0.0)
    assert [p.data for p in extra] == ["m2", "m3"]
    assert core.queued[0] == 1
    big = (Packet(PacketType.MESSAGE, "x" * 11),)
    assert core.poll_more(big, 0.0) == ((), [])  # nothing fits beside it


def test_poll_more_takes_the_close_packet_and_finishes() -> None:
    core = _answered_session()
    core.send_message("m2", 0.0)
    closing = core.close(0.0)
    assert [type(e) for e in closing] == [Closed]
    extra, events = core.poll_more((Packet(PacketType.MESSAGE, "m1"),), 0.0)
    assert [p.type for p in extra] == [PacketType.MESSAGE, PacketType.CLOSE]
    assert events == [CloseTransport(Transport.POLLING)]
    assert core.state is SessionState.CLOSED


async def test_json_text_reaches_the_handler_decoded_as_in_python_engineio() -> None:
    """python-engineio decodes text that parses as JSON (not starting with a digit)."""
    eio = AsyncServer(shutdown_timeout=0.5, async_handlers=False)
    seen: list[Any] = []

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        seen.append(data)
        if len(seen) == 6:
            await eio.send(sid, "done")

    async with serving(eio) as env:
        async with ws_connect(env.ws_url + "?EIO=4&transport=websocket") as ws:
            assert str(await ws.receive()).startswith("0")
            for text in ('4{"a": [1, 2]}', "4[1, 2]", "4hello", "4123", '4"quoted"', "4{bad"):
                await ws.send(text)
            with anyio.fail_after(timeout(5)):
                assert await ws.receive() == "4done"
    assert seen == [{"a": [1, 2]}, [1, 2], "hello", "123", "quoted", "{bad"]
