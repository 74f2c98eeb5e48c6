"""``python -m anywire demo``: a chat page served by anywire's runner and Engine.IO server.

Private: the command line is the interface. :func:`create_app` builds the ASGI
app (page, cached ``engine.io-client`` browser build, Engine.IO chat);
:func:`ensure_client` fetches the browser build with npm on the first run.
See ``docs/demo.md``.
"""

from __future__ import annotations

from anywire._demo._chat import Chat as Chat
from anywire._demo._chat import create_app as create_app
from anywire._demo._cli import add_demo_command as add_demo_command
from anywire._demo._cli import run_demo as run_demo
from anywire._demo._client_build import CACHE_ENV as CACHE_ENV
from anywire._demo._client_build import ENGINEIO_CLIENT_VERSION as ENGINEIO_CLIENT_VERSION
from anywire._demo._client_build import ClientBuildUnavailable as ClientBuildUnavailable
from anywire._demo._client_build import cache_dir as cache_dir
from anywire._demo._client_build import client_path as client_path
from anywire._demo._client_build import ensure_client as ensure_client

__all__ = [
    "CACHE_ENV",
    "ENGINEIO_CLIENT_VERSION",
    "Chat",
    "ClientBuildUnavailable",
    "add_demo_command",
    "cache_dir",
    "client_path",
    "create_app",
    "ensure_client",
    "run_demo",
]
