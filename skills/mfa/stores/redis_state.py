"""Shared state on Redis, for several replicas behind a load balancer.

SignalWire may send each SWAIG request of one call to a different replica, so
everything a decision depends on must be shared: the sandbox's pending codes,
every rate-limit counter, the replay records and the circuit breaker. Each check-and-update is one
Lua script (atomic on the server), and every key expires on its own (the
event stream in ``agent/outcomes/redis_events.py`` is capped instead), so there is no
cleanup job and no unbounded growth.

When Redis cannot be reached the callers get a polite answer, never a guess:
pending codes and counters raise (the send or verify is refused, nothing is
verified); the breaker fails open (it is an optimisation, not a guard).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis

from skills.mfa.delivery.providers.base import CodeNotFound, ProviderUnavailable, VerifyOutcome
from skills.mfa.delivery.providers.breaker import BreakerSnapshot
from skills.mfa.delivery.providers.pending_codes import PendingCodes, hash_code
from skills.mfa.ledgers.redis_ledger import RedisCodeLedger
from skills.mfa.ledgers.replay import PENDING_PREFIX, RECORD_PREFIX, Found, ReplayClaim, found_in
from skills.mfa.limits.send_limits import CounterStoreUnavailable, Refusal, Rule
from skills.mfa.redis_client import REDIS_ERRORS

log = logging.getLogger("mfa.redis")


# -- sandbox pending codes --------------------------------------------------------------

# KEYS[1] the code's hash; ARGV: code hash of the attempt, now.
# Returns -1 when gone, else 1000 * verified + attempts left.
_CHECK_CODE = """
local k = KEYS[1]
local found = redis.call('HMGET', k, 'code_hash', 'expires_at', 'attempts_left')
if not found[1] then return -1 end
local left = tonumber(found[3])
if left <= 0 or tonumber(ARGV[2]) >= tonumber(found[2]) then
  redis.call('DEL', k)
  return -1
end
left = left - 1
if found[1] == ARGV[1] then
  redis.call('DEL', k)
  return 1000 + left
end
if left == 0 then redis.call('DEL', k) else redis.call('HSET', k, 'attempts_left', left) end
return left
"""


class RedisPendingCodes(PendingCodes):
    """The sandbox's pending codes in Redis hashes that expire with the code."""

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix
        self._check = redis.register_script(_CHECK_CODE)

    def _key(self, request_id: str) -> str:
        return f"{self._prefix}:code:{request_id}"

    async def insert(
        self,
        request_id: str,
        salt: bytes,
        code_hash: str,
        expires_at: float,
        max_attempts: int,
        now: float,
    ) -> None:
        key = self._key(request_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "salt": salt,
                        "code_hash": code_hash,
                        "expires_at": repr(expires_at),
                        "attempts_left": max_attempts,
                    },
                )
                pipe.pexpire(key, max(1, math.ceil((expires_at - now) * 1000)))
                await pipe.execute()
        except REDIS_ERRORS:
            raise ProviderUnavailable("redis", may_have_arrived=False) from None

    async def delete(self, request_id: str) -> None:
        try:
            await self._redis.delete(self._key(request_id))
        except REDIS_ERRORS:
            raise ProviderUnavailable("redis", may_have_arrived=False) from None

    async def check(self, request_id: str, code: str, now: float) -> VerifyOutcome:
        key = self._key(request_id)
        try:
            salt = await self._redis.hget(key, "salt")
            if salt is None:
                raise CodeNotFound("unknown, used, expired or out of attempts")
            result = int(await self._check(keys=[key], args=[hash_code(salt, code), repr(now)]))
        except REDIS_ERRORS:
            # Nothing was counted or verified for certain: the caller may try again.
            raise ProviderUnavailable("redis", may_have_arrived=True) from None
        if result < 0:
            raise CodeNotFound("unknown, used, expired or out of attempts")
        return VerifyOutcome(verified=result >= 1000, attempts_left=result % 1000)


# -- rate-limit counters and replay claims ------------------------------------------------

