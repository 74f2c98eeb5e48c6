"""The ``aio.net`` names of the aio seed library, for ``from anywire import net``.

Thin re-exports of :mod:`anywire.streams`; see ``docs/migration-aio.md``.
"""

from __future__ import annotations

from anywire.streams import TCPServerInfo as TCPServerInfo
from anywire.streams import get_socket_peer_address as get_socket_peer_address
from anywire.streams import open_tcp_stream as open_tcp_stream
from anywire.streams import serve_tcp as serve_tcp
from anywire.streams import start_tcp_server as start_tcp_server

__all__ = [
    "TCPServerInfo",
    "get_socket_peer_address",
    "open_tcp_stream",
    "serve_tcp",
    "start_tcp_server",
]
