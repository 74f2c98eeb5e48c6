"""Long-polling payloads: packets in their text form, joined by ``"\\x1e"``.

``"4hello\\x1e2\\x1e4world"`` is a message, a ping and a message. The body of
a GET response and of a POST request is one payload, at most ``maxPayload``
bytes of UTF-8 (the reference server answers a longer POST with 413).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence

from anywire.engineio._errors import PacketError, PayloadTooLarge
from anywire.engineio._packets import (
    SEPARATOR,
    Packet,
    PacketType,
    decode_packet,
    encode_text,
    utf8_length,
)

__all__ = ["Outbox", "batch", "decode_payload", "encode_payload", "fit_batch", "text_size"]


def encode_payload(packets: Iterable[Packet]) -> str:
    """Join the text forms of ``packets``; encode the result as UTF-8 for the body."""
    return SEPARATOR.join([encode_text(packet) for packet in packets])


def decode_payload(data: str | bytes, *, max_payload: int | None = None) -> list[Packet]:
    """Split a payload into packets.

    ``bytes`` must be UTF-8. Raises :class:`PayloadTooLarge` past
    ``max_payload`` bytes (checked before decoding), and :class:`PacketError`
    for an empty payload, an empty item (a trailing separator), invalid UTF-8
    or any item :func:`decode_packet` refuses.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        data = _check_size(bytes(data), max_payload)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PacketError(f"payload is not UTF-8: {exc}") from None
    elif isinstance(data, str):
        text = data
        if max_payload is not None and len(text) > max_payload:
            raise PayloadTooLarge(len(text), max_payload)  # chars <= bytes: over already
        if max_payload is not None and (size := utf8_length(text)) > max_payload:
            raise PayloadTooLarge(size, max_payload)
    else:
        raise PacketError(f"a payload is str or bytes, not {type(data).__name__}")
    if not text:
        raise PacketError("empty payload")
    return [decode_packet(item) for item in text.split(SEPARATOR)]


def _check_size(data: bytes, max_payload: int | None) -> bytes:
    if max_payload is not None and len(data) > max_payload:
        raise PayloadTooLarge(len(data), max_payload)
    return data


def text_size(packet: Packet) -> int:
    """Bytes of the packet's long-polling form, in UTF-8, without computing it."""
    data = packet.data
    if isinstance(data, bytes):
        return 1 + 4 * ((len(data) + 2) // 3)
    return 1 + (utf8_length(data) if data else 0)


def fit_batch(
    packets: Iterable[Packet], max_payload: int | None, max_packets: int | None = None
) -> int:
    """How many leading ``packets`` fit in one payload of at most ``max_payload`` bytes
    (and, if given, ``max_packets`` packets).

    Always at least one when there is a packet: a packet longer than
    ``max_payload`` on its own travels alone, as the reference client sends it
    (the server will refuse it; check sizes before queueing).
    """
    count, total = 0, -1  # no separator before the first packet
    for packet in packets:
        if max_packets is not None and count >= max_packets > 0:
            break
        if max_payload is not None:
            total += 1 + text_size(packet)
            if total > max_payload and count:
                break
        count += 1
    return count


def batch(packets: Sequence[Packet], max_payload: int | None) -> list[str]:
    """Encode ``packets`` as payloads of at most ``max_payload`` bytes each, in order.

    The reference client batches its POSTs this way (it estimates sizes; this
    counts them exactly). A single packet longer than ``max_payload`` forms a
    payload of its own.
    """
    payloads = []
    start = 0
    while start < len(packets):
        count = fit_batch(itertools.islice(packets, start, None), max_payload)
        payloads.append(encode_payload(packets[start : start + count]))
        start += count
    return payloads


class Outbox:
    """A bounded FIFO of packets waiting for their transport.

    At most ``max_packets`` packets and ``max_bytes`` bytes (counted as
    :meth:`Packet.wire_size`); :meth:`take` hands out the next batch.
    """

    def __init__(self, max_packets: int, max_bytes: int) -> None:
        self.max_packets, self.max_bytes = max_packets, max_bytes
        self._packets: deque[Packet] = deque()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._packets)

    def push(self, packet: Packet, *, force: bool = False) -> bool:
        """Append ``packet``; False (and nothing added) when a bound would be passed."""
        size = packet.wire_size()
        full = len(self._packets) >= self.max_packets or self.nbytes + size > self.max_bytes
        if full and not force:
            return False
        self._packets.append(packet)
        self.nbytes += size
        return True

    def peek(self) -> Packet:
        """The next packet (``IndexError`` when empty)."""
        return self._packets[0]

    def take(self, max_payload: int | None, max_packets: int | None = None) -> tuple[Packet, ...]:
        """Remove and return the next batch: everything if both bounds are None,
        else what fits one payload (see :func:`fit_batch`)."""
        packets = self._packets
        bounded = max_payload is not None or max_packets is not None
        count = fit_batch(packets, max_payload, max_packets) if bounded else len(packets)
        if count == len(packets):
            batch = tuple(packets)
            self.clear()
            return batch
        batch = tuple([packets.popleft() for _ in range(count)])
        self.nbytes -= sum(packet.wire_size() for packet in batch)
        return batch

    def messages(self) -> tuple[str | bytes, ...]:
        """The data of the queued MESSAGE packets, in order."""
        message = PacketType.MESSAGE
        return tuple(p.data for p in self._packets if p.type is message and p.data is not None)

    def clear(self) -> None:
        """Drop every queued packet."""
        self._packets.clear()
        self.nbytes = 0
