"""The outbox shared by replicas: a Redis Stream read through a consumer group.

Each outcome is a hash (``mfa:outcome:<id>``: the history row, the webhook body, the
delivery state), indexed for the history by time, by call and by last four digits
(sorted sets), and announced on the stream ``mfa:outbox``. Every replica reads the
stream in the group ``mfa-deliverers`` under its own consumer name, so each outcome is
handed to one replica; it stays in that consumer's pending list until delivered or
dead (then ``XACK`` and ``XDEL``: the stream holds only what is still to deliver).

A replica that dies holds its entries in the pending list: every replica runs
``XAUTOCLAIM`` for entries idle longer than ``claim_idle_seconds`` and takes them
over. A live replica keeps its own entries fresh (``XCLAIM ... JUSTID`` to itself
every third of that time) while it waits to retry them, so only a dead one's entries
move. Redis docs: https://redis.io/docs/latest/develop/data-types/streams/ (consumer
groups, "Recovering from permanent failures").

The hashes and indexes also expire on their own one day after the retention, in case
no replica is running to purge them.

Writing an outcome is one script (atomic, like the ``MULTI`` it replaced). With
``replicas_to_wait`` (Redis Sentinel: there is a replica to promote) the same round trip
ends with ``WAIT``, which returns once that many replicas have every write up to this
outcome, or after ``wait_ms``: replication is asynchronous, and a primary that dies
before sending a write on loses it in the failover. ``WAIT`` narrows that window for the
one write a business acts on; it never refuses the outcome (a primary left without its
replica still records it, logging ``outcome_not_replicated``).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Collection
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agent.outcomes.entries import MAX_LIMIT, DeliveryState, HistoryQuery, OutboxEntry

STREAM = "mfa:outbox"
GROUP = "mfa-deliverers"
_HASH = "mfa:outcome:"
_BY_AT = "mfa:outcomes:at"
_BY_CALL = "mfa:outcomes:call:"
_BY_LAST4 = "mfa:outcomes:last4:"
_DAY = 86400
#: How long a final outcome waits for a replica to have it (Sentinel only): on loopback a
#: replica answers in about 0.1 ms; without one the write costs this much more.
WAIT_MS = 100

log = logging.getLogger("mfa.outbox")

# KEYS: the outcome's hash, the time index, the stream, then the call's and last four's
# indexes. ARGV: expiry seconds, the outcome id, its time, "1" to announce it on the
# stream (pending delivery), then the hash's fields and values.
_ADD = """
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
if ARGV[4] == '1' then redis.call('XADD', KEYS[3], '*', 'id', ARGV[2]) end
return 0
"""


class RedisOutbox:
    name = "redis"

    def __init__(
        self,
        redis: Redis,
        *,
        consumer: str,
        retention_seconds: float,
        claim_idle_seconds: float = 60.0,
        replicas_to_wait: int = 0,
        wait_ms: int = WAIT_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` only paces the claims (monotonic); outcome times come from callers.
        ``replicas_to_wait``: how many replicas each new outcome waits for (``WAIT``)."""
        self._redis = redis
        self._add = redis.register_script(_ADD)
        self._replicas_to_wait = replicas_to_wait
        self._wait_ms = wait_ms
        self.consumer = f"{consumer}-{secrets.token_hex(4)}"
        self._expire = int(retention_seconds) + _DAY
        self._claim_idle_ms = int(claim_idle_seconds * 1000)
        self._clock = clock
        self._held: dict[str, bytes] = {}  # outcome id -> its stream entry id, held here
        self._group_ready = False
        self._last_claim = float("-inf")
        self._last_refresh = float("-inf")

    # -- writing ---------------------------------------------------------------------------

    async def add(self, entry: OutboxEntry) -> None:
        keys = [_HASH + entry.id, _BY_AT, STREAM, *_indexes(entry.call_id, entry.last4)]
        pending = "1" if entry.state is DeliveryState.PENDING else "0"
        args: list[Any] = [self._expire, entry.id, repr(entry.at), pending]
        for field, value in _fields(entry).items():
            args += [field, value]
        # One pipeline, so WAIT runs on the connection that wrote (it waits for that
        # connection's writes) in the same round trip; redis-py checks SCRIPT EXISTS
        # first (and loads the script on a new primary, which has none).
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._add(keys=keys, args=args, client=pipe)  # queued, not sent yet
            if self._replicas_to_wait:
                pipe.wait(self._replicas_to_wait, self._wait_ms)
            answers = await pipe.execute()
        if self._replicas_to_wait and int(answers[-1]) < self._replicas_to_wait:
            log.warning(
                "outcome_not_replicated",
                extra={"replicas": int(answers[-1]), "wait_ms": self._wait_ms},
            )

    async def settle(
        self, entry_id: str, state: DeliveryState, attempts: int, next_at: float
    ) -> None:
        fields = {"state": str(state), "attempts": attempts, "next_at": next_at}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(_HASH + entry_id, mapping=fields)
            stream_id = self._held.get(entry_id)
            if state is not DeliveryState.PENDING and stream_id is not None:
                pipe.xack(STREAM, GROUP, stream_id)
                pipe.xdel(STREAM, stream_id)
            await pipe.execute()
        if state is not DeliveryState.PENDING:
            self._held.pop(entry_id, None)

    # -- delivering ------------------------------------------------------------------------

    async def due(self, now: float, limit: int, busy: Collection[str]) -> list[OutboxEntry]:
        await self._ensure_group()
        try:
            await self._take_new(limit)
        except ResponseError as exc:
            # The group replicates with the stream, but a failover that lost the stream's
            # first writes, or a FLUSHALL, leaves none: make it again on the next round.
            if "NOGROUP" in str(exc):
                self._group_ready = False
            raise
        await self._claim_abandoned(limit)
        await self._refresh_held()
        waiting = [i for i in self._held if i not in busy]
        if not waiting:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in waiting:
                pipe.hgetall(_HASH + entry_id)
            found = await pipe.execute()
        due: list[OutboxEntry] = []
        for entry_id, raw in zip(waiting, found, strict=True):
            entry = _entry(entry_id, raw) if raw else None
            if entry is None or entry.state is not DeliveryState.PENDING:
                await self._drop(entry_id)  # expired, or settled elsewhere
            elif entry.next_at <= now and len(due) < limit:
                due.append(entry)
        return due

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _take_new(self, limit: int) -> None:
        answer = await self._redis.xreadgroup(
            GROUP, self.consumer, {STREAM: ">"}, count=max(limit, 10)
        )
        for _stream, items in answer or []:
            for stream_id, values in items:
                self._hold(stream_id, values)

    async def _claim_abandoned(self, limit: int) -> None:
        """Entries a dead replica held, idle past ``claim_idle_seconds``."""
        if self._clock() - self._last_claim < self._claim_idle_ms / 2000:
            return
        self._last_claim = self._clock()
        start = "0-0"
        while True:
            answer = await self._redis.xautoclaim(
                STREAM, GROUP, self.consumer, self._claim_idle_ms, start, count=max(limit, 10)
            )
            next_start, claimed = answer[0], answer[1]
            for stream_id, values in claimed:
                if values:  # deleted entries come back empty
                    self._hold(stream_id, values)
            if _text(next_start) == "0-0" or not claimed:
                return
            start = _text(next_start)

    async def _refresh_held(self) -> None:
        """Tell the group this replica is alive and still holds its entries."""
        if not self._held or self._clock() - self._last_refresh < self._claim_idle_ms / 3000:
            return
        self._last_refresh = self._clock()
        await self._redis.xclaim(
            STREAM, GROUP, self.consumer, 0, list(self._held.values()), justid=True
        )

    def _hold(self, stream_id: Any, values: dict[Any, Any]) -> None:
        entry_id = values.get(b"id") or values.get("id")
        if entry_id:
            self._held[_text(entry_id)] = stream_id

    async def _drop(self, entry_id: str) -> None:
        stream_id = self._held.pop(entry_id, None)
        if stream_id is not None:
            await self._redis.xack(STREAM, GROUP, stream_id)
            await self._redis.xdel(STREAM, stream_id)

    # -- reading ---------------------------------------------------------------------------

    async def history(self, query: HistoryQuery) -> list[OutboxEntry]:
        if query.call_id is not None:
            index = _BY_CALL + query.call_id
        elif query.last4 is not None:
            index = _BY_LAST4 + query.last4
        else:
            index = _BY_AT
        low = query.since if query.since is not None else "-inf"
        # Both filters: read the call's index whole (a call has few outcomes) and filter.
        count = MAX_LIMIT if query.call_id is not None and query.last4 else query.limit
        ids = await self._redis.zrevrangebyscore(index, "+inf", low, start=0, num=count)
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.hgetall(_HASH + _text(entry_id))
            found = await pipe.execute()
        entries = [_entry(_text(i), raw) for i, raw in zip(ids, found, strict=True) if raw]
        return [e for e in entries if query.matches(e)][: query.limit]

    async def purge(self, before: float) -> int:
        ids = await self._redis.zrangebyscore(_BY_AT, "-inf", f"({before}")
        if not ids:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.hmget(_HASH + _text(entry_id), ["call_id", "last4"])
            keys = await pipe.execute()
        async with self._redis.pipeline(transaction=True) as pipe:
            for entry_id, (call_id, last4) in zip(ids, keys, strict=True):
                pipe.delete(_HASH + _text(entry_id))
                for index in _indexes(_text(call_id or b""), _text(last4 or b"")):
                    pipe.zrem(index, entry_id)
            pipe.zremrangebyscore(_BY_AT, "-inf", f"({before}")
            await pipe.execute()
        return len(ids)

    async def pending(self) -> int:
        return int(await self._redis.xlen(STREAM))

    async def oldest_pending_at(self) -> float | None:
        """The stream holds only what is still to deliver, in the order it was written:
        its first entry is the oldest."""
        first = await self._redis.xrange(STREAM, count=1)
        if not first:
            return None
        at = await self._redis.hget(_HASH + _text(first[0][1][b"id"]), "at")
        return None if at is None else float(at)

    async def aclose(self) -> None:
        """The connection is the state backend's to close."""


