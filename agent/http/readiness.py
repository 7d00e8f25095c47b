"""``/ready`` with names: which dependency is down, said in the answer and in the log.

Each check is registered with a name (``redis``, ``event_relay``, ...). ``Readiness``
runs them all for ``/ready`` and answers ``{"ready": false, "checks": {"redis": "down",
...}}``. A watcher polls the same checks in the background while the server runs, so the
log says when a dependency goes down and when it is back even if nobody polls ``/ready``
(before, each call logged ``limits_unavailable`` and nothing said when Redis returned).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

log = logging.getLogger("mfa.readiness")

Check = Callable[[], Awaitable[bool]]
UP, DOWN = "ok", "down"
DEFAULT_WATCH_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 2.0
# A part that connects in the background (the event relay's reader) is down for a moment
# after start: not worth a log line unless it stays so.
START_GRACE_SECONDS = 3.0


class Readiness:
    """Named checks, their last known state, and a watcher that logs each change."""

    def __init__(self, *, watch_seconds: float = DEFAULT_WATCH_SECONDS) -> None:
        self._checks: dict[str, Check] = {}
        self._last: dict[str, str] = {}
        self._watch_seconds = watch_seconds
        self._watcher: asyncio.Task[None] | None = None
        self._grace_until = 0.0

    def add(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    async def checks(self) -> dict[str, str]:
        """Every check's state now (``ok`` or ``down``); a check that fails or hangs is down."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        states = {name: UP if ok else DOWN for name, ok in zip(names, results, strict=True)}
        for name, state in states.items():
            self._note(name, state)
        return states

    async def start(self) -> None:
        self._grace_until = time.monotonic() + START_GRACE_SECONDS
        self._watcher = asyncio.create_task(self._watch(), name="mfa-readiness-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        while True:
            await self.checks()
            await asyncio.sleep(self._watch_seconds)

    @staticmethod
    async def _run(check: Check) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return bool(await check())
        except Exception:  # a dependency that raises is down, and says nothing more here
            return False

    def _note(self, name: str, state: str) -> None:
        before = self._last.get(name)
        if before is None and state == DOWN and time.monotonic() < self._grace_until:
            return  # still starting
        self._last[name] = state
        if before == state or (before is None and state == UP):
            return
        if state == DOWN:
            log.warning("dependency_down", extra={"dependency": name})
        else:
            log.warning("dependency_back", extra={"dependency": name})
