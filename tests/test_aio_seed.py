"""The aio seed's three quickstart programs, run against local servers.

Each program keeps the seed's text. What changed, and only that:

* ``from aio import ...`` became ``from anywire import ...``;
* host and port: local servers on a port the test reads back (the seed used
  httpforever.com:80 and 127.0.0.1:8080), passed in as ``port``;
* asyncio-specific lines: ``asyncio.run(main())`` is the test itself, and the
  echo handler gets our ``BufferedStream`` instead of a raw socket, so
  ``loop.sock_recv``/``loop.sock_sendall`` became ``read``/``write_all``;
* the server's ``main`` passes ``task_status`` on, so the test learns the port.

``ruff format`` turned the seed's single quotes into double quotes.
"""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from anywire import net, stream
from anywire.streams import BufferedStream, serve_tcp
from tests.conftest import timeout

pytestmark = pytest.mark.anyio

# --- seed program 1: buffered stream ---------------------------------------------------------


async def buffered_stream_main(port: int) -> None:
    async with await net.open_tcp_stream("127.0.0.1", port) as http_stream:
        buffered_stream = stream.BufferedStream(http_stream)
        await buffered_stream.write_all(
            b"GET / HTTP/1.1\r\nHost: httpforever.com\r\n\r\n",
        )
        status = await buffered_stream.read_until(b"\r\n")
        print(status.decode())

        headers = await buffered_stream.read_until(b"\r\n\r\n")
        headers = dict(
            line.split(b":", maxsplit=1)
            for line in headers.removesuffix(b"\r\n\r\n").split(b"\r\n")
        )

        body = await buffered_stream.read_exactly(size=int(headers[b"Content-Length"]))
        print(body.decode())


# --- seed program 2: echo TCP server ---------------------------------------------------------


async def echo(socket: stream.BufferedStream) -> None:
    peer_address, peer_port = net.get_socket_peer_address(socket)
    logging.info("client %s:%d connected", peer_address, peer_port)

    data = await socket.read(1024)
    await socket.write_all(data)


async def echo_server_main(*, task_status: anyio.abc.TaskStatus[net.TCPServerInfo]) -> None:
    logging.basicConfig(level=logging.INFO)

    await net.start_tcp_server(
        "127.0.0.1", 0, echo, graceful_shutdown=10.0, task_status=task_status
    )


# --- seed program 3: TCP client stream -------------------------------------------------------


async def tcp_client_main(port: int) -> None:
    async with await net.open_tcp_stream("127.0.0.1", port) as tcp_stream:
        await tcp_stream.write(b"Hello World!!!")

        while data := await tcp_stream.read(1024):
            print(data)


# --- the tests -------------------------------------------------------------------------------

BODY = b"<html><body>Hello from the local server</body></html>"


async def http_server(connection: BufferedStream) -> None:
    """Just enough HTTP/1.1 for program 1: read one request, answer it."""
    request = await connection.read_until(b"\r\n\r\n")
    assert request == b"GET / HTTP/1.1\r\nHost: httpforever.com\r\n\r\n"
    await connection.write_all(
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/html\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n%s" % (len(BODY), BODY)
    )


async def test_buffered_stream_program(capsys: pytest.CaptureFixture[str]) -> None:
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(serve_tcp, http_server)
            await buffered_stream_main(info.port)
            tg.cancel_scope.cancel()
    assert capsys.readouterr().out == f"HTTP/1.1 200 OK\r\n\n{BODY.decode()}\n"


async def test_echo_server_and_tcp_client_programs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(echo_server_main)
            await tcp_client_main(info.port)
            tg.cancel_scope.cancel()
    assert capsys.readouterr().out == "b'Hello World!!!'\n"
    assert re.search(r"client 127\.0\.0\.1:\d+ connected", caplog.text)
