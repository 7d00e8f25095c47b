"""The code ledger (``code_ledger.py``) on Redis, shared by every replica.

One hash per code (``checks``, ``settled``, ``final``) and one string per call
(the digest of its newest code), each changed by one Lua script so that two
replicas never both take the last check or both record a final answer. Keys
expire on their own, longer than any code lives.
"""

from __future__ import annotations

import math

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from skills.mfa.ledgers.code_ledger import (
    Busy,
    Check,
    Finished,
    Gate,
    LedgerUnavailable,
    Spent,
    Superseded,
    call_key,
    code_key,
)

# The errors ``redis_state.REDIS_ERRORS`` names (that module builds on this one).
REDIS_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)

# KEYS[1] the code's hash, KEYS[2] the call's newest code; ARGV[1] this code's digest,
# ARGV[2] max checks, ARGV[3] expiry in ms. Returns {word, value}.
_BEGIN = """
local latest = redis.call('GET', KEYS[2])
if latest and latest ~= ARGV[1] then return {'superseded', ''} end
local f = redis.call('HMGET', KEYS[1], 'checks', 'settled', 'final')
if f[3] then return {'finished', f[3]} end
local checks, settled = tonumber(f[1] or '0'), tonumber(f[2] or '0')
if checks >= tonumber(ARGV[2]) then
  if settled >= checks then return {'spent', ''} end
  return {'busy', ''}
end
redis.call('HSET', KEYS[1], 'checks', checks + 1)
if checks == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {'check', tostring(checks + 1)}
"""

# KEYS[1] the code's hash; ARGV[1] 'refund' | 'settle' | 'none', ARGV[2] the final answer
# or '', ARGV[3] expiry in ms. The final is set only while none is (compare-and-set).
# Returns the code's final answer after this step, or false.
_SETTLE = """
local k = KEYS[1]
local fresh = redis.call('EXISTS', k) == 0
if ARGV[1] == 'refund' then
  if tonumber(redis.call('HGET', k, 'checks') or '0') > 0 then
    redis.call('HINCRBY', k, 'checks', -1)
  end
elseif ARGV[1] == 'settle' then
  redis.call('HINCRBY', k, 'settled', 1)
end
local final = redis.call('HGET', k, 'final')
if not final and ARGV[2] ~= '' then
  redis.call('HSET', k, 'final', ARGV[2])
  final = ARGV[2]
end
if fresh and redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ARGV[3]) end
return final or false
"""


class RedisCodeLedger:
    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix
        self._begin = redis.register_script(_BEGIN)
        self._settle = redis.register_script(_SETTLE)

    def _code(self, call_id: str, request_id: str) -> str:
        return f"{self._prefix}:code-ledger:{code_key(call_id, request_id)}"

    def _latest(self, call_id: str) -> str:
        return f"{self._prefix}:latest-code:{call_key(call_id)}"

    async def sent(self, call_id: str, request_id: str, ttl_seconds: float) -> None:
        try:
            await self._redis.set(
                self._latest(call_id), code_key(call_id, request_id), px=_ms(ttl_seconds)
            )
        except REDIS_ERRORS:
            raise LedgerUnavailable("redis") from None

    async def begin(
        self, call_id: str, request_id: str, max_checks: int, ttl_seconds: float
    ) -> Gate:
        keys = [self._code(call_id, request_id), self._latest(call_id)]
        args = [code_key(call_id, request_id), max_checks, _ms(ttl_seconds)]
        try:
            word, value = await self._begin(keys=keys, args=args)
        except REDIS_ERRORS:
            raise LedgerUnavailable("redis") from None
        word = word.decode() if isinstance(word, bytes) else str(word)
        if word == "check":
            return Check(int(value))
        if word == "finished":
            return Finished(value.decode() if isinstance(value, bytes) else str(value))
        if word == "superseded":
            return Superseded()
        return Spent() if word == "spent" else Busy()

    async def settle(
        self,
        call_id: str,
        request_id: str,
        *,
        final: str | None,
        checked: bool,
        counted: bool = True,
        ttl_seconds: float,
    ) -> str | None:
        mode = "none" if not checked else ("settle" if counted else "refund")
        args = [mode, final or "", _ms(ttl_seconds)]
        try:
            value = await self._settle(keys=[self._code(call_id, request_id)], args=args)
        except REDIS_ERRORS:
            raise LedgerUnavailable("redis") from None
        if not value:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
