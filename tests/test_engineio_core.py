"""The sans-I/O Engine.IO core: packets, payloads, sessions. Pure: no I/O, no clock.

Wire examples come from the protocol README (socketio/engine.io-protocol) and
the reference server (npm ``engine.io``); see docs/engineio-protocol.md.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywire.engineio import (
    ClientSession,
    Closed,
    CloseTransport,
    DisconnectReason,
    Event,
    Handshake,
    MessageReceived,
    Opened,
    Packet,
    PacketError,
    PacketType,
    PayloadTooLarge,
    PingTimeout,
    QueueFull,
    RejectRequest,
    SendPackets,
    SendProbe,
    ServerConfig,
    ServerSession,
    SessionClosed,
    SessionState,
    Transport,
    UpgradeDone,
    UpgradeFailed,
    batch,
    decode_packet,
    decode_payload,
    encode_frame,
    encode_payload,
    encode_text,
)
from anywire.engineio._packets import DEFAULT_JSON, decode_message
from anywire.engineio._payload import Outbox
from anywire.errors import ConcurrencyError, LimitExceeded, LocalProtocolError

P = PacketType
POLLING, WEBSOCKET = Transport.POLLING, Transport.WEBSOCKET
R = DisconnectReason
OPEN_JSON = (
    '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
    '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
)


def msg(data: str | bytes) -> Packet:
    return Packet(P.MESSAGE, data)


def state_of(session: ServerSession | ClientSession) -> SessionState:
    return session.state  # a call: mypy does not narrow it across assertions


def sent(*packets: Packet, transport: Transport = POLLING) -> SendPackets:
    return SendPackets(tuple(packets), transport)


# -- packets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "frame", "text"),
    [
        (msg("hello"), "4hello", "4hello"),
        (msg(b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04", "bAQIDBA=="),
        (msg(""), "4", "4"),
        (msg(b""), b"", "b"),
        (msg("é€😀"), "4é€😀", "4é€😀"),
        (Packet(P.OPEN, OPEN_JSON), "0" + OPEN_JSON, "0" + OPEN_JSON),
        (Packet(P.CLOSE), "1", "1"),
        (Packet(P.PING), "2", "2"),
        (Packet(P.PING, "probe"), "2probe", "2probe"),
        (Packet(P.PONG, "probe"), "3probe", "3probe"),
        (Packet(P.UPGRADE), "5", "5"),
        (Packet(P.NOOP), "6", "6"),
    ],
)
def test_packet_encodings(packet: Packet, frame: str | bytes, text: str) -> None:
    assert encode_frame(packet) == frame
    assert encode_text(packet) == text
    assert decode_packet(frame) == packet
    assert decode_packet(text) == packet


@pytest.mark.parametrize(
    ("raw", "packet"),
    [
        ("bAQIDBA", msg(b"\x01\x02\x03\x04")),  # unpadded base64
        ("bAQID", msg(b"\x01\x02\x03")),
        ("4", msg("")),  # a message with no data is ""
        ("2", Packet(P.PING)),
        ("4\x1e", msg("\x1e")),  # a WebSocket frame may hold the separator
        (bytearray(b"\x00"), msg(b"\x00")),
    ],
)
def test_decode_packet_accepts(raw: str | bytes, packet: Packet) -> None:
    assert decode_packet(raw) == packet


@pytest.mark.parametrize(
    "raw", ["", "7", "9hello", "x", "-", " 4", "b!!!!", "bA", "bAQ==AQ", "bé", "bAQID\n", 42]
)
def test_decode_packet_refuses(raw: Any) -> None:
    with pytest.raises(PacketError) as info:
        decode_packet(raw)
    assert info.value.hint == 400


def test_packet_normalizes_and_validates() -> None:
    assert Packet(P.PING, "") == Packet(P.PING)
    assert Packet(P.MESSAGE).data == ""
    assert msg(b"x").binary
    assert not msg("x").binary
    with pytest.raises(LocalProtocolError):
        Packet(P.PING, b"binary")
    with pytest.raises(LocalProtocolError):
        Packet(P.MESSAGE, 42)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_text(msg("a\x1eb"))  # would split a payload


# -- the OPEN packet -------------------------------------------------------------


def test_handshake_matches_the_reference_json() -> None:
    handshake = Handshake("lv_VI97HAXpY6yYWAAAC", ("websocket",), 25, 20, 1_000_000)
    assert encode_frame(handshake.to_packet()) == "0" + OPEN_JSON
    assert Handshake.from_packet(decode_packet("0" + OPEN_JSON)) == handshake


@pytest.mark.parametrize(("seconds", "ms"), [(0.3, 300), (4.35, 4350), (0.0015, 2), (25, 25000)])
def test_handshake_times_round_to_milliseconds(seconds: float, ms: int) -> None:
    data = Handshake("s", (), seconds, seconds, 1).to_packet().data
    assert isinstance(data, str)
    assert json.loads(data)["pingInterval"] == ms == json.loads(data)["pingTimeout"]


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1]",
        "{}",
        '{"sid":""}',
        '{"sid":"s","upgrades":"websocket","pingInterval":1,"pingTimeout":1}',
        '{"sid":"s","upgrades":[],"pingInterval":true,"pingTimeout":1}',
        '{"sid":"s","upgrades":[],"pingInterval":-1,"pingTimeout":1}',
        '{"sid":"s","upgrades":[],"pingInterval":1}',
        '{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1.5}',
        "[" * 100_000,
    ],
)
def test_handshake_refuses_bad_open_packets(data: str) -> None:
    with pytest.raises(PacketError):
        Handshake.from_packet(Packet(P.OPEN, data))
    with pytest.raises(PacketError):
        Handshake.from_packet(msg(OPEN_JSON))  # not an OPEN packet


def test_handshake_without_max_payload() -> None:
    data = '{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":5000}'
    assert Handshake.from_packet(Packet(P.OPEN, data)).max_payload is None


class RecordingJson:
    """A ``json=`` argument: a per-instance codec, returning bytes as orjson does."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps(self, obj: Any, /) -> bytes:
        self.calls += 1
        return json.dumps(obj, indent=1).encode()

    def loads(self, s: str, /) -> Any:
        self.calls += 1
        return json.loads(s)


