"""Sphinx configuration for anywire's documentation.

Build it as CI does: ``nox -s docs``, which runs
``sphinx-build -n -W --keep-going -b html docs docs/_build/html``.
The pages are Markdown (MyST); the API reference (``docs/reference/``) is autodoc with
sphinxcontrib-trio, which marks what to ``await``, ``async with`` or ``async for``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Any, TypeVar

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))  # a bare sphinx-build in a clone finds anywire

import anywire  # noqa: E402

project = "anywire"
author = "anywire developers"
copyright = "anywire developers"
release = anywire.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_inventories", "Thumbs.db", ".DS_Store"]
nitpicky = True  # as -n: every cross-reference must resolve

# --- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links work, as they do on GitHub

# --- autodoc ------------------------------------------------------------------------------
# sphinxcontrib-trio extends autodoc's class-based documenters, which Sphinx 9 keeps
# behind this switch.
autodoc_use_legacy_class_based = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
add_module_names = False
python_use_unqualified_type_names = True

#: The modules the reference documents, each by its ``__all__``. Their objects are defined
#: in private modules (``anywire.websocket._connection``); in the docs build each one says
#: it lives where users import it from, so signatures and links name the documented path.
#: A module listed first claims a shared object (anywire.errors before anywire.websocket).
PUBLIC_MODULES = [
    "anywire.errors",
    "anywire.streams",
    "anywire.websocket",
    "anywire.server",
    "anywire.reconnect",
    "anywire.engineio",
    "anywire.engineio.exceptions",
]


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _claim_public_names() -> None:
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in dir(module):  # __all__, and names re-exported "as" themselves
            obj = getattr(module, attr)
            owner = getattr(obj, "__module__", None)
            if isinstance(owner, str) and owner.startswith(name + "._"):
                with contextlib.suppress(AttributeError, TypeError):  # builtins, slots
                    obj.__module__ = name


_claim_public_names()

# --- intersphinx --------------------------------------------------------------------------
# CI builds offline (it reaches package registries only), so each inventory is a file in
# docs/_inventories/ (see the README there): Python's is the one Debian's python3.11-doc
# ships; the small anyio, trio and httpx ones list the objects these pages link to and are
# written by docs/_inventories/make_inventories.py.
INVENTORIES = DOCS / "_inventories"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(INVENTORIES / "python.inv")),
    "anyio": ("https://anyio.readthedocs.io/en/stable", str(INVENTORIES / "anyio.inv")),
    "trio": ("https://trio.readthedocs.io/en/stable", str(INVENTORIES / "trio.inv")),
    "httpx": ("https://www.python-httpx.org", str(INVENTORIES / "httpx.inv")),
}

# Third-party targets that no inventory has.
nitpick_ignore = [
    # The stdlib's abstract Callable is documented as collections.abc.Callable; autodoc
    # names the runtime alias class it finds in TCPHandler.
    ("py:class", "collections.abc._CallableGenericAlias"),
    # wsproto documents WSConnection, not the Connection class a WebSocket can drive.
    ("py:class", "wsproto.connection.Connection"),
]

# --- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"anywire {release}"
html_static_path = ["_static"]

LOG = logging.getLogger("anywire-docs")


def _public_bases(cls: type) -> list[type]:
    """``cls``'s bases, each private anywire base replaced by its own bases."""
    out: list[type] = []
    for base in cls.__bases__:
        if base.__module__.startswith("anywire") and _is_private(base.__module__):
            out.extend(b for b in _public_bases(base) if b not in out)
        elif base not in out:
            out.append(base)
    return out


def process_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """Show-inheritance lists public classes only (private mixins are flattened away)."""
    if isinstance(obj, type):
        bases[:] = _public_bases(obj) or [object]


def private_reference(app: Sphinx, env: Any, node: Any, contnode: nodes.Node) -> Any:
    """A private anywire name or a type variable in a signature renders as plain text.

    Signatures of public functions may name private helper types (the runner's bind
    addresses, the HTTP layer's limits) and type variables; neither has a page.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("anywire."):
        return None
    if _is_private(target):
        return contnode
    module_name, _, attr = target.rpartition(".")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    return contnode if isinstance(value, TypeVar) else None


def check_all_documented(app: Sphinx, env: Any) -> None:
    """Every name in a public module's ``__all__`` has an entry in the reference."""
    objects = env.get_domain("py").objects
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if f"{name}.{attr}" not in objects and canonical not in objects:
                LOG.warning("%s.%s is in __all__ but not in docs/reference/", name, attr)


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-bases", process_bases)
    app.connect("missing-reference", private_reference)
    app.connect("env-check-consistency", check_all_documented)