# KEYS: one sorted set per rule, then the replay claim's key when ARGV[3] is not ''.
# ARGV[1] now, ARGV[2] a unique member, ARGV[3] the claim's "p:<token>" or '', ARGV[4] its
# expiry in ms, then per rule limit, window, enforce. Returns {-1, value} when the claim's
# key is held (nothing recorded), {0, 0} when every rule allows (all recorded, claim taken),
# else {index of the refusing rule, seconds until it would allow}.
_ACQUIRE = """
local now, member, claim = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local n = #KEYS
if claim ~= '' then
  n = n - 1
  local held = redis.call('GET', KEYS[#KEYS])
  if held then return {-1, held} end
end
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local limit, window, enforce = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), ARGV[base + 3]
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if enforce == '1' and redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, tostring(tonumber(oldest[2]) + window - now)}
  end
end
for i = 1, n do
  local window = tonumber(ARGV[4 + (i - 1) * 3 + 2])
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000) + 1000)
end
if claim ~= '' then redis.call('SET', KEYS[#KEYS], claim, 'PX', ARGV[4]) end
return {0, '0'}
"""

# KEYS: the rules' sorted sets; ARGV[1] the member to take back. ZREM of a member that is
# gone is a no-op, so a refund never goes below zero and a second one changes nothing.
_REFUND = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0
"""


class RedisCounterStore:
    """``CounterStore`` on Redis: one sorted set of hit times per key, checked atomically."""

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._refund = redis.register_script(_REFUND)
        self.answers = RedisAnswerStore(redis, prefix=prefix)
        self.ledger = RedisCodeLedger(redis, prefix=prefix)

    async def acquire(
        self,
        rules: Sequence[Rule],
        now: float,
        *,
        member: str = "",
        claim: ReplayClaim | None = None,
    ) -> Refusal | Found | None:
        args: list[Any] = [repr(now), member or uuid.uuid4().hex, "", 0]
        keys = self._keys(rules)
        if claim is not None:
            args[2:4] = [PENDING_PREFIX + claim.token, _ms(claim.pending_seconds)]
            keys.append(f"{self._prefix}:{claim.key}")
        for rule in rules:
            args += [rule.limit, repr(rule.window), "1" if rule.enforce else "0"]
        try:
            index, value = await self._acquire(keys=keys, args=args)
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
        if int(index) == -1:
            return found_in(value)
        if int(index) == 0:
            return None
        return Refusal(rules[int(index) - 1].kind, retry_after=max(0.0, float(value)))

    async def refund(self, rules: Sequence[Rule], now: float, member: str) -> None:
        try:
            await self._refund(keys=self._keys(rules), args=[member])
        except REDIS_ERRORS:
            # The hits expire with their window: the caller waits longer, nothing breaks.
            log.warning("refund_unavailable")

    async def count(self, key: str, window: float, now: float) -> int:
        # Live hits are newer than now - window (older ones are what _ACQUIRE trims).
        full_key = f"{self._prefix}:limit:{key}"
        try:
            return int(await self._redis.zcount(full_key, f"({now - window!r}", "+inf"))
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None

    async def counts(self, queries: Sequence[tuple[str, float]], now: float) -> list[int]:
        # One pipeline, one round trip; read-only, like ``count`` (no transaction needed).
        pipe = self._redis.pipeline(transaction=False)
        for key, window in queries:
            pipe.zcount(f"{self._prefix}:limit:{key}", f"({now - window!r}", "+inf")
        try:
            return [int(found) for found in await pipe.execute()]
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None

    def _keys(self, rules: Sequence[Rule]) -> list[str]:
        return [f"{self._prefix}:limit:{rule.key}" for rule in rules]


# KEYS[1] the fingerprint; ARGV[1] "p:<token>", ARGV[2] its expiry in ms.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS[1] the fingerprint; ARGV[1] "r:<answer>", ARGV[2] its expiry in ms. Pending (or
# gone) to final only: a recorded answer is never replaced by another one.
_RECORD_ANSWER = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, 2) == 'r:' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Delete the claim only while it is still this request's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisAnswerStore:
    """``AnswerStore`` on Redis: claims and recorded answers that expire on their own.

    ``claim`` is one script (one round trip) on the request's path. ``record`` and
    ``release`` run in the background after the reply is decided, so they add no
    latency; a retry that arrives before the record is written finds the claim and
    waits for the record (``Replays.answer``, bounded).
    """

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._record = redis.register_script(_RECORD_ANSWER)
        self._tasks: set[asyncio.Task[None]] = set()

    async def claim(self, claim: ReplayClaim) -> Found | None:
        key = f"{self._prefix}:{claim.key}"
        args = [PENDING_PREFIX + claim.token, _ms(claim.pending_seconds)]
        try:
            return found_in(await self._claim(keys=[key], args=args))
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None

    async def peek(self, key: str) -> Found | None:
        try:
            return found_in(await self._redis.get(f"{self._prefix}:{key}"))
        except REDIS_ERRORS:
            return None

    def record(self, claim: ReplayClaim, record: str, ttl_seconds: float) -> None:
        key = f"{self._prefix}:{claim.key}"
        args = [RECORD_PREFIX + record, _ms(ttl_seconds)]
        self._background(self._record(keys=[key], args=args))

    def release(self, claim: ReplayClaim) -> None:
        key = f"{self._prefix}:{claim.key}"
        self._background(self._release(keys=[key], args=[PENDING_PREFIX + claim.token]))

    async def drain(self) -> None:
        """Wait for the background writes (tests and shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _background(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except REDIS_ERRORS:
                # The claim expires by itself; a retry meanwhile gets "not confirmed".
                log.warning("replay_record_unavailable")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


# -- circuit breaker state ----------------------------------------------------------------

_BEFORE_CALL = """
local k = KEYS[1]
local now, open_seconds = tonumber(ARGV[1]), tonumber(ARGV[2])
local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
if open_until == 0 then return 1 end
if now < open_until then return 0 end
local trial_until = tonumber(redis.call('HGET', k, 'trial_until') or '0')
if now < trial_until then return 0 end
redis.call('HSET', k, 'trial_until', now + open_seconds)
return 1
"""

_RECORD = """
local k = KEYS[1]
local ok, now = ARGV[1], tonumber(ARGV[2])
local threshold, open_seconds = tonumber(ARGV[3]), tonumber(ARGV[4])
if ok == '1' then redis.call('DEL', k) return 0 end
local failures = redis.call('HINCRBY', k, 'failures', 1)
local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
redis.call('HSET', k, 'trial_until', 0)
if failures >= threshold or open_until > 0 then
  redis.call('HSET', k, 'open_until', now + open_seconds)
end
redis.call('PEXPIRE', k, math.ceil(open_seconds * 1000) * 4 + 60000)
return failures
"""


class RedisBreakerState:
    """``BreakerState`` shared by replicas, so one outage opens the breaker everywhere."""

    def __init__(self, redis: Redis, *, key: str = "mfa:breaker") -> None:
        self._redis = redis
        self._key = key
        self._before = redis.register_script(_BEFORE_CALL)
        self._record = redis.register_script(_RECORD)

    async def before_call(self, now: float, open_seconds: float) -> bool:
        try:
            return bool(int(await self._before(keys=[self._key], args=[now, open_seconds])))
        except REDIS_ERRORS:
            return True  # fail open: the provider's own deadline still bounds the wait

    async def record(self, ok: bool, now: float, threshold: int, open_seconds: float) -> None:
        try:
            await self._record(
                keys=[self._key], args=["1" if ok else "0", now, threshold, open_seconds]
            )
        except REDIS_ERRORS:
            log.warning("breaker_state_unavailable")

    async def snapshot(self) -> BreakerSnapshot:
        try:
            raw = await self._redis.hgetall(self._key)
        except REDIS_ERRORS:
            return BreakerSnapshot()
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return BreakerSnapshot(
            failures=int(fields.get("failures", 0)),
            open_until=float(fields.get("open_until", 0)),
            trial_in_flight=float(fields.get("trial_until", 0)) > 0,
        )


class RedisLineTypeCache:
    """``LineTypeCache`` on Redis: one key per number's hash (``line_type.cache_key``),
    expiring on its own after the configured days."""

    _PREFIX = "mfa:linetype:"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._PREFIX + key)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        await self._redis.set(self._PREFIX + key, value.encode(), px=_ms(ttl_seconds))
