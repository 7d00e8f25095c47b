"""The code ledger on both backends: the same rules in this process and on Redis."""

from __future__ import annotations

import asyncio

import pytest

from skills.mfa.ledgers.code_ledger import (
    Busy,
    Check,
    Finished,
    InProcessCodeLedger,
    Spent,
    Superseded,
    code_key,
)
from skills.mfa.ledgers.redis_ledger import RedisCodeLedger
from skills.mfa.ledgers.replay import Found, InProcessAnswerStore, ReplayClaim
from skills.mfa.redis_client import connect
from skills.mfa.stores.redis_state import RedisAnswerStore
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.anyio

TTL = 4200.0  # valid_for 600 + the one-hour margin


@pytest.fixture(params=["in-process", "redis"])
def ledger(request):
    if request.param == "redis":
        return RedisCodeLedger(connect(request.getfixturevalue("redis_url")))
    return InProcessCodeLedger(clock=FakeClock())


async def test_checks_are_counted_up_to_the_limit(ledger):
    gates = [await ledger.begin("c", "r1", 3, TTL) for _ in range(4)]
    assert gates == [Check(1), Check(2), Check(3), Busy()]
    for _ in range(3):
        assert await ledger.settle("c", "r1", final=None, checked=True, ttl_seconds=TTL) is None
    assert await ledger.begin("c", "r1", 3, TTL) == Spent()


async def test_the_first_final_is_kept_and_ends_the_code(ledger):
    assert await ledger.begin("c", "r1", 3, TTL) == Check(1)
    assert await ledger.begin("c", "r1", 3, TTL) == Check(2)
    first = await ledger.settle("c", "r1", final="verified", checked=True, ttl_seconds=TTL)
    second = await ledger.settle("c", "r1", final="exhausted", checked=True, ttl_seconds=TTL)
    assert (first, second) == ("verified", "verified")
    assert await ledger.begin("c", "r1", 3, TTL) == Finished("verified")


async def test_a_check_given_back_frees_its_try(ledger):
    for number in (1, 2, 3):
        assert await ledger.begin("c", "r1", 3, TTL) == Check(number)
    await ledger.settle("c", "r1", final=None, checked=True, counted=False, ttl_seconds=TTL)
    assert await ledger.begin("c", "r1", 3, TTL) == Check(3)


async def test_only_the_newest_code_of_a_call_is_checked(ledger):
    await ledger.sent("c", "r1", TTL)
    assert await ledger.begin("c", "r1", 3, TTL) == Check(1)
    await ledger.sent("c", "r2", TTL)
    assert await ledger.begin("c", "r1", 3, TTL) == Superseded()
    assert await ledger.begin("c", "r2", 3, TTL) == Check(1)
    assert await ledger.begin("other-call", "r1", 3, TTL) == Check(1)  # per call


async def test_codes_are_apart_per_call_and_request():
    assert code_key("c", "r1") != code_key("c", "r2") != code_key("d", "r1")
    assert "r1" not in code_key("c", "r1")


async def test_in_process_entries_age_on_the_injected_clock():
    clock = FakeClock()
    ledger = InProcessCodeLedger(clock=clock)
    await ledger.sent("c", "r2", TTL)
    await ledger.begin("c", "r2", 3, TTL)
    await ledger.settle("c", "r2", final="verified", checked=True, ttl_seconds=TTL)
    clock.advance(TTL - 1)
    assert await ledger.begin("c", "r1", 3, TTL) == Superseded()
    assert await ledger.begin("c", "r2", 3, TTL) == Finished("verified")
    clock.advance(2)
    assert await ledger.begin("c", "r1", 3, TTL) == Check(1)  # both entries gone


async def test_redis_keys_live_as_long_as_the_ledger_says(redis_url):
    # Lower bounds too: a window counted in the wrong unit fails here.
    redis = connect(redis_url)
    ledger = RedisCodeLedger(redis)
    await ledger.sent("c", "r1", TTL)
    await ledger.begin("c", "r1", 3, TTL)
    keys = sorted(await redis.keys("mfa:*"))
    assert len(keys) == 2
    for key in keys:
        assert TTL * 1000 * 0.9 <= await redis.pttl(key) <= TTL * 1000


async def test_replicas_never_take_more_checks_than_the_code_has(redis_url):
    ledgers = [RedisCodeLedger(connect(redis_url, timeout=30)) for _ in range(2)]
    gates = await asyncio.gather(*(ledgers[i % 2].begin("c", "r", 3, TTL) for i in range(100)))
    assert sorted(g.number for g in gates if isinstance(g, Check)) == [1, 2, 3]
    assert sum(isinstance(g, Busy) for g in gates) == 97
    finals = await asyncio.gather(
        *(
            ledgers[i % 2].settle("c", "r", final=f"final-{i}", checked=True, ttl_seconds=TTL)
            for i in range(3)
        )
    )
    assert len(set(finals)) == 1  # one final, whichever replica set it


# -- replay records: pending to final only -------------------------------------------------


@pytest.fixture(params=["in-process", "redis"])
def answers(request):
    if request.param == "redis":
        return RedisAnswerStore(connect(request.getfixturevalue("redis_url")))
    return InProcessAnswerStore(clock=FakeClock())


async def test_a_recorded_answer_is_never_replaced(answers):
    first, late = ReplayClaim("replay:k", "t1", 15.0), ReplayClaim("replay:k", "t2", 15.0)
    assert await answers.claim(first) is None
    answers.record(first, "verified", 600.0)
    answers.record(late, "expired", 600.0)  # a second copy that went upstream meanwhile
    if isinstance(answers, RedisAnswerStore):
        await answers.drain()
    assert await answers.peek("replay:k") == Found("verified")