def test_json_module_is_per_instance() -> None:
    codec = RecordingJson()
    custom = ServerSession("a", POLLING, now=0, json=codec)
    plain = ServerSession("b", POLLING, now=0)
    (custom_open,) = custom.handle_get(0)
    (plain_open,) = plain.handle_get(0)
    assert isinstance(custom_open, SendPackets)
    assert isinstance(plain_open, SendPackets)
    assert custom_open.payload().startswith('0{\n "sid": "a"')
    assert plain_open.payload().startswith('0{"sid":"b","upgrades":["websocket"]')
    client = ClientSession(POLLING, now=0, json=codec)
    calls = codec.calls
    client.receive_payload(custom_open.payload(), 0)
    assert client.sid == "a"
    assert codec.calls == calls + 1


# -- payloads ---------------------------------------------------------------------


def test_payload_examples_from_the_spec() -> None:
    packets = [msg("hello"), Packet(P.PING), msg("world")]
    assert encode_payload(packets) == "4hello\x1e2\x1e4world"
    assert decode_payload("4hello\x1e2\x1e4world") == packets
    assert decode_payload(b"4hello\x1ebAQIDBA==") == [msg("hello"), msg(b"\x01\x02\x03\x04")]
    assert encode_payload([msg("hello"), msg(b"\x01\x02\x03\x04")]) == "4hello\x1ebAQIDBA=="


@pytest.mark.parametrize(
    "payload", ["", b"", "4a\x1e", "\x1e4a", "4a\x1e\x1e4b", "4a\x1e7", b"4\xff", "4a\x1ebA", 3]
)
def test_payload_refuses(payload: Any) -> None:
    with pytest.raises(PacketError):
        decode_payload(payload)


@pytest.mark.parametrize("payload", ["4" + "x" * 9, ("4" + "x" * 9).encode(), "4é€xxxx"])
def test_payload_limit_is_in_bytes(payload: str | bytes) -> None:
    assert decode_payload(payload, max_payload=10)
    bigger = payload + "x" if isinstance(payload, str) else payload + b"x"
    with pytest.raises(PayloadTooLarge) as info:
        decode_payload(bigger, max_payload=10)
    assert info.value.hint == 413
    assert info.value.limit == 10


def test_batch_splits_at_max_payload() -> None:
    packets = [msg("aaaa"), msg("bbbb"), msg("cc"), msg(b"\x00\x01\x02")]
    # "4aaaa" is 5 bytes, + separator + "4bbbb" is 11, "4cc" 3, "bAAEC" 5
    assert batch(packets, 11) == ["4aaaa\x1e4bbbb", "4cc\x1ebAAEC"]
    assert batch(packets, 10) == ["4aaaa", "4bbbb\x1e4cc", "bAAEC"]
    assert batch(packets, None) == [encode_payload(packets)]
    assert batch([msg("x" * 50), msg("y")], 10) == ["4" + "x" * 50, "4y"]  # alone if too big
    assert batch([], 10) == []


def test_outbox_bounds() -> None:
    box = Outbox(max_packets=2, max_bytes=10)
    assert box.push(msg("abcd"))
    assert box.push(msg("efgh"))
    assert not box.push(Packet(P.NOOP))  # 2 packets
    assert box.take(None) == (msg("abcd"), msg("efgh"))
    assert box.nbytes == 0
    assert not box.push(msg("x" * 10))  # 11 bytes
    assert box.push(Packet(P.CLOSE), force=True)
    assert len(box) == 1


# -- properties -------------------------------------------------------------------

TEXT = st.text(max_size=40)
POLLING_TEXT = st.text(max_size=40).filter(lambda s: "\x1e" not in s)


def packets(text: st.SearchStrategy[str] = TEXT) -> st.SearchStrategy[Packet]:
    others = st.builds(
        Packet, st.sampled_from([t for t in PacketType if t is not P.MESSAGE]), text | st.none()
    )
    return st.builds(msg, text | st.binary(max_size=40)) | others


@given(packets())
def test_frame_round_trip(packet: Packet) -> None:
    assert decode_packet(encode_frame(packet)) == packet


@given(packets(POLLING_TEXT))
def test_text_round_trip(packet: Packet) -> None:
    assert decode_packet(encode_text(packet)) == packet


@given(st.lists(packets(POLLING_TEXT), min_size=1, max_size=8))
def test_payload_round_trip(items: list[Packet]) -> None:
    assert decode_payload(encode_payload(items)) == items
    assert decode_payload(encode_payload(items).encode()) == items


