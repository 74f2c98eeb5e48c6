"""Engine.IO v4: the sans-I/O core (packets, payloads, session state machines) and the client.

The I/O server (an ASGI app) and client build on the core; every protocol
rule and bound lives there. See ``docs/engineio-protocol.md`` for the wire
format and the reference behaviours matched, ``docs/engineio-client.md`` for
the client::

    async with anywire.engineio.connect("http://127.0.0.1:5000") as client:
        await client.send("hello")
        async for message in client:
            print(message)
"""

from __future__ import annotations

from anywire.engineio import exceptions as exceptions
from anywire.engineio._asgi_app import ASGIApp as ASGIApp
from anywire.engineio._client import AsyncClient as AsyncClient
from anywire.engineio._client_connect import connect as connect
from anywire.engineio._client_utils import BackgroundTask as BackgroundTask
from anywire.engineio._client_utils import ClientState as ClientState
from anywire.engineio._client_utils import Queue as Queue
from anywire.engineio._client_utils import reason as reason
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
from anywire.engineio._packets import DEFAULT_JSON as DEFAULT_JSON
from anywire.engineio._packets import Handshake as Handshake
from anywire.engineio._packets import JsonModule as JsonModule
from anywire.engineio._packets import Packet as Packet
from anywire.engineio._packets import PacketType as PacketType
from anywire.engineio._packets import Transport as Transport
from anywire.engineio._packets import decode_packet as decode_packet
from anywire.engineio._packets import encode_frame as encode_frame
from anywire.engineio._packets import encode_text as encode_text
from anywire.engineio._payload import batch as batch
from anywire.engineio._payload import decode_payload as decode_payload
from anywire.engineio._payload import encode_payload as encode_payload
from anywire.engineio._server import AsyncServer as AsyncServer
from anywire.engineio._server import ConnectionRefusedError as ConnectionRefusedError
from anywire.engineio._session import ClientSession as ClientSession
from anywire.engineio._session import Closed as Closed
from anywire.engineio._session import CloseTransport as CloseTransport
from anywire.engineio._session import DisconnectReason as DisconnectReason
from anywire.engineio._session import Event as Event
from anywire.engineio._session import MessageReceived as MessageReceived
from anywire.engineio._session import Opened as Opened
from anywire.engineio._session import RejectRequest as RejectRequest
from anywire.engineio._session import SendPackets as SendPackets
from anywire.engineio._session import SendProbe as SendProbe
from anywire.engineio._session import ServerConfig as ServerConfig
from anywire.engineio._session import ServerSession as ServerSession
from anywire.engineio._session import SessionState as SessionState
from anywire.engineio._session import UpgradeDone as UpgradeDone
from anywire.engineio._session import UpgradeFailed as UpgradeFailed

__all__ = [
    "DEFAULT_JSON",
    "ASGIApp",
    "AsyncClient",
    "AsyncServer",
    "ConnectionRefusedError",
    "BackgroundTask",
    "ClientConnectionError",
    "ClientSession",
    "ClientState",
    "ConnectionLost",
    "EngineIOError",
    "InvalidResponse",
    "Queue",
    "QueueEmpty",
    "ServerUnreachable",
    "UnexpectedStatus",
    "connect",
    "exceptions",
    "reason",
    "CloseTransport",
    "Closed",
    "DisconnectReason",
    "Event",
    "Handshake",
    "JsonModule",
    "MessageReceived",
    "Opened",
    "Packet",
    "PacketError",
    "PacketType",
    "PayloadTooLarge",
    "PingTimeout",
    "QueueFull",
    "RejectRequest",
    "SendPackets",
    "SendProbe",
    "ServerConfig",
    "ServerSession",
    "SessionClosed",
    "SessionState",
    "Transport",
    "UpgradeDone",
    "UpgradeFailed",
    "batch",
    "decode_packet",
    "decode_payload",
    "encode_frame",
    "encode_payload",
    "encode_text",
]
