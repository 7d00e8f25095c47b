"""End the live streams on SIGINT/SIGTERM, before uvicorn's own handler runs.

An open stream would hold uvicorn's graceful shutdown forever (it waits for every
response to finish). uvicorn installs its handler before the lifespan starts, and
only in the main thread, so ``start`` chains ours in front of it then; a server in
another thread (tests) stops once its clients have gone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

SignalHandler = Callable[[int, Any], Any]


class CloseOnExitSignals:
    """Lifecycle hooks: ``start`` chains ``close`` in front of the exit-signal handlers,
    ``stop`` runs ``close`` and puts the previous handlers back."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close
        self._restore: dict[int, SignalHandler] = {}

    async def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if callable(previous):
                self._restore[sig] = previous
                signal.signal(sig, self._closing_then(previous))

    async def stop(self) -> None:
        self._close()
        for sig, previous in self._restore.items():
            with suppress(ValueError):
                signal.signal(sig, previous)

    def _closing_then(self, previous: SignalHandler) -> SignalHandler:
        def handler(signum: int, frame: Any) -> Any:
            self._close()
            return previous(signum, frame)

        return handler
