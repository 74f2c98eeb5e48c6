"""The stream under each connection ``serve_tcp`` accepts.

On asyncio it is ``anywire._asyncio_socket``'s, on trio ``anywire._raw_socket``'s; these
tests hold both to the ``anyio.abc.SocketStream`` contract: bounded buffering,
backpressure, end of stream, broken connections, closing, and fairness.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import ByteStream, SocketAttribute

from anywire._asyncio_socket import AsyncioSocketStream
from anywire._raw_socket import RawSocketStream
from anywire.streams import BufferedStream, open_tcp_stream, serve_tcp
from tests.conftest import timeout

pytestmark = pytest.mark.anyio

Handler = Callable[[BufferedStream], Awaitable[object]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        info = await tg.start(serve_tcp, handler)
        yield info.port
        tg.cancel_scope.cancel()


def raw_stream(stream: BufferedStream) -> ByteStream:
    return stream.stream


class Ticker:
    """Counts its own scheduler turns: how often other tasks let it run."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await anyio.lowlevel.checkpoint()
            self.ticks += 1


@asynccontextmanager
async def ticking(ticker: Ticker) -> AsyncIterator[None]:
    """Run ``ticker`` in its own task while the block runs."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker.run)
        yield
        tg.cancel_scope.cancel()


async def test_the_stream_is_ours_on_each_backend(
    anyio_backend: tuple[str, object],
) -> None:
    kinds: list[type] = []

    async def handler(stream: BufferedStream) -> None:
        kinds.append(type(raw_stream(stream)))
        await stream.write_all(b"x")

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port) as client:
            assert await client.read_exactly(1) == b"x"
    expected = {"asyncio": AsyncioSocketStream, "trio": RawSocketStream}[anyio_backend[0]]
    assert kinds == [expected]


async def test_megabytes_both_ways_with_a_slow_reader() -> None:
    # More than both buffer limits: reading pauses and resumes, sending waits for the
    # kernel, and nothing is lost or reordered.
    payload = os.urandom(3 * 1024 * 1024)

    async def handler(stream: BufferedStream) -> None:
        data = await stream.read_exactly(len(payload))
        await stream.write_all(data)

    with anyio.fail_after(timeout(30)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.write_all, payload)
                received = bytearray()
                while len(received) < len(payload):
                    received += await client.read()
                    await anyio.lowlevel.checkpoint()
            assert bytes(received) == payload


async def test_end_of_stream_after_the_data_and_half_close() -> None:
    async def handler(stream: BufferedStream) -> None:
        data = await stream.read()  # everything until the client's EOF
        assert await stream.read() == b""
        await stream.write_all(data + b"!")  # the write side still works

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port) as client:
            await client.write(b"abc")
            await client.send_eof()
            reply = b""
            while chunk := await client.read():
                reply += chunk
            assert reply == b"abc!"


async def test_receive_waiting_in_one_task_ends_when_another_closes() -> None:
    outcome: list[type[BaseException]] = []
    closed = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)

        async def reader() -> None:
            try:
                await raw.receive()
            except (anyio.ClosedResourceError, anyio.EndOfStream) as exc:
                outcome.append(type(exc))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await raw.aclose()
        closed.set()

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port):
            await closed.wait()
    assert outcome == [anyio.ClosedResourceError]


async def test_two_concurrent_receives_are_refused() -> None:
    refused = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)
        async with anyio.create_task_group() as tg:
            tg.start_soon(raw.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await raw.receive()
            refused.set()
            tg.cancel_scope.cancel()

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port):
            await refused.wait()


async def test_send_to_a_reset_connection_raises_broken_resource() -> None:
    result: list[type[BaseException]] = []
    done = anyio.Event()

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)
        try:
            assert await raw.receive() == b"bye"
            await raw.send(b"ok")
            with anyio.fail_after(timeout(10)):
                while True:  # the RST arrives after the first send at the latest
                    await raw.send(b"x" * 1024)
                    await anyio.sleep(0.01)  # let the loop see the reset
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            result.append(type(exc))
        finally:
            done.set()

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port:
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"bye")
            await anyio.to_thread.run_sync(client.recv, 2)  # the handler runs
            # SO_LINGER 0: close() sends RST instead of FIN
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            await done.wait()
    assert result == [anyio.BrokenResourceError]


async def test_what_was_sent_before_close_reaches_a_slow_reader() -> None:
    payload = os.urandom(2 * 1024 * 1024)

    async def handler(stream: BufferedStream) -> None:
        await stream.write_all(payload)  # then the server closes the stream

    with anyio.fail_after(timeout(30)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port) as client:
            received = bytearray()
            while chunk := await client.read():
                received += chunk
            assert bytes(received) == payload


async def test_a_sender_whose_peer_takes_everything_lets_other_tasks_run() -> None:
    total = 8 * 1024 * 1024
    ticks_while_sending: list[int] = []
    ticker = Ticker()

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)
        before = ticker.ticks
        for _ in range(total // 1024):  # 1 KiB sends to a reader (a thread) that keeps up
            await raw.send(b"y" * 1024)
        ticks_while_sending.append(ticker.ticks - before)

    def read_all(port: int) -> int:
        with socket.create_connection(("127.0.0.1", port)) as client:
            count = 0
            while chunk := client.recv(1 << 20):
                count += len(chunk)
            return count

    with anyio.fail_after(timeout(30)):
        async with ticking(ticker), serving(handler) as port:
            assert await anyio.to_thread.run_sync(read_all, port) == total
    assert ticks_while_sending[0] >= 8  # a turn at least every 256 KiB or so


async def test_a_receiver_whose_peer_never_pauses_lets_other_tasks_run() -> None:
    # The client fills the kernel's buffers before the handler reads: every receive()
    # then finds bytes waiting, and only the stream's own turns let the ticker run.
    total = 8 * 1024 * 1024
    full = anyio.Event()
    longest_run: list[int] = []  # the most bytes received without the ticker running
    ticker = Ticker()

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)
        await full.wait()
        received = run = longest = 0
        seen = ticker.ticks
        while received < total:
            chunk = await raw.receive(1024)
            received += len(chunk)
            run = len(chunk) if ticker.ticks != seen else run + len(chunk)
            seen = ticker.ticks
            longest = max(longest, run)
        longest_run.append(longest)
        await raw.send(b"k")

    def write_all(port: int) -> bytes:
        data = memoryview(b"z" * total)
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            client.setblocking(False)
            sent = 0
            with contextlib.suppress(BlockingIOError):
                while sent < total:
                    sent += client.send(data[sent:])
            anyio.from_thread.run_sync(full.set)
            client.setblocking(True)
            client.sendall(data[sent:])
            return client.recv(1)

    with anyio.fail_after(timeout(30)):
        async with ticking(ticker), serving(handler) as port:
            assert await anyio.to_thread.run_sync(write_all, port) == b"k"
    # a turn every 256 KiB; trio may run the receiver twice in a row before the ticker
    assert longest_run[0] <= 1024 * 1024


async def test_extra_attributes_name_both_ends() -> None:
    seen: list[tuple[object, object]] = []

    async def handler(stream: BufferedStream) -> None:
        raw = raw_stream(stream)
        seen.append(
            (raw.extra(SocketAttribute.local_address), raw.extra(SocketAttribute.remote_address))
        )
        await stream.write_all(b"k")

    with anyio.fail_after(timeout(10)):
        async with serving(handler) as port, await open_tcp_stream("127.0.0.1", port) as client:
            assert await client.read_exactly(1) == b"k"
            mine = client.extra(SocketAttribute.local_address)
    assert seen == [(("127.0.0.1", port), mine)]
