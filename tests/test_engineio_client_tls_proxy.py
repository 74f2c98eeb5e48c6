"""TLS, custom headers, cookies and an HTTP proxy reach every transport of the Engine.IO client.

One httpx configuration (the client's ``ssl_context``/``ssl_verify``/``proxy``, or a given
``http_session``) carries the polling requests AND the WebSocket upgrade. The server is
anywire's own (``OwnServer``, TLS from a trustme CA); the proxy is
``tests/proxy_helpers.py``'s, which records what went through it: the ports it used
towards the server are compared with the client ports the server saw, so each transport
is shown to have gone through it.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

import anywire.engineio as engineio
from anywire.engineio import exceptions
from tests.proxy_helpers import forward_proxy
from tests.test_engineio_client_own_server import OwnServer, own_server, roundtrip, upgraded

pytestmark = pytest.mark.anyio

TRANSPORTS = [None, "websocket", "polling"]


def expected_transports(transports: str | None) -> set[str]:
    return {"polling", "websocket"} if transports is None else {transports}


async def exercise(client: engineio.AsyncClient, transports: str | None) -> None:
    if transports is None:
        await upgraded(client)
    assert await roundtrip(client, "text") == "text"
    assert await roundtrip(client, b"\x00bin") == b"\x00bin"
    assert client.transport() == (transports or "websocket")


def cause_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# -- TLS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_ssl_context_reaches_polling_and_websocket(
    transports: str | None, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with own_server(server_context) as server:
        assert server.url.startswith("https://")
        async with engineio.connect(
            server.url, transports=transports, ssl_context=client_context
        ) as client:
            await exercise(client, transports)
    assert server.transports_seen() == expected_transports(transports)
    assert {s.scheme for s in server.seen} <= {"https", "wss"}
    assert ("wss" in {s.scheme for s in server.seen}) == (transports != "polling")


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_ssl_verify_false_accepts_an_untrusted_certificate(
    transports: str | None, server_context: ssl.SSLContext
) -> None:
    async with own_server(server_context) as server:
        async with engineio.connect(server.url, transports=transports, ssl_verify=False) as c:
            await exercise(c, transports)
    assert server.transports_seen() == expected_transports(transports)


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_a_failed_certificate_check_is_typed_with_its_cause(
    transports: str | None, server_context: ssl.SSLContext
) -> None:
    async with own_server(server_context) as server:
        client = engineio.AsyncClient()  # ssl_verify=True: the system CAs do not know trustme's
        with pytest.raises(exceptions.ConnectionError) as info:
            await client.connect(server.url, transports=transports)
    error = info.value
    assert isinstance(error, engineio.ServerUnreachable)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in cause_chain(error))
    assert client.state == "disconnected"
    assert server.seen == []  # no request got through the TLS handshake


# -- headers and cookies -----------------------------------------------------------------------


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_headers_and_the_servers_cookie_reach_every_transport(
    transports: str | None,
) -> None:
    async with own_server(cookie="io") as server:
        async with engineio.connect(
            server.url, headers={"X-Custom": "42"}, transports=transports
        ) as client:
            await exercise(client, transports)
            sid = client.sid
    assert server.transports_seen() == expected_transports(transports)
    assert all(s.headers.get("x-custom") == "42" for s in server.seen)
    if transports != "websocket":  # a WebSocket-only handshake carries no Set-Cookie
        assert [s.headers.get("cookie") for s in server.seen[1:]] == [f"io={sid}"] * (
            len(server.seen) - 1
        )


# -- an HTTP proxy ----------------------------------------------------------------------------


def assert_all_came_through(server: OwnServer, upstream_ports: set[int]) -> None:
    assert server.seen
    assert {s.client_port for s in server.seen} <= upstream_ports


async def test_plain_http_polling_goes_through_the_proxy_by_absolute_uri() -> None:
    async with own_server(cookie="io") as server, forward_proxy() as proxy:
        async with engineio.connect(
            server.url, transports="polling", proxy=proxy.url, headers={"X-Custom": "1"}
        ) as client:
            await exercise(client, "polling")
    assert set(proxy.methods()) == {"GET", "POST"}
    assert all(p.target.startswith(f"{server.url}/engine.io/?") for p in proxy.passed)
    assert all(p.headers.get("x-custom") == "1" for p in proxy.passed)
    assert_all_came_through(server, proxy.upstream_ports)
    assert len(server.seen) == len(proxy.passed)


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_https_and_wss_go_through_the_proxy_by_connect(
    transports: str | None, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with own_server(server_context) as server, forward_proxy() as proxy:
        async with engineio.connect(
            server.url, transports=transports, ssl_context=client_context, proxy=proxy.url
        ) as client:
            await exercise(client, transports)
    assert set(proxy.methods()) == {"CONNECT"}
    assert {p.target for p in proxy.passed} == {f"127.0.0.1:{server.port}"}
    assert server.transports_seen() == expected_transports(transports)
    assert_all_came_through(server, proxy.upstream_ports)


async def test_a_given_http_session_with_a_proxy_is_used_for_the_upgrade_too(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with own_server(server_context) as server, forward_proxy() as proxy:
        async with httpx.AsyncClient(verify=client_context, proxy=proxy.url) as http:
            async with engineio.connect(server.url, http_session=http) as client:
                await exercise(client, None)
            assert not http.is_closed
    assert server.transports_seen() == {"polling", "websocket"}
    assert_all_came_through(server, proxy.upstream_ports)


async def test_plain_ws_cannot_pass_a_forward_proxy_so_polling_carries_on() -> None:
    # A forward proxy drops the hop-by-hop Upgrade header of an absolute-URI request
    # (only https/wss get a CONNECT tunnel): the upgrade probe fails, polling goes on.
    async with own_server() as server, forward_proxy() as proxy:
        async with engineio.connect(server.url, proxy=proxy.url) as client:
            for i in range(5):  # the probe runs meanwhile
                assert await roundtrip(client, f"m{i}") == f"m{i}"
            assert client.transport() == "polling"
    websocket_requests = [p for p in proxy.passed if "transport=websocket" in p.target]
    assert websocket_requests  # tried, through the proxy
    assert all("upgrade" not in s.headers for s in server.seen)
    assert_all_came_through(server, proxy.upstream_ports)


async def test_plain_ws_only_through_a_forward_proxy_is_a_typed_error() -> None:
    async with own_server() as server, forward_proxy() as proxy:
        client = engineio.AsyncClient(proxy=proxy.url)
        with pytest.raises(exceptions.ConnectionError) as info:
            await client.connect(server.url, transports="websocket")
    error: Any = info.value
    assert isinstance(error, engineio.UnexpectedStatus)
    assert error.status_code == 400
    assert "proxy" in str(error)
    assert client.state == "disconnected"
