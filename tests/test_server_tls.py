"""TLS: https and wss, from an ``ssl_context`` or from ``certfile``/``keyfile``."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import httpx
import pytest
import trustme

from anywire.websocket import connect

from .conftest import timeout
from .server_helpers import Receive, Scope, Send, read_until_closed, running, text_response

pytestmark = pytest.mark.anyio


async def scheme_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await text_response(send, scope["scheme"])
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope["scheme"]})
    await send({"type": "websocket.close"})


async def test_https_and_wss_with_an_ssl_context(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(timeout(10)):
        async with running(scheme_app, ssl_context=server_context) as server:
            assert server.info.tls
            assert server.url.startswith("https://")
            async with httpx.AsyncClient(verify=client_context) as client:
                response = await client.get(server.url)
            wss = server.url.replace("https", "wss", 1)
            async with connect(wss, ssl_context=client_context) as ws:
                ws_scheme = await ws.receive()
    assert response.text == "https"
    assert ws_scheme == "wss"


async def test_certfile_and_keyfile(
    tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    with anyio.fail_after(timeout(10)):
        async with running(scheme_app, certfile=str(certfile), keyfile=str(keyfile)) as server:
            async with httpx.AsyncClient(verify=client_context) as client:
                response = await client.get(server.url)
    assert response.text == "https"


async def test_plain_http_to_a_tls_port_does_not_harm_the_server(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    with anyio.fail_after(timeout(10)):
        async with running(scheme_app, ssl_context=server_context) as server:
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                assert b"HTTP/1.1" not in await read_until_closed(stream)
            async with httpx.AsyncClient(verify=client_context) as client:
                assert (await client.get(server.url)).text == "https"