def _indexes(call_id: str, last4: str) -> list[str]:
    return [
        index
        for index in (_BY_CALL + call_id if call_id else "", _BY_LAST4 + last4 if last4 else "")
        if index
    ]


def _fields(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "call_id": entry.call_id,
        "outcome": entry.outcome,
        "masked_number": entry.masked_number,
        "last4": entry.last4,
        "masked_account": entry.masked_account,
        "handoff": json.dumps(entry.handoff),
        "at": repr(entry.at),
        "body": entry.body,
        "state": str(entry.state),
        "attempts": entry.attempts,
        "next_at": repr(entry.next_at),
    }


def _entry(entry_id: str, raw: dict[bytes, bytes]) -> OutboxEntry | None:
    try:
        return OutboxEntry(
            id=entry_id,
            call_id=raw[b"call_id"].decode(),
            outcome=raw[b"outcome"].decode(),
            masked_number=raw[b"masked_number"].decode(),
            last4=raw[b"last4"].decode(),
            masked_account=raw[b"masked_account"].decode(),
            handoff=json.loads(raw[b"handoff"]),
            at=float(raw[b"at"]),
            body=raw[b"body"],
            state=DeliveryState(raw[b"state"].decode()),
            attempts=int(raw[b"attempts"]),
            next_at=float(raw[b"next_at"]),
        )
    except (KeyError, ValueError):
        return None  # a half-written or foreign hash: not ours to deliver


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