@given(st.lists(packets(POLLING_TEXT), max_size=12), st.integers(1, 120))
def test_batches_fit_and_keep_order(items: list[Packet], limit: int) -> None:
    payloads = batch(items, limit)
    decoded = [decode_payload(payload) for payload in payloads]
    assert [packet for group in decoded for packet in group] == items
    for payload, group in zip(payloads, decoded, strict=True):
        assert len(payload.encode("utf-8", "surrogatepass")) <= limit or len(group) == 1


ANY_INPUT = st.text() | st.binary() | st.text(alphabet="0123456b\x1e=+/AQIDaz", max_size=30)


@given(ANY_INPUT)
def test_any_input_decodes_or_raises_packet_error(raw: str | bytes) -> None:
    for decode in (decode_packet, decode_payload, lambda r: decode_payload(r, max_payload=8)):
        with contextlib.suppress(PacketError):
            decode(raw)
    if isinstance(raw, str):
        with contextlib.suppress(PacketError):
            Handshake.from_packet(Packet(P.OPEN, raw))


@given(st.lists(ANY_INPUT, max_size=5))
def test_any_input_never_breaks_a_session(inputs: list[str | bytes]) -> None:
    config = ServerConfig(max_payload=20)
    polling = ServerSession("s", POLLING, now=0, config=config)
    probing = ServerSession("p", POLLING, now=0, config=config)
    probing.begin_upgrade(0)
    ws_server = ServerSession("w", WEBSOCKET, now=0, config=config)
    client, ws_client = ClientSession(POLLING, now=0), ClientSession(WEBSOCKET, now=0)
    upgrading = ClientSession(POLLING, now=0)
    upgrading.receive_payload(handshake_payload(), 0)
    upgrading.start_upgrade(0)
    for raw in inputs:
        for events in (
            polling.handle_post(raw, 1),
            probing.receive_frame(raw, 1),
            ws_server.receive_frame(raw, 1),
            client.receive_payload(raw, 1),
            ws_client.receive_frame(raw, 1),
            upgrading.receive_frame(raw, 1),
            upgrading.receive_payload(raw, 1),
        ):
            assert all(isinstance(event, Event) for event in events)


# -- server sessions --------------------------------------------------------------


def server(transport: Transport = POLLING, **config: Any) -> ServerSession:
    config.setdefault("ping_interval", 25.0)
    config.setdefault("ping_timeout", 20.0)
    return ServerSession("sid1", transport, now=0.0, config=ServerConfig(**config))


def opened_server(**config: Any) -> ServerSession:
    session = server(**config)
    (open_packets,) = session.handle_get(0.0)
    assert isinstance(open_packets, SendPackets)
    assert open_packets.packets[0].type is P.OPEN
    return session


def open_data(events: list[Event]) -> dict[str, Any]:
    (event,) = events
    assert isinstance(event, SendPackets)
    packet = event.packets[0]
    assert packet.type is P.OPEN
    assert isinstance(packet.data, str)
    return dict(json.loads(packet.data))


def test_polling_handshake() -> None:
    session = server(ping_interval=0.3, ping_timeout=0.2, max_payload=1000)
    assert open_data(session.handle_get(0.0)) == {
        "sid": "sid1",
        "upgrades": ["websocket"],
        "pingInterval": 300,
        "pingTimeout": 200,
        "maxPayload": 1000,
    }
    assert state_of(session) is SessionState.OPEN


def test_websocket_handshake_waits_for_writer_idle() -> None:
    session = server(WEBSOCKET, ping_interval_grace=5.0)
    assert session.send_message("welcome", 0.0) == []  # queued behind OPEN
    events = session.writer_idle(0.0)
    assert isinstance(events[0], SendPackets)
    assert events[0].transport is WEBSOCKET
    data = json.loads(str(events[0].frames()[0])[1:])
    assert data["upgrades"] == []
    assert data["pingInterval"] == 30000
    assert events[0].frames()[1] == "4welcome"
    assert server(upgrades=()).handshake.upgrades == ()


