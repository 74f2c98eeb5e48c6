"""Write the small intersphinx inventories of anyio, trio and httpx into this folder.

The docs build runs offline, so docs/conf.py reads every inventory from a file here.
Each entry below is an object the pages or docstrings link to, with the page that
documents it upstream (anyio: ``docs/api.rst``; trio: ``docs/source/reference-*.rst``;
httpx: ``docs/api.md``, whose MkDocs pages have no inventory of their own). Every name is
imported before it is written, so a renamed or removed object fails here rather than
linking to nothing. Python's inventory (python.inv) is not made here: it is the
``objects.inv`` of Debian's python3.11-doc package.

Run it after adding a link to one of these projects:
``python docs/_inventories/make_inventories.py``.
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from pathlib import Path

HERE = Path(__file__).parent

ANYIO = [
    "anyio.run",
    "anyio.sleep",
    "anyio.create_task_group",
    "anyio.abc.TaskGroup",
    "anyio.abc.TaskStatus",
    "anyio.CancelScope",
    "anyio.move_on_after",
    "anyio.fail_after",
    "anyio.get_cancelled_exc_class",
    "anyio.Event",
    "anyio.AsyncContextManagerMixin",
    "anyio.create_memory_object_stream",
    "anyio.abc.ByteStream",
    "anyio.abc.SocketListener",
    "anyio.abc.SocketAttribute",
    "anyio.abc.SocketAttribute.remote_address",
    "anyio.abc.SocketAttribute.local_address",
    "anyio.TypedAttributeProvider",
    "anyio.TypedAttributeLookupError",
    "anyio.EndOfStream",
    "anyio.IncompleteRead",
    "anyio.ClosedResourceError",
    "anyio.BrokenResourceError",
    "anyio.BusyResourceError",
]

#: trio's names, with the page of its reference that documents each.
TRIO = {
    "trio.run": "reference-core.html",
    "trio.open_nursery": "reference-core.html",
    "trio.Nursery": "reference-core.html",
    "trio.CancelScope": "reference-core.html",
    "trio.move_on_after": "reference-core.html",
    "trio.fail_after": "reference-core.html",
    "trio.Cancelled": "reference-core.html",
}

#: httpx's names and their MkDocs anchors (``## `AsyncClient``` becomes ``#asyncclient``).
HTTPX = {
    "httpx.AsyncClient": "api/#asyncclient",
    "httpx.Response": "api/#response",
}


def role(dotted: str) -> str:
    """The py-domain role of ``dotted``, found by importing it."""
    module_name, _, attr = dotted.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except ImportError:  # a class attribute: import the class, then look the name up
        owner_module, _, owner = module_name.rpartition(".")
        cls = getattr(importlib.import_module(owner_module), owner)
        obj = getattr(cls, attr)
        return "py:method" if callable(obj) else "py:attribute"
    if isinstance(obj, type):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    if inspect.isroutine(obj) or callable(obj):
        return "py:function"
    return "py:data"


def write(path: Path, project: str, version: str, entries: dict[str, str]) -> None:
    lines = [f"{name} {role(name)} 1 {uri} -" for name, uri in sorted(entries.items())]
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    path.write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))
    print(f"{path.name}: {len(lines)} objects")


def main() -> None:
    from importlib.metadata import version

    write(HERE / "anyio.inv", "AnyIO", version("anyio"), {n: f"api.html#{n}" for n in ANYIO})
    write(HERE / "trio.inv", "Trio", version("trio"), {n: f"{p}#{n}" for n, p in TRIO.items()})
    write(HERE / "httpx.inv", "HTTPX", version("httpx"), HTTPX)


if __name__ == "__main__":
    main()
