"""The ``aio.stream`` names of the aio seed library, for ``from anywire import stream``.

Thin re-exports of :mod:`anywire.streams`; see ``docs/migration-aio.md``.
"""

from __future__ import annotations

from anywire.streams import BufferedStream as BufferedStream

__all__ = ["BufferedStream"]
