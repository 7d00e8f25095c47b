"""Outbox delivery: pending outcomes POSTed by a few workers, retried until they land or
their time runs out.

A dispatcher asks the store for pending outcomes whose next attempt is due (woken by a
new outcome, else every ``poll_seconds``) and hands them to ``workers`` tasks through a
queue of the workers' size: when every worker is busy the dispatcher waits, and the
outcomes wait in the store, never in memory, so none is dropped for lack of room.

A failed attempt that may succeed later (connection error, timeout, 5xx, 408, 429) is
retried after ``base * 2**(attempt-1)`` seconds (at most ``max_interval``), with
jitter (between half and all of it, so a receiver coming back is not hit by every
replica at once), until ``retry_seconds`` after the outcome; then it is ``dead``. A
refusal (another 4xx) is dead at once: the same signed body will be refused again.

Each attempt's result is written to the store before the next is planned, so a process
killed at any point resumes from the store: an attempt under way when it died is made
again (at least once; the receiver deduplicates on ``X-MFA-Delivery``).

A store that cannot be read (Redis down) is tried again every second, but said at most
once a minute (``outbox_unavailable``, then with ``suppressed``: the polls held back),
and once when it answers again (``outbox_back`` with ``failures``), as ``/ready``'s
watcher says ``dependency_down`` and ``dependency_back``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from agent.outcomes.entries import DeliveryState, OutboxEntry
from agent.outcomes.outbox_store import OutboxStore
from agent.outcomes.webhook import AttemptResult, WebhookSender
from skills.mfa.log_throttle import OutageLog

log = logging.getLogger("mfa.outcome_webhook")

DEFAULT_WORKERS = 4
DEFAULT_POLL_SECONDS = 0.5
_STORE_TROUBLE_PAUSE = 1.0
#: ``outbox_unavailable`` at most this often while the store stays down (with a count).
STORE_TROUBLE_LOG_SECONDS = 60.0

#: ``on_result(result)``: "delivered", "retry" or "dead", for the metrics.
ResultListener = Callable[[str], None]


class Deliverer:
    """Offers ``wake`` (a new outcome is in the store) and ``start``/``stop`` hooks."""

    def __init__(
        self,
        store: OutboxStore,
        sender: WebhookSender,
        *,
        workers: int = DEFAULT_WORKERS,
        retry_seconds: float = 24 * 3600.0,
        base_seconds: float = 2.0,
        max_interval_seconds: float = 900.0,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        on_result: ResultListener | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self.workers = workers
        self.retry_seconds = retry_seconds
        self.base_seconds = base_seconds
        self.max_interval_seconds = max_interval_seconds
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._jitter = jitter
        self._on_result = on_result or (lambda result: None)
        self._busy: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._store_log = OutageLog(
            log, "outbox_unavailable", "outbox_back", interval=STORE_TROUBLE_LOG_SECONDS
        )

    def __repr__(self) -> str:
        return f"Deliverer(host={self._sender.host!r}, workers={self.workers})"

    def wake(self) -> None:
        """A new outcome is in the store (called on the server's loop)."""
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        self._wake = asyncio.Event()
        queue: asyncio.Queue[OutboxEntry] = asyncio.Queue(maxsize=self.workers)
        self._tasks = [asyncio.create_task(self._dispatch(queue), name="mfa-outbox-dispatch")]
        self._tasks += [
            asyncio.create_task(self._work(queue), name=f"mfa-outbox-worker-{n}")
            for n in range(self.workers)
        ]

    async def stop(self) -> None:
        """Attempts under way are abandoned: their outcomes are still pending in the store."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._busy.clear()

    # -- the dispatcher and the workers ----------------------------------------------------

    async def _dispatch(self, queue: asyncio.Queue[OutboxEntry]) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                due = await self._store.due(self._clock(), self.workers, self._busy)
            except Exception as exc:  # the store is down: try again shortly
                self._store_log.failed(exc_type=type(exc).__name__)
                await asyncio.sleep(_STORE_TROUBLE_PAUSE)
                continue
            self._store_log.succeeded()
            for entry in due:
                self._busy.add(entry.id)
                await queue.put(entry)  # waits while every worker is busy
            if not due:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()

    async def _work(self, queue: asyncio.Queue[OutboxEntry]) -> None:
        while True:
            entry = await queue.get()
            try:
                await self._deliver(entry)
            except Exception as exc:  # keep the worker alive; the entry stays pending
                log.error("outbox_delivery_failed", extra={"exc_type": type(exc).__name__})
                await asyncio.sleep(_STORE_TROUBLE_PAUSE)
            finally:
                self._busy.discard(entry.id)
                if self._wake is not None:
                    self._wake.set()  # a worker is free

    async def _deliver(self, entry: OutboxEntry) -> None:
        attempts = entry.attempts + 1
        attempt = await self._sender.attempt(entry.id, entry.body)
        now = self._clock()
        extra = {"host": self._sender.host, "outcome": entry.outcome, "attempts": attempts}
        if attempt.result is AttemptResult.DELIVERED:
            await self._store.settle(entry.id, DeliveryState.DELIVERED, attempts, now)
            self._on_result("delivered")
            log.info("outcome_webhook_delivered", extra=extra)
            return
        retry_at = now + self.pause(attempts)
        if attempt.result is AttemptResult.RETRY and retry_at <= entry.at + self.retry_seconds:
            await self._store.settle(entry.id, DeliveryState.PENDING, attempts, retry_at)
            self._on_result("retry")
            log.info("outcome_webhook_retry", extra={**extra, "reason": attempt.reason})
            return
        await self._store.settle(entry.id, DeliveryState.DEAD, attempts, now)
        self._on_result("dead")
        log.warning("outcome_webhook_dead", extra={**extra, "reason": attempt.reason})

    def pause(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` tries: exponential, jittered."""
        ceiling = min(self.max_interval_seconds, self.base_seconds * 2 ** (attempts - 1))
        return ceiling * (0.5 + 0.5 * self._jitter())
