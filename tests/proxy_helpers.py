"""A tiny HTTP forward proxy for tests, owned by a task group, on a free port.

Two modes, as real forward proxies have them:

* absolute-URI forwarding (``GET http://host:port/path HTTP/1.1``) for plain http:
  the request is sent on to the origin in origin form, without the hop-by-hop
  headers (``Connection``, ``Upgrade``, ...), as RFC 9110 asks of a proxy; so a plain
  ``ws://`` upgrade cannot pass, as with most real proxies;
* ``CONNECT host:port`` tunnelling for https and wss: bytes are relayed both ways.

Everything that passed is recorded (:attr:`ForwardProxy.passed`), with the local
port of the proxy's own connection to the origin, so a test can check that what the
origin saw came through the proxy. Only ``Content-Length`` bodies are forwarded
(what httpx sends); that is all the tests need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import h11
from anyio.abc import ByteStream, SocketAttribute, SocketStream

from anywire.streams import serve_tcp

__all__ = ["ForwardProxy", "Passed", "TcpRelay", "forward_proxy", "tcp_relay"]

#: Headers that concern one hop only (RFC 9110, 7.6.1), plus the framing we recompute.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
_CHUNK = 65536


@dataclass(frozen=True)
class Passed:
    """One request through the proxy: ``CONNECT`` (a tunnel) or a forwarded request."""

    method: str
    target: str  # "host:port" for CONNECT, else the absolute URI
    headers: dict[str, str]
    upstream_port: int  # the local port of the proxy's connection to the origin


@dataclass
class ForwardProxy:
    port: int = 0
    passed: list[Passed] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upstream_ports(self) -> set[int]:
        return {p.upstream_port for p in self.passed}

    def methods(self) -> list[str]:
        return [p.method for p in self.passed]

    # -- one client connection ---------------------------------------------------------

    async def handle(self, stream: ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        upstream: _Upstream | None = None
        try:
            while True:
                request = await _next(conn, stream)
                if not isinstance(request, h11.Request):
                    return
                if request.method == b"CONNECT":
                    await self._tunnel(conn, stream, request)
                    return
                upstream = await self._forward(conn, stream, request, upstream)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        finally:
            if upstream is not None:
                await upstream.stream.aclose()

    async def _tunnel(self, conn: h11.Connection, client: ByteStream, request: h11.Request) -> None:
        host, _, port = request.target.decode().rpartition(":")
        origin = await anyio.connect_tcp(host, int(port))
        self.passed.append(
            Passed("CONNECT", request.target.decode(), _headers(request), _port(origin))
        )
        await client.send(conn.send(h11.Response(status_code=200, headers=[])) or b"")
        early = conn.trailing_data[0]
        async with origin:
            if early:
                await origin.send(early)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_relay, client, origin, tg.cancel_scope)
                await _relay(origin, client, tg.cancel_scope)

    async def _forward(
        self,
        conn: h11.Connection,
        client: ByteStream,
        request: h11.Request,
        upstream: _Upstream | None,
    ) -> _Upstream:
        target = request.target.decode()
        parts = urlsplit(target)
        body = await _body(conn, client)
        if upstream is None or upstream.target != parts.netloc or not upstream.reusable():
            if upstream is not None:
                await upstream.stream.aclose()
            origin = await anyio.connect_tcp(parts.hostname or "", parts.port or 80)
            upstream = _Upstream(parts.netloc, origin, h11.Connection(h11.CLIENT))
        self.passed.append(
            Passed(request.method.decode(), target, _headers(request), _port(upstream.stream))
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head, data = await upstream.exchange(
            request.method, path.encode(), _strip(request.headers), body
        )
        headers = [*_strip(head.headers), (b"content-length", b"%d" % len(data))]
        out = conn.send(h11.Response(status_code=head.status_code, headers=headers)) or b""
        out += conn.send(h11.Data(data=data)) or b""
        await client.send(out + (conn.send(h11.EndOfMessage()) or b""))
        return upstream


@dataclass
class _Upstream:
    target: str
    stream: SocketStream
    conn: h11.Connection

    def reusable(self) -> bool:
        return self.conn.our_state is h11.IDLE or (
            self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE
        )

    async def exchange(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[h11.Response, bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        host = [(b"host", self.target.encode()), (b"content-length", b"%d" % len(body))]
        fields = host + [(k, v) for k, v in headers if k != b"host"]
        out = self.conn.send(h11.Request(method=method, target=target, headers=fields)) or b""
        if body:
            out += self.conn.send(h11.Data(data=body)) or b""
        await self.stream.send(out + (self.conn.send(h11.EndOfMessage()) or b""))
        while not isinstance(head := await _next(self.conn, self.stream), h11.Response):
            if not isinstance(head, h11.InformationalResponse):
                raise ConnectionError(f"the origin answered {head!r}")
        return head, await _body(self.conn, self.stream)


async def _next(conn: h11.Connection, stream: ByteStream) -> h11.Event | type[h11.PAUSED]:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        try:
            data = await stream.receive(_CHUNK)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            data = b""
        conn.receive_data(data)


async def _body(conn: h11.Connection, stream: ByteStream) -> bytes:
    body = bytearray()
    while isinstance(event := await _next(conn, stream), h11.Data):
        body += event.data
    if not isinstance(event, h11.EndOfMessage):
        raise ConnectionError(f"a message body ended with {event!r}")
    return bytes(body)


async def _relay(
    source: ByteStream, sink: ByteStream, scope: anyio.CancelScope, gate: TcpRelay | None = None
) -> None:
    """Copy bytes until either side closes (then end the tunnel); hold them while paused."""
    try:
        while True:
            data = await source.receive(_CHUNK)
            while gate is not None and gate.paused is not None:
                await gate.paused.wait()
            await sink.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        scope.cancel()


def _strip(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


def _headers(request: h11.Request) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in request.headers}


def _port(stream: SocketStream) -> int:
    address = stream.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    return int(address[1])


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    """Run a :class:`ForwardProxy` on 127.0.0.1 (port 0, read back) for the block."""
    proxy = ForwardProxy()
    async with anyio.create_task_group() as tg:
        info = await tg.start(serve_tcp, proxy.handle)
        proxy.port = info.port
        yield proxy
        tg.cancel_scope.cancel()


@dataclass
class TcpRelay:
    """Relays TCP connections to ``target_port``; :meth:`pause` freezes every byte (a
    stopped server or a dead network, for the peer's heartbeat) until :meth:`resume`."""

    target_port: int
    port: int = 0
    paused: anyio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pause(self) -> None:
        if self.paused is None:
            self.paused = anyio.Event()

    def resume(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None:
            paused.set()

    async def handle(self, client: ByteStream) -> None:
        async with await anyio.connect_tcp("127.0.0.1", self.target_port) as origin:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_relay, client, origin, tg.cancel_scope, self)
                await _relay(origin, client, tg.cancel_scope, self)


@asynccontextmanager
async def tcp_relay(target_port: int) -> AsyncIterator[TcpRelay]:
    """Run a :class:`TcpRelay` to ``127.0.0.1:target_port`` for the block."""
    relay = TcpRelay(target_port)
    async with anyio.create_task_group() as tg:
        info = await tg.start(serve_tcp, relay.handle)
        relay.port = info.port
        yield relay
        relay.resume()
        tg.cancel_scope.cancel()
