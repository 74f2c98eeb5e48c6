"""The sans-I/O WebSocket handshake and keep-alive timing."""

from __future__ import annotations

import pytest
from wsproto.extensions import PerMessageDeflate

from anywire.errors import InvalidHandshake
from anywire.websocket._handshake import (
    ClientOffer,
    accept_token,
    check_origin,
    client_request_headers,
    negotiate_extensions,
    new_key,
    parse_client_request,
    server_response_headers,
    validate_server_response,
)
from anywire.websocket._keepalive import Keepalive


def test_accept_token_matches_rfc6455_example() -> None:
    # RFC 6455 section 1.3
    assert accept_token("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _request(**overrides: str) -> list[tuple[str, str]]:
    headers = dict(client_request_headers(new_key(), subprotocols=["chat", "v2"]))
    headers["host"] = "example.com:8000"
    headers.update(overrides)
    return list(headers.items())


def test_round_trip_between_client_and_server_sides() -> None:
    key = new_key()
    request = client_request_headers(key, subprotocols=["chat"], extensions=[PerMessageDeflate()])
    offer = parse_client_request("GET", request)
    assert offer.subprotocols == ["chat"]
    header, accepted = negotiate_extensions(offer.extensions, [PerMessageDeflate()])
    assert header is not None
    assert header.startswith("permessage-deflate")
    assert len(accepted) == 1
    response = server_response_headers(offer, subprotocol="chat", extensions_header=header)
    subprotocol, client_exts = validate_server_response(
        key, response, subprotocols=["chat"], extensions=[PerMessageDeflate()]
    )
    assert subprotocol == "chat"
    assert [e.name for e in client_exts] == ["permessage-deflate"]


@pytest.mark.parametrize(
    ("method", "overrides", "status"),
    [
        ("POST", {}, 400),
        ("GET", {"upgrade": "h2c"}, 400),
        ("GET", {"connection": "keep-alive"}, 400),
        ("GET", {"sec-websocket-version": "8"}, 426),
        ("GET", {"sec-websocket-key": "short"}, 400),
    ],
)
def test_invalid_requests_carry_the_status_to_answer(
    method: str, overrides: dict[str, str], status: int
) -> None:
    with pytest.raises(InvalidHandshake) as info:
        parse_client_request(method, _request(**overrides))
    assert info.value.status_code == status


def test_connection_header_may_list_several_tokens() -> None:
    offer = parse_client_request("GET", _request(connection="keep-alive, Upgrade"))
    assert offer.host == "example.com:8000"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"sec-websocket-accept": "wrong"}, "Sec-WebSocket-Accept"),
        ({"upgrade": "nope"}, "Upgrade"),
        ({"sec-websocket-protocol": "other"}, "subprotocol"),
        ({"sec-websocket-extensions": "x-unknown"}, "extension"),
    ],
)
def test_client_rejects_invalid_responses(headers: dict[str, str], message: str) -> None:
    key = new_key()
    offer = ClientOffer(key=key)
    response = dict(server_response_headers(offer, subprotocol=None, extensions_header=None))
    response.update(headers)
    with pytest.raises(InvalidHandshake, match=message):
        validate_server_response(key, list(response.items()), subprotocols=["chat"], extensions=[])


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, None, True),
        ("http://example.com:8000", None, True),
        ("http://evil.example", None, False),
        ("http://evil.example", "*", True),
        ("https://app.example", ["https://app.example"], True),
        ("https://app.example/", ["https://app.example"], True),
        ("https://other.example", ["https://app.example"], False),
        ("null", None, False),
    ],
)
def test_origin_policy(origin: str | None, allowed: object, ok: bool) -> None:
    offer = ClientOffer(key="k", origin=origin, host="example.com:8000")
    assert check_origin(offer, allowed) is ok  # type: ignore[arg-type]


def test_only_the_first_acceptable_offer_per_extension_is_accepted() -> None:
    offers = [
        "permessage-deflate; client_max_window_bits=15",
        "permessage-deflate",
    ]
    header, accepted = negotiate_extensions(offers, [PerMessageDeflate()])
    assert header is not None
    assert header.count("permessage-deflate") == 1
    assert len(accepted) == 1


def test_keepalive_pings_then_times_out() -> None:
    ka = Keepalive(interval=10, timeout=5, now=100.0)
    assert ka.deadline() == 110.0
    assert ka.due(109.9) is None
    assert ka.due(110.0) == "ping"
    ka.ping_sent(110.0)
    assert ka.deadline() == 115.0
    assert ka.due(114.0) is None
    ka.pong_received(b"stale", 114.0)  # ignored
    assert ka.due(115.0) == "timeout"


def test_keepalive_pong_measures_latency_and_schedules_next_ping() -> None:
    ka = Keepalive(interval=10, timeout=5, now=0.0)
    payload = ka.ping_sent(10.0)
    ka.pong_received(payload, 10.25)
    assert ka.latency == pytest.approx(0.25)
    assert ka.deadline() == 20.0