def test_server_heartbeat_timing() -> None:
    session = opened_server(ping_interval=25.0, ping_timeout=20.0, ping_interval_grace=5.0)
    assert session.next_deadline() == 25.0  # pings every interval; advertises 30 s
    assert session.tick(24.999) == []
    assert session.tick(25.0) == []  # no GET parked: the PING waits in the queue
    assert session.next_deadline() == 45.0
    assert session.handle_get(30.0) == [sent(Packet(P.PING))]
    assert session.handle_post("3", 31.0) == []
    assert session.next_deadline() == 56.0  # the next ping counts from the PONG
    assert session.handle_get(31.0) == []
    assert session.tick(56.0) == [sent(Packet(P.PING))]
    assert session.tick(75.999) == []
    events = session.tick(76.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.PING_TIMEOUT
    assert isinstance(events[0].error, PingTimeout)
    assert state_of(session) is SessionState.CLOSING  # the CLOSE packet waits for a GET
    assert session.next_deadline() == 76.0 + 30.0
    assert session.tick(106.0) == [CloseTransport(POLLING)]
    assert state_of(session) is SessionState.CLOSED
    assert session.next_deadline() is None


def test_get_is_parked_until_packets_come() -> None:
    session = opened_server()
    assert session.handle_get(1.0) == []
    assert session.send_message("a", 1.0) == [sent(msg("a"))]
    assert session.send_message("b", 1.0) == []
    assert session.send_message(b"\x00", 1.0) == []
    assert session.handle_get(1.0) == [sent(msg("b"), msg(b"\x00"))]


def test_get_batches_respect_max_payload() -> None:
    session = opened_server(max_payload=12)
    for data in ("aaaa", "bbbb", "cccc"):
        session.send_message(data, 1.0)
    assert session.handle_get(1.0) == [sent(msg("aaaa"), msg("bbbb"))]
    assert session.handle_get(1.0) == [sent(msg("cccc"))]


def test_second_concurrent_get_closes_the_session() -> None:
    session = opened_server()
    assert session.handle_get(1.0) == []
    events = session.handle_get(1.0)
    assert events[0] == RejectRequest(400, "overlap from client")
    assert isinstance(events[1], Closed)
    assert events[1].reason == "transport error"
    assert events[2:] == [sent(Packet(P.CLOSE)), CloseTransport(POLLING)]
    assert state_of(session) is SessionState.CLOSED
    with pytest.raises(SessionClosed) as info:
        session.send_message("late", 2.0)
    assert info.value.reason == "transport error"


def test_post_delivers_messages() -> None:
    session = opened_server()
    assert session.begin_post(1.0) == []
    assert session.handle_post(b"4hello\x1ebAQIDBA==\x1e6", 1.0) == [
        MessageReceived("hello"),
        MessageReceived(b"\x01\x02\x03\x04"),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"4ok\x1e9bad", 400), (b"", 400), (b"4\xff", 400), (b"4" + b"x" * 100, 413)],
)
def test_bad_post_closes_with_transport_error(body: bytes, status: int) -> None:
    session = opened_server(max_payload=100)
    session.handle_get(1.0)
    events = session.handle_post(body, 1.0)
    assert isinstance(events[0], RejectRequest)
    assert events[0].status == status
    assert isinstance(events[1], Closed)
    assert events[1].reason == R.TRANSPORT_ERROR
    assert isinstance(events[1].error, PacketError)
    assert events[2:] == [sent(Packet(P.CLOSE)), CloseTransport(POLLING)]


def test_second_concurrent_post_closes_the_session() -> None:
    session = opened_server()
    assert session.begin_post(1.0) == []
    events = session.begin_post(1.0)
    assert events[0] == RejectRequest(400, "data request overlap from client")
    assert isinstance(events[1], Closed)
    assert events[1].reason == R.TRANSPORT_ERROR


