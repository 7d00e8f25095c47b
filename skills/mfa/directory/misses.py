"""Per-call count of account numbers that got the neutral answer (unknown or refused).

After ``unknown_accounts_per_call`` of them a call can look up no more accounts, even a
valid one: the directory must not become an oracle that a caller probes one account
number after another. The count lives where the other counters live (Redis when
replicas share the calls), so moving between replicas does not reset it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from skills.mfa.limits import CounterStoreUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_SECONDS = 86400.0  # longer than any call


class MissCounter(Protocol):
    async def misses(self, call_id: str) -> int:
        """How many neutral answers this call has had; raises ``CounterStoreUnavailable``."""
        ...

    async def add_miss(self, call_id: str) -> int:
        """Count one more and return the new count; raises ``CounterStoreUnavailable``."""
        ...


class InProcessMissCounter:
    """For one process; entries expire after ``WINDOW_SECONDS`` and are swept on write."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._clock = clock

    async def misses(self, call_id: str) -> int:
        count, expires = self._counts.get(call_id, (0, 0.0))
        return count if expires > self._clock() else 0

    async def add_miss(self, call_id: str) -> int:
        now = self._clock()
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        count = await self.misses(call_id) + 1
        self._counts[call_id] = (count, now + WINDOW_SECONDS)
        return count


class RedisMissCounter:
    """Shared by the replicas: one ``INCR`` per miss, on a key that expires on its own."""

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, call_id: str) -> str:
        return f"{self._prefix}:dir:miss:{call_id}"

    async def misses(self, call_id: str) -> int:
        from skills.mfa.redis_state import REDIS_ERRORS

        try:
            value = await self._redis.get(self._key(call_id))
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
        return int(value or 0)

    async def add_miss(self, call_id: str) -> int:
        from skills.mfa.redis_state import REDIS_ERRORS

        key = self._key(call_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, int(WINDOW_SECONDS))
                count, _ = await pipe.execute()
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
        return int(count)
