"""Bad input and limits, each sent by a raw socket client to a running server."""

from __future__ import annotations

import logging

import anyio
import pytest

from .conftest import timeout
from .server_helpers import (
    RawClient,
    Receive,
    Scope,
    Send,
    exchange,
    hello_app,
    raw_client,
    read_until_closed,
    running,
    status_of,
    text_response,
)

pytestmark = pytest.mark.anyio


async def body_reader(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers with its size."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message["body"])
        if not message["more_body"]:
            break
    await text_response(send, str(size))


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="malformed-request-line"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="missing-host"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n", 400, id="bad-header"),
        pytest.param(b"GET / HTTP/2.0\r\nhost: x\r\n\r\n", 505, id="http-2.0"),
        pytest.param(b"GET / HTTP/3\r\nhost: x\r\n\r\n", 505, id="http-3"),
        pytest.param(
            b"GET / HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 2000 + b"\r\n\r\n",
            431,
            id="oversize-headers",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            400,
            id="bad-chunk",
        ),
    ],
)
async def test_bad_input_is_refused_and_the_connection_closed(
    request_bytes: bytes, status: int
) -> None:
    with anyio.fail_after(timeout(10)):
        async with running(body_reader, max_header_bytes=1024) as server:
            response = await exchange(server.port, request_bytes)
    assert status_of(response) == status
    assert b"connection: close" in response.lower()


async def test_body_above_max_body_size_gets_413() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(body_reader, max_body_size=10) as server:
            small = await exchange(
                server.port,
                b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 3\r\n\r\nabc",
            )
            large = await exchange(
                server.port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n"
            )
            chunked = await exchange(
                server.port,
                b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                + b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
            )
    assert status_of(small) == 200
    assert small.endswith(b"3")
    assert status_of(large) == 413
    assert status_of(chunked) == 413


async def test_max_body_size_none_lifts_the_limit() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(body_reader, max_body_size=None) as server:
            size = 3 * 1024 * 1024
            head = f"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n".encode()
            async with raw_client(server.port) as client:
                await client.stream.send(head + b"x" * size)
                response, chunks = await client.response()
    assert response.status_code == 200
    assert b"".join(chunks) == str(size).encode()


async def test_slow_headers_get_408_and_a_close() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(hello_app, header_timeout=0.3) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n")  # never finished
                response = await read_until_closed(stream)
    assert status_of(response) == 408


async def test_silent_connection_is_closed_by_the_header_timeout() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(hello_app, header_timeout=0.3) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                assert await read_until_closed(stream) == b""


async def test_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(hello_app, keep_alive_timeout=0.3) as server:
            async with raw_client(server.port) as client:
                await client.request()
                response, _ = await client.response()
                assert response.status_code == 200
                assert await read_until_closed(client.stream) == b""


async def test_max_connections_logs_and_makes_new_connections_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="anywire.server")
    release = anyio.Event()
    first_arrived = anyio.Event()
    served: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        served.append(scope["path"])
        if scope["path"] == "/first":
            first_arrived.set()
            await release.wait()
        await text_response(send, "ok")

    with anyio.fail_after(timeout(10)):
        async with running(app, max_connections=1) as server:
            first = RawClient(await anyio.connect_tcp("127.0.0.1", server.port))
            async with first.stream:
                await first.request(target="/first")
                await first_arrived.wait()
                second = RawClient(await anyio.connect_tcp("127.0.0.1", server.port))
                await second.request(target="/second")
                await anyio.wait_all_tasks_blocked()
                assert served == ["/first"]
                assert "max_connections (1) reached" in caplog.text
                release.set()
                assert (await first.response())[0].status_code == 200
            async with second.stream:  # the first connection closed: the second one's turn
                assert (await second.response())[0].status_code == 200
    assert served == ["/first", "/second"]