def test_ping_from_client_is_a_transport_error() -> None:
    session = opened_server()
    events = session.handle_post("2", 1.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.TRANSPORT_ERROR


def test_client_close_packet_releases_the_parked_get() -> None:
    session = opened_server()
    session.handle_get(1.0)
    assert session.handle_post("4last\x1e1\x1e4ignored", 1.0) == [
        MessageReceived("last"),
        Closed(R.CLIENT_DISCONNECT),
        sent(Packet(P.NOOP)),
        CloseTransport(POLLING),
    ]


def test_server_close_sends_queued_packets_then_close() -> None:
    session = opened_server()
    session.send_message("bye", 1.0)
    assert session.close(1.0) == [Closed(R.SERVER_DISCONNECT)]
    assert state_of(session) is SessionState.CLOSING
    with pytest.raises(SessionClosed):
        session.send_message("more", 1.0)
    assert session.handle_post("4ignored", 1.0) == []
    assert session.handle_get(2.0) == [sent(msg("bye"), Packet(P.CLOSE)), CloseTransport(POLLING)]
    assert state_of(session) is SessionState.CLOSED
    assert session.close(3.0) == []


def test_server_abort_drops_the_queue() -> None:
    session = opened_server()
    session.send_message("lost", 1.0)
    assert session.close(1.0, abort=True) == [Closed(R.SERVER_DISCONNECT), CloseTransport(POLLING)]


def test_record_separator_is_refused_on_polling_only() -> None:
    with pytest.raises(LocalProtocolError):
        opened_server().send_message("a\x1eb", 1.0)
    session = server(WEBSOCKET)
    session.writer_idle(0.0)
    session.writer_idle(0.0)
    assert session.send_message("a\x1eb", 1.0) == [sent(msg("a\x1eb"), transport=WEBSOCKET)]


def upgrading_server() -> ServerSession:
    session = opened_server()
    session.send_message("before", 1.0)
    assert session.handle_get(1.0) == [sent(msg("before"))]
    assert session.handle_get(2.0) == []  # parked
    assert session.begin_upgrade(2.0) == []
    assert state_of(session) is SessionState.UPGRADING
    return session


def test_upgrade_sequence() -> None:
    session = upgrading_server()
    assert session.receive_frame("2probe", 2.1) == [
        SendProbe(Packet(P.PONG, "probe")),
        sent(Packet(P.NOOP)),  # releases the pending poll
    ]
    assert session.send_message("during", 2.2) == []  # held for the WebSocket
    assert session.handle_get(2.2) == [sent(Packet(P.NOOP))]  # polling stays quiet
    assert session.handle_post("4from polling", 2.2) == [MessageReceived("from polling")]
    assert session.receive_frame("5", 2.3) == [
        UpgradeDone(),
        sent(msg("during"), transport=WEBSOCKET),
    ]
    assert state_of(session) is SessionState.OPEN
    assert session.transport is WEBSOCKET
    assert session.handle_get(2.4) == [RejectRequest(400, "Invalid transport")]
    assert session.handle_post("4x", 2.4) == [RejectRequest(400, "Invalid transport")]
    assert isinstance(session.begin_upgrade(2.4)[0], RejectRequest)  # a second WebSocket
    assert state_of(session) is SessionState.OPEN  # refusals leave the session alone
    assert session.writer_idle(2.5) == []
    assert session.receive_frame("4hi", 2.5) == [MessageReceived("hi")]
    assert session.receive_frame(b"\x01", 2.5) == [MessageReceived(b"\x01")]


def test_second_websocket_while_upgrading_is_refused() -> None:
    session = upgrading_server()
    assert session.begin_upgrade(2.0) == [RejectRequest(400, "Session is upgrading or upgraded")]
    assert state_of(session) is SessionState.UPGRADING


@pytest.mark.parametrize("frame", ["4hello", "2", "xx", b"\x00", "3probe"])
def test_unexpected_probe_frame_fails_the_upgrade_only(frame: str | bytes) -> None:
    session = upgrading_server()
    (failed,) = session.receive_frame(frame, 2.1)
    assert isinstance(failed, UpgradeFailed)
    assert state_of(session) is SessionState.OPEN
    assert session.transport is POLLING
    assert session.send_message("still here", 2.2) == [sent(msg("still here"))]


def test_upgrade_timeout_and_lost_probe() -> None:
    session = upgrading_server()
    assert session.next_deadline() == 2.0 + 10.0
    assert session.tick(11.999) == []
    assert session.tick(12.0) == [UpgradeFailed("upgrade timeout")]
    assert state_of(session) is SessionState.OPEN
    assert session.begin_upgrade(13.0) == []
    assert session.transport_lost(WEBSOCKET, 13.5) == [UpgradeFailed("probe transport closed")]
    assert state_of(session) is SessionState.OPEN


def test_upgrades_can_be_disabled() -> None:
    session = server(upgrades=())
    assert session.begin_upgrade(0.0) == [RejectRequest(400, "Upgrades are disabled")]


def websocket_server(**config: Any) -> ServerSession:
    session = server(WEBSOCKET, **config)
    session.writer_idle(0.0)  # OPEN packet out
    session.writer_idle(0.0)  # written
    return session


@pytest.mark.parametrize(
    ("error", "reason"), [(None, R.TRANSPORT_CLOSE), (OSError("reset"), R.TRANSPORT_ERROR)]
)
def test_websocket_lost(error: Exception | None, reason: DisconnectReason) -> None:
    session = websocket_server()
    assert session.transport_lost(WEBSOCKET, 1.0, error) == [
        Closed(reason, error),
        CloseTransport(WEBSOCKET),
    ]
    assert session.transport_lost(WEBSOCKET, 1.0) == []


@pytest.mark.parametrize("frame", ["", "9", "bA", "4" + "x" * 200, b"x" * 101])
def test_bad_websocket_frame_is_a_transport_error(frame: str | bytes) -> None:
    session = websocket_server(max_payload=100)
    events = session.receive_frame(frame, 1.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.TRANSPORT_ERROR
    assert isinstance(events[0].error, PacketError)
    assert events[1:] == [sent(Packet(P.CLOSE), transport=WEBSOCKET), CloseTransport(WEBSOCKET)]


def test_websocket_close_packet() -> None:
    session = websocket_server()
    assert session.receive_frame("1", 1.0) == [
        Closed(R.CLIENT_DISCONNECT),
        CloseTransport(WEBSOCKET),
    ]


def test_queue_bound_in_packets() -> None:
    session = websocket_server(max_queue=3)
    assert session.send_message("a", 1.0) == [sent(msg("a"), transport=WEBSOCKET)]
    for data in "bcd":  # the writer is busy: these wait
        assert session.send_message(data, 1.0) == []
    events = session.send_message("e", 1.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.TRANSPORT_ERROR
    assert isinstance(events[0].error, QueueFull)
    assert session.writer_idle(1.1) == [
        sent(Packet(P.CLOSE), transport=WEBSOCKET),  # the backlog is dropped
        CloseTransport(WEBSOCKET),
    ]


def test_queue_bound_in_bytes_counts_pings() -> None:
    session = opened_server(max_queue_bytes=1000)
    assert session.send_message("x" * 999, 1.0) == []  # 1000 bytes: the bound, reached
    events = session.tick(25.0)  # the PING does not fit either
    assert isinstance(events[0], Closed)
    assert isinstance(events[0].error, QueueFull)


def test_transport_lost_while_closing_finishes() -> None:
    session = opened_server()
    assert session.close(1.0) == [Closed(R.SERVER_DISCONNECT)]
    assert session.transport_lost(POLLING, 1.5, OSError()) == [CloseTransport(POLLING)]
    assert state_of(session) is SessionState.CLOSED


def test_session_closing_during_upgrade_fails_the_probe_first() -> None:
    session = upgrading_server()
    events = session.close(3.0)
    assert events[:2] == [UpgradeFailed("session closed"), Closed(R.SERVER_DISCONNECT)]
    assert events[2:] == [sent(Packet(P.CLOSE)), CloseTransport(POLLING)]  # the parked GET


def probed_server() -> ServerSession:
    """Upgrading, the probe answered: the client may be sending "5" right now."""
    session = upgrading_server()
    session.receive_frame("2probe", 2.1)
    return session


def test_close_between_probe_and_upgrade_packet_finishes_on_the_websocket() -> None:
    session = probed_server()
    session.send_message("last", 2.2)
    assert session.close(2.2) == [Closed(R.SERVER_DISCONNECT)]  # the probe stays
    assert state_of(session) is SessionState.CLOSING
    assert session.receive_frame("5", 2.3) == [
        UpgradeDone(),
        sent(msg("last"), Packet(P.CLOSE), transport=WEBSOCKET),
        CloseTransport(WEBSOCKET),
    ]
    assert state_of(session) is SessionState.CLOSED
    assert session.next_deadline() is None


def test_close_between_probe_and_a_failed_upgrade_falls_back_to_polling() -> None:
    session = probed_server()
    session.close(2.2)
    assert session.transport_lost(WEBSOCKET, 2.3) == [UpgradeFailed("probe transport closed")]
    assert session.handle_get(2.4) == [sent(Packet(P.CLOSE)), CloseTransport(POLLING)]
    assert state_of(session) is SessionState.CLOSED


def test_close_between_probe_and_upgrade_keeps_the_upgrade_timeout() -> None:
    session = probed_server()
    session.close(2.2)
    assert session.next_deadline() == 2.0 + 10.0  # the upgrade's, before close_timeout
    assert session.tick(12.0) == [UpgradeFailed("upgrade timeout")]
    assert state_of(session) is SessionState.CLOSING
    assert session.next_deadline() == 2.2 + 30.0
    assert session.tick(32.2) == [CloseTransport(POLLING)]


def test_close_between_probe_and_unexpected_frame_fails_the_upgrade() -> None:
    session = probed_server()
    session.close(2.2)
    assert session.receive_frame("4late", 2.3) == [UpgradeFailed("unexpected MESSAGE on the probe")]
    assert session.handle_get(2.4) == [sent(Packet(P.CLOSE)), CloseTransport(POLLING)]


def test_link_server_closes_during_the_upgrade() -> None:
    """The race end to end: the server closes after "3probe"; the client's "5" completes
    the upgrade and both sides end at once, not at close_timeout."""
    link = Link()
    link.from_server(link.server.begin_upgrade(link.now))
    (probe,) = link.client.start_upgrade(link.now)
    assert isinstance(probe, SendProbe)
    answer = link.server.receive_frame(encode_frame(probe.packet), link.now)
    link.from_server(link.server.close(link.now))  # before the client saw "3probe"
    link.from_server(answer)
    assert state_of(link.server) is SessionState.CLOSED
    assert state_of(link.client) is SessionState.CLOSED
    assert Closed(R.SERVER_DISCONNECT) in link.log["client"]


def test_repr_shows_state() -> None:
    assert repr(opened_server()) == "<ServerSession OPEN polling queued=0>"


def test_writer_idle_is_for_websocket() -> None:
    with pytest.raises(LocalProtocolError):
        opened_server().writer_idle(1.0)


def test_closed_session_refuses_requests() -> None:
    session = opened_server()
    session.close(1.0, abort=True)
    assert session.handle_get(1.0) == [RejectRequest(400, "Session is closed")]
    assert session.handle_post("4x", 1.0) == [RejectRequest(400, "Session is closed")]


def test_config_validation() -> None:
    assert ServerConfig(upgrades=("websocket",)).upgrades == (WEBSOCKET,)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        ServerConfig(upgrades=("nope",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ping_interval"):
        ServerConfig(ping_interval=0)
    with pytest.raises(ValueError, match="max_queue"):
        ServerConfig(max_queue=0)


# -- client sessions ----------------------------------------------------------------


def handshake_payload(**fields: Any) -> str:
    data = {"sid": "abc", "upgrades": ["websocket"], "pingInterval": 25000, "pingTimeout": 20000}
    data["maxPayload"] = 1000
    data.update(fields)
    return "0" + json.dumps(data)


def opened_client(**fields: Any) -> ClientSession:
    client = ClientSession(POLLING, now=0.0)
    events = client.receive_payload(handshake_payload(**fields), 0.0)
    assert isinstance(events[0], Opened)
    return client


def test_client_handshake_with_packets_after_open() -> None:
    client = ClientSession(POLLING, now=0.0)
    with pytest.raises(LocalProtocolError):
        client.send_message("too early", 0.0)
    events = client.receive_payload(handshake_payload() + "\x1e4welcome", 0.0)
    assert events == [
        Opened(Handshake("abc", ("websocket",), 25.0, 20.0, 1000)),
        MessageReceived("welcome"),
    ]
    assert client.sid == "abc"
    assert client.can_upgrade


@pytest.mark.parametrize("body", ["4hello", "0{}", "0nope", "", "\x1e"])
def test_client_handshake_failures(body: str) -> None:
    client = ClientSession(POLLING, now=0.0)
    events = client.receive_payload(body, 0.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.TRANSPORT_ERROR
    assert isinstance(events[0].error, PacketError)
    assert events[1:] == [CloseTransport(POLLING)]
    assert state_of(client) is SessionState.CLOSED


def test_client_answers_pings_and_detects_loss() -> None:
    client = opened_client()
    assert client.next_deadline() == 45.0  # pingInterval + pingTimeout
    assert client.begin_poll(1.0)
    assert client.receive_payload("2", 25.0) == [sent(Packet(P.PONG))]
    assert client.next_deadline() == 70.0
    assert client.tick(69.999) == []
    events = client.tick(70.0)
    assert isinstance(events[0], Closed)
    assert events[0].reason == R.TRANSPORT_ERROR
    assert isinstance(events[0].error, PingTimeout)
    assert events[1:] == [CloseTransport(POLLING)]


def test_client_posts_in_batches_of_max_payload() -> None:
    client = opened_client(maxPayload=12)
    assert client.send_message("aaaa", 1.0) == [sent(msg("aaaa"))]  # POST in flight
    for data in ("bbbb", "cccc", "dd"):
        assert client.send_message(data, 1.0) == []
    assert client.writer_idle(1.1) == [sent(msg("bbbb"), msg("cccc"))]
    assert client.writer_idle(1.2) == [sent(msg("dd"))]
    with pytest.raises(LimitExceeded):
        client.send_message("x" * 12, 1.3)  # "4" + 12 bytes > maxPayload


def test_client_polls_one_get_at_a_time() -> None:
    client = opened_client()
    assert client.begin_poll(1.0)
    with pytest.raises(ConcurrencyError):
        client.begin_poll(1.0)
    assert client.receive_payload("4a\x1e6", 1.0) == [MessageReceived("a")]
    assert client.begin_poll(1.0)


def test_client_upgrade_sequence() -> None:
    client = opened_client()
    assert client.begin_poll(1.0)  # a GET in flight
    assert client.start_upgrade(1.0) == [SendProbe(Packet(P.PING, "probe"))]
    assert client.send_message("via polling", 1.1) == [sent(msg("via polling"))]
    assert client.receive_frame("3probe", 1.2) == []  # paused: waits for GET and POST
    assert client.send_message("held", 1.2) == []
    assert client.writer_idle(1.3) == []  # the POST is done; the GET is not
    assert client.receive_payload("6", 1.4) == [
        sent(Packet(P.UPGRADE), transport=WEBSOCKET),
        UpgradeDone(),
    ]
    assert not client.begin_poll(1.5)
    assert client.writer_idle(1.5) == [sent(msg("held"), transport=WEBSOCKET)]
    assert client.receive_frame("2", 2.0) == []  # PONG queued behind a busy writer
    assert client.writer_idle(2.0) == [sent(Packet(P.PONG), transport=WEBSOCKET)]


def test_client_probe_failure_resumes_polling() -> None:
    client = opened_client()
    client.start_upgrade(1.0)
    assert client.receive_frame("3nope", 1.1) == [UpgradeFailed("probe error")]
    assert state_of(client) is SessionState.OPEN
    assert client.begin_poll(1.2)
    client.receive_payload("6", 1.3)
    client.start_upgrade(1.4)
    assert client.transport_lost(WEBSOCKET, 1.5) == [UpgradeFailed("probe transport closed")]


def test_client_close_and_server_close() -> None:
    client = opened_client()
    assert client.close(1.0) == [
        Closed(R.CLIENT_DISCONNECT),
        sent(Packet(P.CLOSE)),
        CloseTransport(POLLING),
    ]
    other = opened_client()
    other.begin_poll(1.0)
    assert other.receive_payload("4bye\x1e1", 1.0) == [
        MessageReceived("bye"),
        Closed(R.SERVER_DISCONNECT),
        CloseTransport(POLLING),
    ]


def test_client_close_before_open() -> None:
    client = ClientSession(POLLING, now=0.0)
    assert client.close(0.0) == [Closed(R.CLIENT_DISCONNECT), CloseTransport(POLLING)]
    assert client.next_deadline() is None
    assert client.tick(100.0) == []


def test_websocket_only_client() -> None:
    client = ClientSession(WEBSOCKET, now=0.0)
    events = client.receive_frame(handshake_payload(upgrades=[]), 0.0)
    assert isinstance(events[0], Opened)
    assert not client.can_upgrade
    assert not client.begin_poll(0.0)
    assert client.receive_frame(b"\x00\x01", 0.1) == [MessageReceived(b"\x00\x01")]
    assert client.send_message(b"\x02", 0.2) == [sent(msg(b"\x02"), transport=WEBSOCKET)]
    events = client.transport_lost(WEBSOCKET, 0.3)
    assert events == [Closed(R.TRANSPORT_ERROR), CloseTransport(WEBSOCKET)]


# -- a client and a server session, wired together in memory ----------------------


class Link:
    """Route each side's events to the other, as the two I/O layers would."""

    def __init__(self, **config: Any) -> None:
        self.now = 0.0
        self.server = ServerSession("sid1", POLLING, now=0.0, config=ServerConfig(**config))
        self.client = ClientSession(POLLING, now=0.0)
        self.log: dict[str, list[Event]] = {"server": [], "client": []}
        self.get_parked = True  # the handshake GET
        self.from_server(self.server.handle_get(0.0))

    def received(self, side: str) -> list[str | bytes]:
        return [e.data for e in self.log[side] if isinstance(e, MessageReceived)]

    def poll(self) -> None:
        if not self.get_parked and self.client.begin_poll(self.now):
            self.get_parked = True
            self.from_server(self.server.handle_get(self.now))

    def from_server(self, events: list[Event]) -> None:
        for event in events:
            self.log["server"].append(event)
            if isinstance(event, SendProbe):
                self.from_client(self.client.receive_frame(encode_frame(event.packet), self.now))
            elif isinstance(event, SendPackets) and event.transport is POLLING:
                assert self.get_parked
                self.get_parked = False
                self.from_client(self.client.receive_payload(event.payload().encode(), self.now))
                self.poll()
            elif isinstance(event, SendPackets):
                for frame in event.frames():
                    self.from_client(self.client.receive_frame(frame, self.now))
                self.from_server(self.server.writer_idle(self.now))

    def from_client(self, events: list[Event]) -> None:
        for event in events:
            self.log["client"].append(event)
            if isinstance(event, Opened):
                self.from_client(self.client.writer_idle(self.now))
                self.poll()
            elif isinstance(event, SendProbe):
                self.from_server(self.server.receive_frame(encode_frame(event.packet), self.now))
            elif isinstance(event, SendPackets) and event.transport is POLLING:
                self.from_server(self.server.handle_post(event.payload().encode(), self.now))
                self.from_client(self.client.writer_idle(self.now))
            elif isinstance(event, SendPackets):
                for frame in event.frames():
                    self.from_server(self.server.receive_frame(frame, self.now))
                self.from_client(self.client.writer_idle(self.now))

    def upgrade(self) -> None:
        self.from_server(self.server.begin_upgrade(self.now))
        self.from_client(self.client.start_upgrade(self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.from_server(self.server.tick(self.now))
        self.from_client(self.client.tick(self.now))


def test_link_polling_then_upgrade() -> None:
    link = Link()
    assert isinstance(link.log["client"][0], Opened)
    link.from_client(link.client.send_message("hi", 0.0))
    link.from_server(link.server.send_message(b"\x00\x01", 0.0))
    link.upgrade()
    assert link.server.transport is WEBSOCKET
    assert link.client.transport is WEBSOCKET
    assert UpgradeDone() in link.log["server"]
    assert UpgradeDone() in link.log["client"]
    link.from_client(link.client.send_message("over ws", 0.0))
    link.from_server(link.server.send_message("back", 0.0))
    assert link.received("server") == ["hi", "over ws"]
    assert link.received("client") == [b"\x00\x01", "back"]
    for _ in range(10):  # an hour of heartbeats, answered in time
        link.advance(25.0)
    assert state_of(link.server) is SessionState.OPEN
    assert state_of(link.client) is SessionState.OPEN
    link.from_client(link.client.close(link.now))
    assert Closed(R.CLIENT_DISCONNECT) in link.log["server"]
    assert state_of(link.server) is SessionState.CLOSED
    assert state_of(link.client) is SessionState.CLOSED


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("client"), TEXT.filter(lambda s: "\x1e" not in s) | st.binary()),
        st.tuples(st.just("server"), TEXT.filter(lambda s: "\x1e" not in s) | st.binary()),
        st.tuples(st.just("wait"), st.floats(0.5, 30.0)),
        st.tuples(st.just("upgrade"), st.none()),
    ),
    max_size=25,
)


@given(ACTIONS, st.integers(20, 200))
def test_link_delivers_everything_in_order(actions: list[tuple[str, Any]], limit: int) -> None:
    link = Link(max_payload=limit)
    expected: dict[str, list[str | bytes]] = {"server": [], "client": []}
    for kind, arg in actions:
        if (
            kind == "client"
            and len(encode_text(msg(arg)).encode("utf-8", "surrogatepass")) <= limit
        ):
            expected["server"].append(arg)
            link.from_client(link.client.send_message(arg, link.now))
        elif kind == "server":
            expected["client"].append(arg)
            link.from_server(link.server.send_message(arg, link.now))
        elif kind == "wait":
            link.advance(arg)
        elif kind == "upgrade" and link.client.can_upgrade:
            link.upgrade()
    assert link.received("server") == expected["server"]
    assert link.received("client") == expected["client"]
    assert state_of(link.server) is SessionState.OPEN
    assert state_of(link.client) is SessionState.OPEN


def test_client_reports_its_queue_and_what_it_never_sent() -> None:
    client = opened_client()
    assert client.send_message("in flight", 1.0) == [sent(msg("in flight"))]
    client.send_message("a", 1.0)
    client.send_message(b"\x01", 1.0)
    assert client.queued == (2, 3)  # packets, bytes ("4a" and the binary byte)
    client.send_packet(Packet(P.NOOP), 1.0)  # not a message: never reported as unsent
    events = client.transport_lost(POLLING, 1.1, error=OSError("reset"))
    assert isinstance(events[0], Closed)
    assert client.unsent == ("a", b"\x01")
    assert client.queued == (0, 0)


def test_client_posts_at_most_max_batch_packets() -> None:
    client = opened_client(maxPayload=10_000)
    client.send_message("first", 1.0)  # the POST in flight
    for i in range(20):
        client.send_message(str(i), 1.0)
    batch = client.writer_idle(1.1)[0]
    assert isinstance(batch, SendPackets)
    assert len(batch.packets) == 16  # python-engineio's server refuses more
    other = ClientSession(POLLING, now=0.0, max_batch_packets=None)
    other.receive_payload(handshake_payload(maxPayload=10_000), 0.0)
    other.send_message("first", 1.0)
    for i in range(20):
        other.send_message(str(i), 1.0)
    assert len(other.writer_idle(1.1)[0].packets) == 20  # type: ignore[union-attr]


def _decode_by_trying(data: str) -> Any:
    """decode_message's rule without its shortcut: try json.loads on every text."""
    if not data or data[0].isnumeric():
        return data
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data


@given(
    st.one_of(
        st.text(),
        st.text(alphabet='{}[]":,-0123456789.eEtruefalsnNIinfy \t\n\rx'),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        ).map(json.dumps),
    )
)
def test_decode_message_shortcut_decodes_exactly_what_json_loads_decodes(data: str) -> None:
    expected = _decode_by_trying(data)
    got = decode_message(data, DEFAULT_JSON)
    assert type(got) is type(expected)
    assert json.dumps(got) == json.dumps(expected)  # NaN != NaN: compare encodings
