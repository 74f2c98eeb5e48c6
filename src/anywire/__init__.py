"""anywire: real-time connections for structured concurrency, on asyncio or trio."""

from __future__ import annotations

from anywire.errors import AnywireError as AnywireError

__version__ = "0.1.0.dev0"

__all__ = ["AnywireError", "__version__"]
