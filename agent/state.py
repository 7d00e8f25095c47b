"""Where the agent's shared state lives: in this process, or in Redis for replicas.

``REDIS_URL`` (or Redis Sentinel) unset: the sandbox's pending codes and the outcomes'
outbox in SQLite files, counters (the account directory's per-call misses too) and
breaker states in memory, the live stream in this process. Set: all of them in Redis, so
any replica can answer any request of a call. A ``StateBackend`` offers each piece plus its own
start/stop hooks and readiness check; ``build_agent`` decides where each goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from skills.mfa.delivery.line_type import InProcessLineTypeCache, LineTypeCache
from skills.mfa.delivery.providers.breaker import BreakerState, InProcessBreakerState
from skills.mfa.delivery.providers.pending_codes import PendingCodes, SqlitePendingCodes
from skills.mfa.flow.directory.misses import InProcessMissCounter, MissCounter
from skills.mfa.limits.pumping import Destinations, InProcessDestinations
from skills.mfa.limits.send_limits import CounterStore, InProcessCounterStore

if TYPE_CHECKING:
    from agent.outcomes.outbox_store import OutboxStore
    from agent.outcomes.redis_events import RedisEventRelay, Show
    from skills.mfa.redis_client import RedisTarget


class StateBackend:
    """In-process state: the default for one process."""

    name = "in-process"

    def __init__(self, sandbox_db_path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """``clock`` is the one clock of every in-process store (counters, replay records,
        code ledger, account misses), on the scale of ``time.time`` like the limiter's."""
        self._sandbox_db_path = sandbox_db_path
        self.counters: CounterStore = InProcessCounterStore(clock=clock)
        self.breaker_state: BreakerState = InProcessBreakerState()
        self.directory_breaker_state: BreakerState = InProcessBreakerState()
        self.account_misses: MissCounter = InProcessMissCounter(clock=clock)
        self.pumping_destinations: Destinations = InProcessDestinations()

    def pending_codes(self) -> PendingCodes:
        """Called only for the sandbox provider, so SignalWire mode creates no file."""
        return SqlitePendingCodes(self._sandbox_db_path)

    def event_relay(self, show: Show) -> RedisEventRelay | None:
        """Nothing to share: the live stream shows this process's events."""
        return None

    def line_type_cache(self) -> LineTypeCache:
        """Line types looked up (``channels``), kept in this process."""
        return InProcessLineTypeCache()

    def outbox_store(
        self, path: Path, *, consumer: str, retention_seconds: float, claim_idle_seconds: float
    ) -> OutboxStore:
        """The outbox and history of final outcomes: a SQLite file at ``path``."""
        from agent.outcomes.outbox_store import SqliteOutbox

        return SqliteOutbox(path)

    async def ready(self) -> bool:
        return True

    async def start(self) -> None:
        """Nothing to start."""

    async def aclose(self) -> None:
        """Nothing to close."""


class RedisStateBackend(StateBackend):
    """Everything shared through one Redis, with keys that expire on their own.

    ``target`` is ``REDIS_URL`` or a ``SentinelTarget``. With Sentinel there is a replica
    to promote, so each final outcome also waits (briefly) until a replica has it: the
    write a failover could otherwise lose is the one a business acts on."""

    name = "redis"

    def __init__(self, target: RedisTarget) -> None:
        from skills.mfa.flow.directory.misses import RedisMissCounter
        from skills.mfa.limits.pumping import RedisDestinations
        from skills.mfa.redis_client import SentinelTarget, connect
        from skills.mfa.stores.redis_state import RedisBreakerState, RedisCounterStore

        self._redis = connect(target)
        self._replicas_to_wait = 1 if isinstance(target, SentinelTarget) else 0
        self.counters = RedisCounterStore(self._redis)
        self.breaker_state = RedisBreakerState(self._redis)
        self.directory_breaker_state = RedisBreakerState(self._redis, key="mfa:breaker:directory")
        self.account_misses = RedisMissCounter(self._redis)
        self.pumping_destinations = RedisDestinations(self._redis)

    def pending_codes(self) -> PendingCodes:
        from skills.mfa.stores.redis_state import RedisPendingCodes

        return RedisPendingCodes(self._redis)

    def line_type_cache(self) -> LineTypeCache:
        """Line types looked up (``channels``), shared by the replicas: one lookup per number."""
        from skills.mfa.stores.redis_state import RedisLineTypeCache

        return RedisLineTypeCache(self._redis)

    def event_relay(self, show: Show) -> RedisEventRelay:
        """One event stream for all replicas over this Redis; ``show`` puts an event on
        this process's stream. Stop the relay before this backend closes the connection."""
        from agent.outcomes.redis_events import RedisEventRelay

        return RedisEventRelay(self._redis, show=show)

    def outbox_store(
        self, path: Path, *, consumer: str, retention_seconds: float, claim_idle_seconds: float
    ) -> OutboxStore:
        """A Redis Stream every replica delivers from; ``path`` is not used."""
        from agent.outcomes.redis_outbox import RedisOutbox

        return RedisOutbox(
            self._redis,
            consumer=consumer,
            retention_seconds=retention_seconds,
            claim_idle_seconds=claim_idle_seconds,
            replicas_to_wait=self._replicas_to_wait,
        )

    async def ready(self) -> bool:
        """Redis answers."""
        from skills.mfa.redis_client import ping

        return await ping(self._redis)

    async def aclose(self) -> None:
        # Replay records still being written must land: a platform retry after a rolling
        # deploy would otherwise reach the provider again.
        await self.counters.answers.drain()
        await self._redis.aclose()


def state_backend(redis: RedisTarget | None, sandbox_db_path: Path) -> StateBackend:
    """``redis``: ``Settings.redis_target`` (a URL, Sentinel's primary, or ``None``)."""
    return RedisStateBackend(redis) if redis else StateBackend(sandbox_db_path)
