"""Proxy headers: honoured only from trusted peers."""

from __future__ import annotations

import anyio
import httpx
import pytest

from anywire.server._proxy import Hop, ProxyTrust, forwarded_hops

from .conftest import timeout
from .server_helpers import Receive, Scope, Send, running, text_response

Headers = list[tuple[bytes, bytes]]
PEER = ("127.0.0.1", 5000)


def xff(value: str, proto: str | None = None) -> Headers:
    headers = [(b"x-forwarded-for", value.encode())]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    return headers


@pytest.mark.parametrize(
    ("allow", "host", "trusted"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "10.0.0.1", False),
        ("10.0.0.0/8, 192.168.1.1", "10.2.3.4", True),
        (["10.0.0.0/8", "192.168.1.1"], "192.168.1.1", True),
        (["::1"], "::1", True),
        (["fd00::/8"], "fd12::1", True),
        ("*", "203.0.113.9", True),
        ("127.0.0.1", None, False),
        ("unix:", None, True),
        ("proxy.local", "proxy.local", True),
    ],
)
def test_trust(allow: str | list[str], host: str | None, trusted: bool) -> None:
    assert ProxyTrust(allow).trusts(host) is trusted


def test_untrusted_peer_headers_are_ignored() -> None:
    trust = ProxyTrust("10.0.0.1")
    assert trust.resolve(PEER, "http", xff("1.2.3.4", "https")) == (PEER, "http")


def test_x_forwarded_for_and_proto_from_a_trusted_peer() -> None:
    trust = ProxyTrust("127.0.0.1")
    assert trust.resolve(PEER, "http", xff("1.2.3.4", "https")) == (("1.2.3.4", 0), "https")


def test_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    headers = xff("6.6.6.6, 1.2.3.4, 10.0.0.5")  # 6.6.6.6 was made up by the client
    assert trust.resolve(PEER, "http", headers)[0] == ("1.2.3.4", 0)


def test_everyone_trusted_takes_the_leftmost_hop() -> None:
    trust = ProxyTrust("*")
    assert trust.resolve(PEER, "http", xff("1.2.3.4, 5.6.7.8"))[0] == ("1.2.3.4", 0)


def test_forwarded_header_wins_and_is_parsed() -> None:
    headers = [
        (b"forwarded", b'for="[2001:db8::1]:4711";proto=https;by=10.0.0.1, for=10.0.0.2'),
        (b"x-forwarded-for", b"9.9.9.9"),
    ]
    assert forwarded_hops(headers) == [Hop("2001:db8::1", "https"), Hop("10.0.0.2", None)]
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    assert trust.resolve(PEER, "http", headers) == (("2001:db8::1", 0), "https")


def test_hidden_and_unknown_forwarded_hosts_keep_the_peer() -> None:
    headers = [(b"forwarded", b"for=unknown;proto=https")]
    assert ProxyTrust("127.0.0.1").resolve(PEER, "http", headers) == (PEER, "https")
    assert forwarded_hops([(b"forwarded", b"for=_hidden")]) == [Hop(None, None)]


def test_bad_proto_values_are_ignored() -> None:
    trust = ProxyTrust("127.0.0.1")
    assert trust.resolve(PEER, "http", xff("1.2.3.4", "gopher"))[1] == "http"
    assert trust.resolve(PEER, "http", [(b"x-forwarded-proto", b"https")]) == (PEER, "https")


def test_ports_are_stripped() -> None:
    assert forwarded_hops(xff("1.2.3.4:80, [::1]:81, ::2")) == [
        Hop("1.2.3.4", None),
        Hop("::1", None),
        Hop("::2", None),
    ]


async def client_app(scope: Scope, receive: Receive, send: Send) -> None:
    host = scope["client"][0] if scope["client"] else "-"
    await text_response(send, f"{host} {scope['scheme']}")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"proxy_headers": True}, "1.2.3.4 https"),
        ({"proxy_headers": True, "forwarded_allow_ips": ["10.9.9.9"]}, "127.0.0.1 http"),
        ({}, "127.0.0.1 http"),
    ],
)
async def test_proxy_headers_in_the_scope(options: dict[str, object], expected: str) -> None:
    headers = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
    with anyio.fail_after(timeout(10)):
        async with running(client_app, **options) as server, httpx.AsyncClient() as client:
            response = await client.get(server.url, headers=headers)
    assert response.text == expected
