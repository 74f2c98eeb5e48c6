"""Running ``message`` handlers the way python-engineio's ``async_handlers=True`` does,
without a task per message.

python-engineio starts a task for each message, so a handler that waits never holds
back the next message. :class:`HandlerRunner` keeps that promise with a few reusable
worker tasks: a worker runs the queued handlers one after the other, and before it
starts one while more are queued it makes sure another worker is *on call* (woken,
or started). If the handler waits, the worker on call runs next and takes the
following handler; if it does not, the running worker goes on with the queue and the
worker on call finds nothing to do. A burst of handlers that never wait (the usual
echo or broadcast handler) costs two wake-ups instead of one task each.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

__all__ = ["HandlerRunner"]

#: Workers kept parked after a burst; more than that end when they run out of work.
MAX_IDLE_WORKERS: Final = 32


class HandlerRunner:
    """Awaits handler coroutines concurrently in ``tg`` (see the module docstring)."""

    def __init__(self, tg: TaskGroup, logger: logging.Logger) -> None:
        self._tg = tg
        self._log = logger
        self._jobs: deque[Awaitable[Any]] = deque()
        self._idle: list[anyio.Event] = []  # the parked workers' wake-up events
        self._on_call = False  # a worker is woken or started and has not taken a job yet
        self.workers = 0

    def __repr__(self) -> str:
        return f"<HandlerRunner workers={self.workers} queued={len(self._jobs)}>"

    def submit(self, job: Awaitable[Any]) -> None:
        """Run ``job`` (a handler's coroutine) as soon as the current task waits."""
        self._jobs.append(job)
        if not self._on_call:
            self._call_worker()

    def _call_worker(self) -> None:
        self._on_call = True
        if self._idle:
            self._idle.pop().set()
        else:
            self.workers += 1
            self._tg.start_soon(self._worker)

    async def _worker(self) -> None:
        jobs = self._jobs
        try:
            while True:
                self._on_call = False
                while jobs:
                    job = jobs.popleft()
                    if jobs and not self._on_call:
                        self._call_worker()  # covers the rest should this one wait
                    try:
                        await job
                    except Exception:
                        self._log.exception("message handler error")
                if len(self._idle) >= MAX_IDLE_WORKERS:
                    return
                wake = anyio.Event()
                self._idle.append(wake)
                await wake.wait()
        finally:
            self.workers -= 1
            if not self.workers:  # cancelled (the server stops): drop what never ran
                while jobs:
                    _discard(jobs.popleft())


def _discard(job: Awaitable[Any]) -> None:
    close = getattr(job, "close", None)
    if close is not None:
        close()  # a coroutine that never ran: no "never awaited" warning
