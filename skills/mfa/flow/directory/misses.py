"""Per-call budget of account lookups that ended in the neutral answer (unknown or refused).

After ``unknown_accounts_per_call`` of them a call can look up no more accounts, even a
valid one: the directory must not become an oracle that a caller probes one account
number after another. The count lives where the other counters live (Redis when
replicas share the calls), so moving between replicas does not reset it.

A lookup takes its place in the budget BEFORE it asks the directory, in one atomic step
(``take``: check and count together; a Lua script on Redis, a lock here), and gives it
back only when it ended with a code sent (``give_back``). Counting after the answer, as
a read then a write, let 50 parallel requests of one call all read "0 so far" and make
16 lookups against a limit of 3.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from skills.mfa.limits.send_limits import CounterStoreUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_SECONDS = 86400.0  # longer than any call


class MissCounter(Protocol):
    async def take(self, call_id: str, limit: int) -> bool:
        """Count one lookup for this call when fewer than ``limit`` are counted, in one
        atomic step; False when the call is locked. Raises ``CounterStoreUnavailable``."""
        ...

    async def give_back(self, call_id: str) -> None:
        """Uncount a lookup that ended with a code sent (it was no miss). Raises
        ``CounterStoreUnavailable``."""
        ...


class InProcessMissCounter:
    """For one process; entries expire after ``WINDOW_SECONDS`` and are swept on write.

    A thread lock, not an asyncio one: no await happens inside, and the SDK may run
    handlers on worker threads."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def _count(self, call_id: str, now: float) -> int:
        count, expires = self._counts.get(call_id, (0, 0.0))
        return count if expires > now else 0

    async def take(self, call_id: str, limit: int) -> bool:
        with self._lock:
            now = self._clock()
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count = self._count(call_id, now)
            if count >= limit:
                return False
            self._counts[call_id] = (count + 1, now + WINDOW_SECONDS)
            return True

    async def give_back(self, call_id: str) -> None:
        with self._lock:
            now = self._clock()
            count = self._count(call_id, now)
            if count > 0:
                self._counts[call_id] = (count - 1, now + WINDOW_SECONDS)


# KEYS[1] the call's count; ARGV[1] the limit, ARGV[2] the key's life in seconds.
# Returns 1 when counted, 0 when the call is locked.
_TAKE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Never below zero, whatever the order of a give-back and an expiry.
_GIVE_BACK = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisMissCounter:
    """Shared by the replicas: one script per step, on a key that expires on its own."""

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def _key(self, call_id: str) -> str:
        return f"{self._prefix}:dir:miss:{call_id}"

    async def take(self, call_id: str, limit: int) -> bool:
        from skills.mfa.redis_client import REDIS_ERRORS

        try:
            taken = await self._take(keys=[self._key(call_id)], args=[limit, int(WINDOW_SECONDS)])
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
        return bool(int(taken))

    async def give_back(self, call_id: str) -> None:
        from skills.mfa.redis_client import REDIS_ERRORS

        try:
            await self._give_back(keys=[self._key(call_id)], args=[])
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
