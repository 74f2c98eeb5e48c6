"""Listening: port 0, several addresses, IPv6 and a Unix socket."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import anyio
import httpx
import pytest

from anywire.server import ServerInfo, serve_app

from .conftest import timeout
from .server_helpers import Receive, Scope, Send, running, text_response

pytestmark = pytest.mark.anyio


def _have_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _have_ipv6_loopback(), reason="no IPv6 loopback")


@pytest.fixture
def socket_path() -> Iterator[str]:
    """A short path (Unix socket paths are limited to about 100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="aw") as directory:
        yield os.path.join(directory, "server.sock")


async def where_app(scope: Scope, receive: Receive, send: Send) -> None:
    await text_response(send, f"{scope['server']} {scope['client']}")


async def test_port_zero_reports_the_bound_port() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(where_app) as server, httpx.AsyncClient() as client:
            assert server.port > 0
            assert server.info.urls == (f"http://127.0.0.1:{server.port}",)
            response = await client.get(server.url)
    assert response.text.startswith(f"('127.0.0.1', {server.port})")


async def test_unix_socket(socket_path: str) -> None:
    with anyio.fail_after(timeout(10)):
        async with running(where_app, uds=socket_path) as server:
            assert server.info.unix_paths == (socket_path,)
            assert server.info.addresses == ()
            transport = httpx.AsyncHTTPTransport(uds=socket_path)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.get("http://localhost/")
    assert response.text == f"('{socket_path}', None) None"


async def test_a_stale_socket_file_is_replaced(socket_path: str) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(socket_path)  # left behind by an earlier run
    with anyio.fail_after(timeout(10)):
        async with running(where_app, uds=socket_path):
            pass


@needs_ipv6
async def test_several_addresses_ipv4_ipv6_and_unix(socket_path: str) -> None:
    binds = ["127.0.0.1:0", "[::1]:0", f"unix:{socket_path}"]
    with anyio.fail_after(timeout(10)):
        async with running(where_app, binds=binds) as server:
            info: ServerInfo = server.info
            (host4, port4), (host6, port6) = info.addresses
            assert (host4, host6) == ("127.0.0.1", "::1")
            assert info.urls[1] == f"http://[::1]:{port6}"
            async with httpx.AsyncClient() as client:
                v4 = await client.get(f"http://127.0.0.1:{port4}/")
                v6 = await client.get(f"http://[::1]:{port6}/")
            transport = httpx.AsyncHTTPTransport(uds=socket_path)
            async with httpx.AsyncClient(transport=transport) as client:
                unix = await client.get("http://localhost/")
    assert v4.text.startswith(f"('127.0.0.1', {port4})")
    assert v6.text.startswith(f"('::1', {port6})")
    assert unix.status_code == 200


async def test_address_in_use_raises_oserror() -> None:
    with anyio.fail_after(timeout(10)):
        async with running(where_app) as server:
            with pytest.raises(OSError, match="in use"):
                await serve_app(where_app, "127.0.0.1", server.port, lifespan="off")
