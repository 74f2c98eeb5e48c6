"""Interop tests: anywire against real third-party peers (see docs/interop.md)."""
