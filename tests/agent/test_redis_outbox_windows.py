"""The Redis outbox's time windows, measured on a real redis-server and bounded from below.

Two windows are in milliseconds on Redis and in seconds in the configuration, so a unit
slip makes them 1000 times shorter while every functional test still passes:

* the expiry of an outcome's hash and indexes (``PEXPIRE`` with seconds would drop the
  history 1000 times sooner than the retention promises);
* the idle time after which another replica takes over an entry (``XAUTOCLAIM`` with
  seconds as its min-idle would hand a live replica's outcome to a second one within
  milliseconds: two deliveries of one outcome).

The expected numbers are worked out here from the documented contract (kept one day past
the retention; taken over after ``claim_idle_seconds``), not read from the module's
constants, and checked against what Redis itself reports (``PTTL``, ``XPENDING``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from agent.outcomes.entries import OutboxEntry, entry_of
from agent.outcomes.redis_outbox import RedisOutbox
from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.redis_client import connect

pytestmark = pytest.mark.anyio

#: One day in milliseconds, spelled out rather than taken from the module under test.
DAY_MS = 24 * 60 * 60 * 1000
#: The claim-idle these tests configure: short enough to wait out, long enough that a
#: probe at 50% of it has a full second of margin on a busy machine.
IDLE_SECONDS = 2.0


def final_outcome(call_id: str, masked_number: str = "***0001") -> OutboxEntry:
    """A pending outcome as ``Outbox.record`` writes it (a receiver is configured)."""
    event = MfaEvent(
        agent_id="mfa-agent",
        call_id=call_id,
        tool="verify_mfa",
        outcome=Outcome.VERIFIED,
        masked_number=masked_number,
        provider="sandbox",
        duration_ms=1.0,
        at=time.time(),
    )
    return entry_of(event, deliver=True)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[Callable[[], Redis]]:
    """Redis clients made the way the agent makes them, one per replica, all closed after."""
    made: list[Redis] = []

    def client() -> Redis:
        made.append(connect(redis_url))
        return made[-1]

    yield client
    for redis in made:
        await redis.aclose()


# -- the history's expiry --------------------------------------------------------------------


@pytest.mark.parametrize("retention_days", [1, 30])
async def test_history_keys_expire_one_day_after_the_retention_in_redis_own_ttl(
    retention_days: int, clients: Callable[[], Redis]
) -> None:
    """The hash and both indexes must outlive the retention (the history shows them that
    long) and expire a day later: the PTTL Redis reports is just under (retention + 1 day)
    in ms. Seconds handed to PEXPIRE would leave about 1/1000 of that and fail from below."""
    redis = clients()
    retention_seconds = retention_days * 24 * 60 * 60
    outbox = RedisOutbox(redis, consumer="replica-a", retention_seconds=retention_seconds)
    entry = final_outcome("call-ttl", masked_number="***4321")
    await outbox.add(entry)

    ceiling_ms = retention_seconds * 1000 + DAY_MS
    keys = [
        f"mfa:outcome:{entry.id}",  # the row and the webhook body (module docstring)
        "mfa:outcomes:call:call-ttl",  # the history's index by call
        "mfa:outcomes:last4:4321",  # the history's index by last four digits
    ]
    for key in keys:
        pttl = await redis.pttl(key)
        # Within a minute below the ceiling (the write just happened), never above it,
        # and in any case longer than the retention itself.
        assert ceiling_ms - 60_000 < pttl <= ceiling_ms, (key, pttl, ceiling_ms)
        assert pttl > retention_seconds * 1000, (key, pttl)


# -- the claim-idle takeover ------------------------------------------------------------------


async def pending_owner(redis: Redis) -> list[tuple[str, int]]:
    """Who holds each entry of the stream's group, and how often it was handed out, as
    Redis's own pending list says (``XPENDING``), not as the outbox believes."""
    rows: list[dict[str, Any]] = await redis.xpending_range(
        "mfa:outbox", "mfa-deliverers", min="-", max="+", count=10
    )
    return [(row["consumer"].decode(), int(row["times_delivered"])) for row in rows]


async def test_another_replica_takes_over_a_claimed_entry_only_after_claim_idle_seconds(
    clients: Callable[[], Redis],
) -> None:
    """A replica that read an entry holds it; another replica asking for due work 200 ms
    later, or at half the configured idle, must not get it (that would be a second delivery
    of an outcome a live replica is working on). Once the holder has been silent for longer
    than the idle (it died), a replica that asks does take it over. A min-idle in seconds
    where Redis wants ms (2 ms instead of 2 s) fails the first probe."""
    settings: dict[str, Any] = {"retention_seconds": 86400, "claim_idle_seconds": IDLE_SECONDS}
    holder = RedisOutbox(clients(), consumer="replica-a", **settings)
    entry = final_outcome("call-claim")
    await holder.add(entry)
    assert [e.id for e in await holder.due(time.time(), 10, ())] == [entry.id]
    held_since = time.monotonic()  # Redis's idle for the entry starts no later than this
    redis = clients()
    assert await pending_owner(redis) == [(holder.consumer, 1)]

    # Another replica asks 200 ms later. A second probe at half the idle is one that just
    # started, so its first ``due`` runs XAUTOCLAIM (a running replica spaces its claims
    # out, which would make a probe that soon after its last one prove nothing).
    survivor = RedisOutbox(clients(), consumer="replica-b", **settings)
    late_starter = RedisOutbox(clients(), consumer="replica-c", **settings)
    for probe_at, replica in ((0.2, survivor), (IDLE_SECONDS / 2, late_starter)):
        await asyncio.sleep(max(0.0, held_since + probe_at - time.monotonic()))
        assert await replica.due(time.time(), 10, ()) == [], f"taken over after {probe_at} s"
        assert await pending_owner(redis) == [(holder.consumer, 1)], probe_at

    # The holder says nothing more (dead): past the idle, by Redis's clock too, since the
    # holder's last word came before ``held_since``.
    await asyncio.sleep(max(0.0, held_since + IDLE_SECONDS + 0.3 - time.monotonic()))
    assert [e.id for e in await survivor.due(time.time(), 10, ())] == [entry.id]
    assert await pending_owner(redis) == [(survivor.consumer, 2)]
