"""What a Redis failover leaves the outbox, played on one real redis-server.

A promoted replica has none of the old primary's scripts (``SCRIPT LOAD`` is not
replicated), may lack the consumer group if the stream's first writes were lost, and may
have no replica of its own to acknowledge a ``WAIT``. Each is made here directly
(``SCRIPT FLUSH``, ``FLUSHALL``, a server without replicas) rather than by a failover, which
``tests/replicas/test_sentinel_failover.py`` plays whole.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agent.outcomes.entries import HistoryQuery, OutboxEntry, entry_of
from agent.outcomes.redis_outbox import RedisOutbox
from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.redis_client import connect

pytestmark = pytest.mark.anyio


def final_outcome() -> OutboxEntry:
    event = MfaEvent(
        agent_id="mfa-agent",
        call_id=str(uuid.uuid4()),
        tool="verify_mfa",
        outcome=Outcome.VERIFIED,
        masked_number="***0001",
        provider="sandbox",
        duration_ms=1.0,
        at=time.time(),
    )
    return entry_of(event, deliver=True)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


async def kept(outbox: RedisOutbox, entry: OutboxEntry) -> list[str]:
    return [e.outcome for e in await outbox.history(HistoryQuery(call_id=entry.call_id))]


async def test_an_outcome_is_written_on_a_server_that_lost_the_script(redis):
    outbox = RedisOutbox(redis, consumer="a", retention_seconds=3600)
    first = final_outcome()
    await outbox.add(first)
    await redis.script_flush()  # as on a promoted replica
    second = final_outcome()
    await outbox.add(second)
    assert await kept(outbox, first) == await kept(outbox, second) == ["verified"]
    assert [e.id for e in await outbox.due(time.time(), 10, ())] == [first.id, second.id]


async def test_a_lost_consumer_group_is_made_again(redis):
    outbox = RedisOutbox(redis, consumer="a", retention_seconds=3600)
    assert await outbox.due(time.time(), 10, ()) == []  # the group exists now
    await redis.flushall()  # the stream and its group are gone
    with pytest.raises(ResponseError, match="NOGROUP"):
        await outbox.due(time.time(), 10, ())  # the deliverer logs it and comes back
    entry = final_outcome()
    await outbox.add(entry)
    assert [e.id for e in await outbox.due(time.time(), 10, ())] == [entry.id]


async def test_an_outcome_no_replica_acknowledges_is_kept_and_logged(redis, caplog):
    caplog.set_level(logging.WARNING, logger="mfa.outbox")
    outbox = RedisOutbox(redis, consumer="a", retention_seconds=3600, replicas_to_wait=1)
    entry = final_outcome()
    await outbox.add(entry)  # this server has no replica: WAIT gives up after wait_ms
    assert await kept(outbox, entry) == ["verified"]
    (record,) = [r for r in caplog.records if r.getMessage() == "outcome_not_replicated"]
    assert (record.replicas, record.wait_ms) == (0, 100)


async def test_without_a_replica_to_wait_for_nothing_waits(redis, caplog):
    caplog.set_level(logging.WARNING, logger="mfa.outbox")
    outbox = RedisOutbox(redis, consumer="a", retention_seconds=3600)
    await outbox.add(final_outcome())
    assert not [r for r in caplog.records if r.getMessage() == "outcome_not_replicated"]
