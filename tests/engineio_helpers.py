"""Helpers for Engine.IO tests: the echo server that client and interop tests talk to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anywire.engineio import AsyncServer


def echo_server(on_disconnect: Callable[[str, str], object], **options: Any) -> AsyncServer:
    """An :class:`AsyncServer` (``options``; ``shutdown_timeout`` 0.5 s unless given) that
    echoes every message, disconnects a session that sends ``"disconnect me"``, and calls
    ``on_disconnect(sid, reason)`` when a session ends."""
    eio = AsyncServer(**{"shutdown_timeout": 0.5, **options})

    @eio.on("message")
    async def message(sid: str, data: Any) -> None:
        if data == "disconnect me":
            await eio.disconnect(sid)
        else:
            await eio.send(sid, data)

    @eio.on("disconnect")
    def disconnect(sid: str, reason: str) -> None:
        on_disconnect(sid, reason)

    return eio
