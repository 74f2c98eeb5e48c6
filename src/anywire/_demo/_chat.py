"""The demo's chat: an Engine.IO server and the ASGI app serving it with the page.

Messages are JSON text, one object each. From a browser::

    {"type": "join", "name": "Ann"}       take a name (again to rename)
    {"type": "say", "text": "hello"}      a chat line, for everyone connected
    {"type": "ping", "t": 1234.5}         echoed to the sender only, to measure RTT

From the server::

    {"type": "welcome", "name": "Ann", "online": 2}    to the one who joined
    {"type": "joined", "name": "Ann", "online": 2}     to everyone else
    {"type": "said", "name": "Ann", "text": "hello"}   to everyone (the sender too)
    {"type": "left", "name": "Ann", "online": 1}       to everyone still there
    {"type": "pong", "t": 1234.5}                      to the sender of the ping

Anything else is ignored. Handlers run in arrival order (``async_handlers``
off), so one browser's lines reach everyone in the order it sent them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from anywire._asgi import ASGIApp as RunnerApp
from anywire.engineio import ASGIApp, AsyncServer, SessionClosed

__all__ = ["MAX_NAME", "MAX_TEXT", "Chat", "create_app"]

#: Longest name and chat line kept (longer ones are cut).
MAX_NAME = 32
MAX_TEXT = 500
_MAX_MESSAGE = 4096  # bytes of one Engine.IO message the server accepts

STATIC = Path(__file__).with_name("static")
_log = logging.getLogger("anywire.demo")


class Chat:
    """The chat room: who is connected and under which name."""

    def __init__(self, eio: AsyncServer) -> None:
        self.eio = eio
        self.names: dict[str, str | None] = {}
        eio.on("connect", self.connect)
        eio.on("message", self.message)
        eio.on("disconnect", self.disconnect)

    def __repr__(self) -> str:
        return f"<Chat online={len(self.names)}>"

    def connect(self, sid: str, environ: dict[str, Any]) -> None:
        self.names[sid] = None

    async def disconnect(self, sid: str, reason: str) -> None:
        name = self.names.pop(sid, None)
        if name is not None:
            await self.broadcast({"type": "left", "name": name, "online": len(self.names)})

    async def message(self, sid: str, event: Any) -> None:
        # JSON text arrives decoded, as in python-engineio; anything else is ignored.
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "ping":
            await self.send(sid, {"type": "pong", "t": event.get("t")})
        elif kind == "join" and sid in self.names:
            await self.join(sid, _clean(event.get("name"), MAX_NAME) or "guest")
        elif kind == "say":
            await self.say(sid, _clean(event.get("text"), MAX_TEXT))

    async def join(self, sid: str, name: str) -> None:
        self.names[sid] = name
        online = len(self.names)
        await self.send(sid, {"type": "welcome", "name": name, "online": online})
        event = {"type": "joined", "name": name, "online": online}
        await self.broadcast(event, skip=sid)

    async def say(self, sid: str, text: str) -> None:
        name = self.names.get(sid)
        if name and text:  # joined, and not blank
            await self.broadcast({"type": "said", "name": name, "text": text})

    async def broadcast(self, event: dict[str, Any], skip: str | None = None) -> None:
        """Send ``event`` to every connected session (but ``skip``)."""
        text = json.dumps(event)
        for sid in list(self.names):
            if sid != skip:
                await self.send(sid, text)

    async def send(self, sid: str, event: dict[str, Any] | str) -> None:
        with contextlib.suppress(SessionClosed):  # it left: its disconnect tells the others
            await self.eio.send(sid, event if isinstance(event, str) else json.dumps(event))


def _clean(value: object, limit: int) -> str:
    """``value`` as one trimmed line of at most ``limit`` characters ("" if not a str)."""
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def create_app(client_js: Path) -> RunnerApp:
    """The demo's ASGI app: the page at ``/``, ``client_js`` at ``/engine.io.min.js``,
    the chat's Engine.IO server at ``/engine.io/``. Serve it with lifespan on."""
    eio = AsyncServer(max_http_buffer_size=_MAX_MESSAGE, async_handlers=False, logger=_log)
    Chat(eio)
    static = {
        "/": {"filename": str(STATIC / "index.html"), "content_type": "text/html; charset=utf-8"},
        "/engine.io.min.js": {"filename": str(client_js), "content_type": "text/javascript"},
    }
    return ASGIApp(eio, static_files=static)
