"""The public surface: every public module declares a sound ``__all__``.

Public modules are ``anywire`` and every module or package below it whose dotted
name has no part starting with ``_``. New modules are picked up by themselves.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from types import ModuleType

import pytest

import anywire
import anywire.errors


def _ignore(name: str) -> None:
    """walk_packages calls this for a package it cannot import; test_module_all reports it."""


def public_module_names() -> list[str]:
    names = ["anywire"]
    for info in pkgutil.walk_packages(anywire.__path__, "anywire.", onerror=_ignore):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = public_module_names()


HAVE_TRIO = importlib.util.find_spec("trio") is not None


def import_public(name: str) -> ModuleType:
    """Import ``name``; skip it only when trio (an optional extra) is absent and needed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or ""
        needs_trio = missing == "trio" or missing.startswith("trio.") or "trio" in str(exc)
        if needs_trio and not HAVE_TRIO:
            pytest.skip(f"{name} needs trio: {exc}")
        raise


def test_walk_finds_modules() -> None:
    assert "anywire" in PUBLIC_MODULES
    assert "anywire.errors" in PUBLIC_MODULES


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_module_all(name: str) -> None:
    module = import_public(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    exported = module.__all__
    assert isinstance(exported, (list, tuple)), f"{name}.__all__ is a {type(exported).__name__}"
    assert all(isinstance(item, str) for item in exported), f"{name}.__all__ holds a non-str"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names undefined attributes: {missing}"
    duplicates = sorted({item for item in exported if exported.count(item) > 1})
    assert not duplicates, f"{name}.__all__ lists names twice: {duplicates}"


def test_errors_derive_from_anywire_error() -> None:
    errors = anywire.errors
    root = errors.AnywireError
    defined = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    ]
    exported = [getattr(errors, item) for item in errors.__all__]
    strays = [
        getattr(cls, "__name__", repr(cls))
        for cls in [*defined, *exported]
        if not (isinstance(cls, type) and issubclass(cls, root))
    ]
    assert not strays, f"anywire.errors classes not derived from AnywireError: {strays}"
