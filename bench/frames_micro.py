"""Micro-benchmark: wsproto's ``Connection`` against our ``FastConnection``.

One iteration feeds one frame (built once by a peer of the opposite role) to
``receive_data()``, iterates ``events()`` and builds the echo with ``send()``, as a
server's echo loop does. ``server`` parses masked frames and sends unmasked ones;
``client`` parses unmasked frames and masks its reply. Prints microseconds per
message (best of ``--repeat`` runs), and the unmasking alternatives we measured.

    python bench/frames_micro.py [--iterations 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, Message, TextMessage

from anywire.websocket._frames import FastConnection

CASES: list[tuple[str, Any]] = [
    ("text 32 B", "x" * 32),
    ("binary 32 B", b"x" * 32),
    ("text 1 KiB", "x" * 1024),
    ("binary 64 KiB", os.urandom(65536)),
    ("binary 1 MiB", os.urandom(2**20)),
]
ROLES = {"server": ConnectionType.SERVER, "client": ConnectionType.CLIENT}
OTHER = {"server": ConnectionType.CLIENT, "client": ConnectionType.SERVER}


def echo_loop(conn: Any, frame: bytes, n: int) -> float:
    """Seconds per message for ``n`` parse-and-reply iterations."""
    receive, events, send = conn.receive_data, conn.events, conn.send
    start = time.perf_counter()
    for _ in range(n):
        receive(frame)
        for event in events():
            send(
                TextMessage(event.data) if type(event) is TextMessage else BytesMessage(event.data)
            )
    return (time.perf_counter() - start) / n


def measure(cls: Callable[..., Any], role: str, data: Any, n: int, repeat: int) -> float:
    frame = Connection(OTHER[role]).send(Message(data=data))
    conn = cls(ROLES[role])
    conn.receive_data(frame)
    (event,) = conn.events()
    assert event.data == data
    return min(echo_loop(conn, frame, n) for _ in range(repeat))


def best_of(f: Callable[[bytes, bytes], object], data: bytes, key: bytes, n: int, r: int) -> float:
    """Seconds per call of ``f(data, key)``, best of ``r`` runs of ``n`` calls."""
    return min(timeit.repeat(partial(f, data, key), number=n, repeat=r)) / n


def unmask_alternatives(repeat: int) -> None:
    xor_tables = [bytes(a ^ b for a in range(256)) for b in range(256)]  # as in _frames

    def big_int(data: bytes, key: bytes) -> bytes:
        n = len(data)
        mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ mask).to_bytes(n, "little")

    def translate(data: bytes, key: bytes) -> bytearray:
        out = bytearray(data)
        for lane in range(4):
            out[lane::4] = out[lane::4].translate(xor_tables[key[lane]])
        return out

    print("\nunmasking alternatives (us per call)")
    print(f"{'size':>10} {'big-int XOR':>12} {'translate':>12}")
    key = os.urandom(4)
    for size in (32, 125, 256, 384, 512, 1024, 65536, 2**20):
        data = os.urandom(size)
        assert big_int(data, key) == translate(data, key)
        number = max(5, 100_000 * 32 // max(size, 32) // 10)
        row = [best_of(f, data, key, number, repeat) for f in (big_int, translate)]
        print(f"{size:>10} {row[0] * 1e6:>12.2f} {row[1] * 1e6:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':<16}{'role':<8}{'wsproto':>10}{'ours':>10}{'speed-up':>10}   (us/msg)")
    for name, data in CASES:
        n = max(20, args.iterations * 32 // max(len(data), 32))
        for role in ROLES:
            theirs = measure(Connection, role, data, n, args.repeat)
            ours = measure(FastConnection, role, data, n, args.repeat)
            print(
                f"{name:<16}{role:<8}{theirs * 1e6:>10.2f}{ours * 1e6:>10.2f}{theirs / ours:>9.1f}x"
            )
    unmask_alternatives(args.repeat)


if __name__ == "__main__":
    main()
