"""``python -m anywire serve module:app`` and ``python -m anywire demo``: see ``--help``."""

from __future__ import annotations

import sys

from anywire.server._cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
