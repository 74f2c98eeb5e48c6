"""The ASGI ``lifespan`` protocol: startup before serving, shutdown after.

The application's lifespan call runs in a task of the server's task group
from startup to shutdown, shielded from the server's cancellation (the
shutdown must still reach it) until :meth:`Lifespan.stop`. ``state`` is the
dict the application fills in startup; each request scope gets a shallow copy
of it.

Support is detected as uvicorn's ``lifespan="auto"`` does, with one
refinement: an application that raises *before* calling ``receive()`` does
not speak lifespan (logged at debug level, serving goes on); one that raises
after receiving ``lifespan.startup``, or answers ``lifespan.startup.failed``,
failed its startup: :class:`LifespanError` is raised and nothing is served.
``lifespan="on"`` makes every failure fatal, ``"off"`` skips the protocol.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup

from anywire.errors import AnywireError

from ._config import ASGIApp, LifespanMode, Message

__all__ = ["Lifespan", "LifespanError"]


class LifespanError(AnywireError):
    """The application's lifespan ``startup`` (or ``shutdown``) failed.

    ``phase`` is ``"startup"`` or ``"shutdown"``; the application's
    exception, if it raised one, is the ``__cause__``.
    """

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class Lifespan:
    """One application's lifespan, driven by the server (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, mode: LifespanMode, timeout: float | None, logger: logging.Logger
    ) -> None:
        self.state: dict[str, Any] = {}
        self.shutdown_failed = False
        self._app = app
        self._mode = mode
        self._timeout = timeout
        self._log = logger
        self._received = 0
        self._active = False
        self._ended = False
        self._error: Exception | None = None
        self._failure: str | None = None
        self._task_scope = anyio.CancelScope(shield=True)
        self._startup_done = anyio.Event()
        self._shutdown_asked = anyio.Event()
        self._shutdown_done = anyio.Event()

    async def startup(self, tg: TaskGroup) -> None:
        """Start the lifespan task in ``tg``; return once startup completed.

        :raises LifespanError: the startup failed or timed out
        """
        if self._mode == "off":
            return
        tg.start_soon(self._run)
        with anyio.move_on_after(self._timeout) as scope:
            await self._startup_done.wait()
        if scope.cancelled_caught:
            raise LifespanError(
                f"lifespan startup did not complete within {self._timeout} s", phase="startup"
            )
        self._check_startup()

    async def shutdown(self) -> None:
        """Ask the application to shut down; wait up to the timeout. Never raises."""
        if not self._active or self._ended:
            return
        self._shutdown_asked.set()
        with anyio.move_on_after(self._timeout) as scope:
            await self._shutdown_done.wait()
        if scope.cancelled_caught:
            self._shutdown_error(f"did not complete within {self._timeout} s")
        elif self._failure is not None:
            self._shutdown_error(f"failed: {self._failure}")
        elif self._error is not None:
            self._shutdown_error(f"raised {self._error!r}")

    def stop(self) -> None:
        """Cancel the lifespan task (after shutdown, or when startup failed)."""
        self._task_scope.cancel()

    def _check_startup(self) -> None:
        if self._failure is not None:
            self._log.error("Application startup failed: %s", self._failure)
            raise LifespanError(f"lifespan startup failed: {self._failure}", phase="startup")
        if not self._ended:
            self._active = True
            return
        if self._received == 0 and self._mode == "auto":
            self._log.debug("The application does not support ASGI lifespan (%r)", self._error)
            return
        self._log.error("Application startup failed", exc_info=self._error)
        message = "the application ended during lifespan startup"
        raise LifespanError(message, phase="startup") from self._error

    def _shutdown_error(self, what: str) -> None:
        self.shutdown_failed = True
        self._log.error("Application shutdown %s", what, exc_info=self._error)

    async def _run(self) -> None:
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            # Shielded: cancelling the server must not end the application's lifespan
            # before its shutdown ran; stop() ends it.
            with self._task_scope:
                await self._app(scope, self._receive, self._send)
        except Exception as exc:
            self._error = exc
            if self._active:
                self._log.error("The lifespan task of the application raised", exc_info=exc)
        finally:
            self._ended = True
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        self._received += 1
        if self._received == 1:
            return {"type": "lifespan.startup"}
        await self._shutdown_asked.wait()
        if self._received == 2:
            return {"type": "lifespan.shutdown"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failure = str(message.get("message", "")) or "(no message)"
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            self._startup_done.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in lifespan")
