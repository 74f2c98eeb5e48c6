"""Task ownership helpers shared by every connection and server in anywire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

__all__ = ["owned_task_group"]


@asynccontextmanager
async def owned_task_group() -> AsyncIterator[TaskGroup]:
    """A task group whose body's own exception is re-raised as is.

    anyio (on both backends) wraps an exception raised by the body of
    ``async with create_task_group()`` in an ``ExceptionGroup``. Our
    background tasks never raise (they record their failure and close the
    connection instead), so the only exception worth reporting is the body's:
    this helper cancels the group and re-raises that exception unwrapped.
    """
    body_exc: BaseException | None = None
    async with anyio.create_task_group() as tg:
        try:
            yield tg
        except BaseException as exc:
            body_exc = exc
            tg.cancel_scope.cancel()
    if body_exc is not None:
        raise body_exc
