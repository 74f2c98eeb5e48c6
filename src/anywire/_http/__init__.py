"""The server side of HTTP/1.1, on h11: one connection layer for every server in anywire.

The WebSocket server reads its upgrade request with it; the ASGI runner
serves whole connections with it (keep-alive, streamed bodies, 100-continue).
"""

from ._connection import ServerConnection as ServerConnection
from ._request import HTTPLimits as HTTPLimits
from ._request import Request as Request

__all__ = ["HTTPLimits", "Request", "ServerConnection"]
