"""The durable outbox: every final outcome written down before the caller hears it.

``Outbox`` is the agent's ``OutcomeRecorder`` (``skills/mfa/recorder.py``): the tool
awaits ``record`` for each final outcome (verified, exhausted, expired), which writes
it to the store (a SQLite file, or Redis with replicas) and wakes the deliverer when a
receiver is configured. The same store is the history (``/outcomes``): entries are
kept ``retention_seconds`` after the outcome, purged once at start and then hourly.
Only final outcomes reach it, so the store costs nothing on other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from agent.outcomes.entries import HistoryQuery, OutboxEntry, entry_of
from agent.outcomes.outbox_store import OutboxStore
from skills.mfa.events import FINAL_OUTCOMES, MfaEvent

log = logging.getLogger("mfa.outbox")

PURGE_EVERY_SECONDS = 3600.0


class Outbox:
    def __init__(
        self,
        store: OutboxStore,
        *,
        deliver: bool,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] | None = None,
        provider: str | None = None,
    ) -> None:
        """``deliver``: a receiver is configured (entries start ``pending``); ``wake``
        tells the deliverer a new outcome waits; ``clock`` (unix seconds) decides what the
        retention drops; ``provider`` is written into every outcome (``sandbox`` or
        ``signalwire``)."""
        self._provider = provider
        self.store = store
        self._deliver = deliver
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._wake = wake or (lambda: None)
        self._purger: asyncio.Task[None] | None = None

    async def record(self, event: MfaEvent) -> None:
        """Write a final outcome; raises when the store could not (the tool logs it)."""
        if event.outcome not in FINAL_OUTCOMES:
            return
        await self.store.add(entry_of(event, deliver=self._deliver, provider=self._provider))
        self._wake()

    async def history(self, query: HistoryQuery) -> list[OutboxEntry]:
        """Outcomes within the retention that match ``query``, newest first."""
        oldest = self._clock() - self.retention_seconds
        since = oldest if query.since is None else max(query.since, oldest)
        return await self.store.history(
            HistoryQuery(call_id=query.call_id, last4=query.last4, since=since, limit=query.limit)
        )

    async def oldest_pending_age(self) -> float:
        """Seconds the oldest undelivered outcome has waited; 0 when none waits."""
        oldest = await self.store.oldest_pending_at()
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    async def purge_expired(self) -> int:
        """Drop what is older than the retention; how many went."""
        return await self.store.purge(self._clock() - self.retention_seconds)

    async def start(self) -> None:
        self._purger = asyncio.create_task(self._purge_forever(), name="mfa-outbox-purge")

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        await self.store.aclose()

    async def _purge_forever(self) -> None:
        while True:
            try:
                purged = await self.purge_expired()
                if purged:
                    log.info("outcomes_purged", extra={"count": purged})
            except Exception as exc:
                log.warning("outcomes_purge_failed", extra={"exc_type": type(exc).__name__})
            await asyncio.sleep(PURGE_EVERY_SECONDS)
