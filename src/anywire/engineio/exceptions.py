"""python-engineio's exception names (``engineio.exceptions``), for code written against it.

``from anywire.engineio import exceptions`` then ``except exceptions.ConnectionError``
works as with python-engineio. Each name is an alias of an anywire class (see
:mod:`anywire.engineio` for the tree): they all derive from
:class:`EngineIOError`, itself an :class:`anywire.errors.AnywireError`.
"""

from __future__ import annotations

from anywire.engineio._errors import ClientConnectionError as ClientConnectionError
from anywire.engineio._errors import ConnectionLost as ConnectionLost
from anywire.engineio._errors import EngineIOError as EngineIOError
from anywire.engineio._errors import InvalidResponse as InvalidResponse
from anywire.engineio._errors import PacketError as PacketError
from anywire.engineio._errors import PayloadTooLarge as PayloadTooLarge
from anywire.engineio._errors import PingTimeout as PingTimeout
from anywire.engineio._errors import QueueEmpty as QueueEmpty
from anywire.engineio._errors import QueueFull as QueueFull
from anywire.engineio._errors import ServerUnreachable as ServerUnreachable
from anywire.engineio._errors import SessionClosed as SessionClosed
from anywire.engineio._errors import UnexpectedStatus as UnexpectedStatus

#: Connecting failed (python-engineio's ``ConnectionError``; not the builtin).
ConnectionError = ClientConnectionError
#: Sending on a closed session or client.
SocketIsClosedError = SessionClosed
#: A payload longer than ``maxPayload``.
ContentTooLongError = PayloadTooLarge
#: A packet that does not parse.
UnknownPacketError = PacketError

__all__ = [
    "ClientConnectionError",
    "ConnectionError",
    "ConnectionLost",
    "ContentTooLongError",
    "EngineIOError",
    "InvalidResponse",
    "PacketError",
    "PayloadTooLarge",
    "PingTimeout",
    "QueueEmpty",
    "QueueFull",
    "ServerUnreachable",
    "SessionClosed",
    "SocketIsClosedError",
    "UnexpectedStatus",
    "UnknownPacketError",
]
