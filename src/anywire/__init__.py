"""anywire: real-time connections for structured concurrency, on asyncio or trio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anywire.errors import AnywireError as AnywireError

if TYPE_CHECKING:
    from anywire.server import serve as serve
    from anywire.server import serve_app as serve_app

__version__ = "0.1.0.dev0"

__all__ = ["AnywireError", "__version__", "serve", "serve_app"]

#: Imported on first use: the runner pulls in the WebSocket stack (and httpx).
_LAZY = {"serve", "serve_app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import anywire.server

        return getattr(anywire.server, name)
    raise AttributeError(f"module 'anywire' has no attribute {name!r}")
