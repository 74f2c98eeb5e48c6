"""The runner's ASGI ``http`` cycle, driven by httpx and by raw sockets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import h11
import httpx
import pytest

from .conftest import timeout
from .server_helpers import (
    Message,
    Receive,
    Scope,
    Send,
    exchange,
    header,
    raw_client,
    read_until_closed,
    running,
    status_of,
    text_response,
)

pytestmark = pytest.mark.anyio


async def test_scope_fields() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await text_response(send, "ok")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            response = await client.get(f"{server.url}/a%20b/c?x=1&y=%20", headers={"X-Test": "1"})
            assert response.text == "ok"
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == b"/a%20b/c"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    assert (b"x-test", b"1") in scope["headers"]
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in scope["headers"])
    assert scope["server"] == ("127.0.0.1", server.port)
    host, port = scope["client"]
    assert host == "127.0.0.1"
    assert isinstance(port, int)
    assert port > 0
    assert scope["state"] == {}


async def test_root_path_prefixes_path_and_raw_path() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await text_response(send, "ok")

    with anyio.fail_after(timeout(10)):
        async with running(app, root_path="/api") as server, httpx.AsyncClient() as client:
            await client.get(f"{server.url}/items")
    assert scopes[0]["root_path"] == "/api"
    assert scopes[0]["path"] == "/api/items"
    assert scopes[0]["raw_path"] == b"/api/items"


async def test_request_body_is_streamed_as_it_arrives() -> None:
    first_chunk_seen = anyio.Event()
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            first_chunk_seen.set()
            if not message["more_body"]:
                break
        body = b"".join(m["body"] for m in messages)
        await text_response(send, body.decode())

    async def upload() -> AsyncIterator[bytes]:
        yield b"first,"
        await first_chunk_seen.wait()  # the app saw part 1 before part 2 was sent
        yield b"second"

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            response = await client.post(server.url, content=upload())
    assert response.text == "first,second"
    assert messages[0] == {"type": "http.request", "body": b"first,", "more_body": True}
    assert messages[-1]["more_body"] is False
    assert all(m["type"] == "http.request" for m in messages)


async def test_content_length_body_ends_with_its_last_chunk() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        await text_response(send, "ok")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            await client.post(server.url, content=b"x" * 100)
            await client.get(server.url)
    assert messages == [
        {"type": "http.request", "body": b"x" * 100, "more_body": False},
        {"type": "http.request", "body": b"", "more_body": False},
    ]


async def test_streamed_response_is_chunked_and_flows() -> None:
    proceed = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})
        await proceed.wait()
        await send({"type": "http.response.body", "body": b"part2", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, raw_client(server.port) as client:
            await client.request()
            response = await client.next_event()
            assert isinstance(response, h11.Response)
            assert header(response, b"transfer-encoding") == b"chunked"
            first = await client.next_event()
            assert isinstance(first, h11.Data)
            assert first.data == b"part1"
            proceed.set()
            second = await client.next_event()
            assert isinstance(second, h11.Data)
            assert second.data == b"part2"


async def test_single_body_gets_a_content_length() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            response = await client.put(server.url)
    assert response.status_code == 201
    assert response.headers["content-length"] == "7"
    assert "transfer-encoding" not in response.headers
    assert response.headers["server"] == "anywire"
    assert "date" in response.headers


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    clients: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        clients.append(scope["client"])
        await text_response(send, scope["path"])

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, raw_client(server.port) as client:
            for path in ["/1", "/2", "/3"]:
                await client.request(target=path)
                response, chunks = await client.response()
                assert response.status_code == 200
                assert b"".join(chunks) == path.encode()
    assert len(set(clients)) == 1


async def test_expect_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await text_response(send, message["body"].decode())

    headers = [("expect", "100-continue"), ("content-length", "5")]
    with anyio.fail_after(timeout(10)):
        async with running(app) as server, raw_client(server.port) as client:
            head = b"POST / HTTP/1.1\r\nhost: x\r\n" + b"".join(
                f"{n}: {v}\r\n".encode() for n, v in headers
            )
            await client.stream.send(head + b"\r\n")
            assert (await client.stream.receive()).startswith(b"HTTP/1.1 100 ")
            await client.stream.send(b"hello")
            response = await client.stream.receive()
    assert status_of(response) == 200
    assert response.endswith(b"hello")


async def test_head_response_has_headers_but_no_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await text_response(send, "hello")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            response = await client.head(server.url)
            after = await client.get(server.url)  # the connection is still in step
    assert response.headers["content-length"] == "5"
    assert response.content == b""
    assert after.text == "hello"


async def test_http_disconnect_when_the_client_goes_away() -> None:
    received: list[Message] = []
    disconnected = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tick", "more_body": True})
        received.append(await receive())  # blocks until the client leaves
        disconnected.set()
        with pytest.raises(OSError, match="disconnected"):
            await send({"type": "http.response.body", "body": b"late", "more_body": True})

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            async with raw_client(server.port) as client:
                await client.request()
                await client.next_event()
                await client.next_event()
            await disconnected.wait()
    assert received[0]["type"] == "http.request"
    assert received[1] == {"type": "http.disconnect"}


async def test_receive_after_the_response_returns_disconnect() -> None:
    after: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await text_response(send, "done")
        after.append(await receive())

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            assert (await client.get(server.url)).text == "done"
            assert (await client.get(server.url)).text == "done"
    assert after == [{"type": "http.disconnect"}] * 2


async def test_app_that_raises_before_responding_gets_500_and_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            response = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert status_of(response) == 500
    assert b"connection: close" in response.lower()
    errors = [r for r in caplog.records if r.name == "anywire.server" and r.exc_info]
    assert errors
    assert "boom" in str(errors[0].exc_info[1])  # type: ignore[index]


async def test_app_that_raises_after_the_response_started_gets_the_connection_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            response = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert status_of(response) == 200
    assert b"partial" in response
    assert not response.endswith(b"0\r\n\r\n")  # the chunked body was never terminated
    assert any(r.exc_info for r in caplog.records if r.name == "anywire.server")


async def test_app_that_returns_without_a_response_gets_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            response = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert status_of(response) == 500
    assert "without sending a response" in caplog.text


async def test_protocol_misuse_by_the_app_raises_in_the_app() -> None:
    errors: list[Exception] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except RuntimeError as exc:
            errors.append(exc)
        await text_response(send, "ok")
        try:
            await send({"type": "http.response.body", "body": b"again"})
        except RuntimeError as exc:
            errors.append(exc)

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, httpx.AsyncClient() as client:
            assert (await client.get(server.url)).text == "ok"
    assert len(errors) == 2


async def test_access_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="anywire.server.access")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await text_response(send, "ok", status=201)

    with anyio.fail_after(timeout(10)):
        async with running(app) as server, raw_client(server.port) as client:
            await client.request(target="/path?q=1")
            await client.response()
            local_port = client.stream.extra(anyio.abc.SocketAttribute.local_port)
    lines = [r.getMessage() for r in caplog.records if r.name == "anywire.server.access"]
    assert lines == [f'127.0.0.1:{local_port} - "GET /path?q=1 HTTP/1.1" 201']


async def test_http_1_0_request() -> None:
    versions: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        versions.append(scope["http_version"])
        await text_response(send, "old")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            response = await exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert status_of(response) == 200
    assert response.endswith(b"old")
    assert versions == ["1.0"]


async def test_unread_connection_after_response_is_closed_by_the_client_side() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await text_response(send, "bye")

    with anyio.fail_after(timeout(10)):
        async with running(app) as server:
            request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(request)
                response = await read_until_closed(stream)
    assert status_of(response) == 200
    assert response.endswith(b"bye")
