"""aio's three quickstart programs, rewritten in examples/seed_aio_*.py, run against local servers.

The programs keep the seed's text; docs/migration-aio.md lists what changed.
Each is imported and called on both backends, then run as a program
(``--backend trio`` too): the echo server prints the port it bound
(``--port 0``) and stops on SIGINT.
"""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from anywire.streams import BufferedStream, serve_tcp
from tests.conftest import timeout
from tests.test_seed_examples import load_example, run_program, server_program, serving

pytestmark = pytest.mark.anyio

BUFFERED = "seed_aio_buffered_stream.py"
ECHO_SERVER = "seed_aio_echo_server.py"
TCP_CLIENT = "seed_aio_tcp_client.py"

BODY = b"<html><body>Hello from the local server</body></html>"


async def http_server(connection: BufferedStream) -> None:
    """Just enough HTTP/1.1 for the buffered stream program: read one request, answer it."""
    request = await connection.read_until(b"\r\n\r\n")
    assert request == b"GET / HTTP/1.1\r\nHost: httpforever.com\r\n\r\n"
    await connection.write_all(
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/html\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n%s" % (len(BODY), BODY)
    )


async def test_buffered_stream_program(capsys: pytest.CaptureFixture[str]) -> None:
    program = load_example(BUFFERED)
    with anyio.fail_after(timeout(10)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(serve_tcp, http_server)
            await program.main("127.0.0.1", info.port)
            tg.cancel_scope.cancel()
    assert capsys.readouterr().out == f"HTTP/1.1 200 OK\r\n\n{BODY.decode()}\n"


async def test_echo_server_and_tcp_client_programs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server, client = load_example(ECHO_SERVER), load_example(TCP_CLIENT)
    async with serving(server.main) as port:
        await client.main("127.0.0.1", port)
    assert capsys.readouterr().out.splitlines() == [
        f"listening on 127.0.0.1:{port}",
        "b'Hello World!!!'",
    ]
    assert re.search(r"client 127\.0\.0\.1:\d+ connected", caplog.text)


async def test_programs_run_as_programs(anyio_backend_name: str) -> None:
    backend = anyio_backend_name
    async with server_program(ECHO_SERVER, backend=backend) as server:
        host, port = server[0].rsplit(":", 1)
        out = await run_program(TCP_CLIENT, "--host", host, "--port", port, backend=backend)
    assert out == ["b'Hello World!!!'"]
    assert server[1:] == []  # the log lines go to stderr

    with anyio.fail_after(timeout(30)):
        async with anyio.create_task_group() as tg:
            info = await tg.start(serve_tcp, http_server)
            args = ("--host", "127.0.0.1", "--port", str(info.port))
            out = await run_program(BUFFERED, *args, backend=backend)
            tg.cancel_scope.cancel()
    assert out == ["HTTP/1.1 200 OK", "", BODY.decode()]
