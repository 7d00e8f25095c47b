"""Shared state on a real redis-server: the same rules as in-process, across clients."""

from __future__ import annotations

import asyncio

import pytest

from skills.mfa.delivery.providers.base import (
    CodeNotFound,
    ProviderUnavailable,
    VerifyOutcome,
)
from skills.mfa.delivery.providers.breaker import CircuitBreakerProvider
from skills.mfa.delivery.providers.sandbox import SandboxProvider
from skills.mfa.ledgers.replay import Found, ReplayClaim
from skills.mfa.limits.send_limits import (
    CounterStoreUnavailable,
    InProcessCounterStore,
    LimitKind,
    Refusal,
    Rule,
)
from skills.mfa.redis_client import connect, ping
from skills.mfa.stores.redis_state import (
    RedisAnswerStore,
    RedisBreakerState,
    RedisCounterStore,
    RedisPendingCodes,
)
from tests.support.calls import wrong_code
from tests.support.fakes import SEND_REQUEST, FakeClock, ScriptedProvider, outage

pytestmark = pytest.mark.anyio

REQUEST = SEND_REQUEST


def sandbox(url: str, clock: FakeClock, outbox: list) -> SandboxProvider:
    return SandboxProvider(RedisPendingCodes(connect(url)), deliver=outbox.append, clock=clock)


async def test_codes_verify_once_across_two_clients(redis_url):
    clock, outbox = FakeClock(), []
    first, second = sandbox(redis_url, clock, outbox), sandbox(redis_url, clock, outbox)
    sent = await first.send(REQUEST)
    code = outbox[-1].code
    results = await asyncio.gather(
        *(provider.verify(sent.request_id, code) for provider in [first, second] * 10),
        return_exceptions=True,
    )
    verified = [r for r in results if isinstance(r, VerifyOutcome) and r.verified]
    assert len(verified) == 1
    assert all(isinstance(r, CodeNotFound) for r in results if r not in verified)


async def test_wrong_codes_count_down_then_the_code_is_dead(redis_url):
    clock, outbox = FakeClock(), []
    provider = sandbox(redis_url, clock, outbox)
    sent = await provider.send(REQUEST)
    wrong = wrong_code(outbox[-1].code)
    left = [(await provider.verify(sent.request_id, wrong)).attempts_left for _ in range(3)]
    assert left == [2, 1, 0]
    with pytest.raises(CodeNotFound):
        await provider.verify(sent.request_id, outbox[-1].code)


async def test_expiry_and_key_ttl(redis_url):
    clock, outbox = FakeClock(), []
    redis = connect(redis_url)
    provider = SandboxProvider(RedisPendingCodes(redis), deliver=outbox.append, clock=clock)
    sent = await provider.send(REQUEST)
    ttl = await redis.pttl(f"mfa:code:{sent.request_id}")
    assert 590_000 < ttl <= 600_000  # the key expires by itself with the code
    assert outbox[-1].code.encode() not in b"".join(
        v for v in (await redis.hgetall(f"mfa:code:{sent.request_id}")).values()
    )
    clock.now += 600
    with pytest.raises(CodeNotFound):
        await provider.verify(sent.request_id, outbox[-1].code)


async def test_counters_never_overshoot_under_concurrency(redis_url):
    # Atomicity is under test, not latency: 200 connections opening at once on a busy
    # machine may take longer than the product's 1 s timeout.
    stores = [RedisCounterStore(connect(redis_url, timeout=30)) for _ in range(2)]
    rule = Rule(LimitKind.AGENT_RATE, "agent:x", 150, 60.0)
    results = await asyncio.gather(
        *(stores[i % 2].acquire([rule], 1000.0 + i / 1000) for i in range(200))
    )
    assert sum(r is None for r in results) == 150
    assert {r.kind for r in results if r is not None} == {LimitKind.AGENT_RATE}


async def test_a_refusal_records_nothing_and_windows_roll(redis_url):
    store = RedisCounterStore(connect(redis_url))
    loose = Rule(LimitKind.RECIPIENT_DAY, "to:d:r", 10, 86400.0)
    tight = Rule(LimitKind.CALL_SENDS, "call:c", 1, 60.0)
    assert await store.acquire([loose, tight], 0.0) is None
    refusal = await store.acquire([loose, tight], 10.0)
    assert refusal is not None and refusal.kind is LimitKind.CALL_SENDS
    assert refusal.retry_after == pytest.approx(50.0)
    redis = connect(redis_url)
    assert await redis.zcard("mfa:limit:to:d:r") == 1  # the refused send was not counted
    assert await store.acquire([loose, tight], 61.0) is None
    assert 0 < await redis.pttl("mfa:limit:call:c") <= 61_000


@pytest.mark.parametrize("where", ["redis", "in-process"])
async def test_counts_reads_every_window_in_one_step(where, redis_url):
    """``counts`` (one pipeline on Redis) gives, per (key, window), the hits newer than
    now - window: here computed by hand from the times the hits were recorded at."""
    store = RedisCounterStore(connect(redis_url)) if where == "redis" else InProcessCounterStore()
    key = f"pump:{where}"
    hits_at = [0.0, 100.0, 3000.0, 3500.0, 3590.0]
    for at in hits_at:
        assert await store.acquire([Rule(LimitKind.AGENT_RATE, key, 100, 7200.0)], at) is None
    now = 3600.0
    queries = [(key, 3600.0), (key, 120.0), (key, 10.0), ("pump:none", 3600.0), (key, 3550.0)]
    expected = [sum(1 for at in hits_at if at > now - window and k == key) for k, window in queries]

    assert expected == [4, 2, 0, 0, 4]
    assert await store.counts(queries, now) == expected
    assert [await store.count(k, w, now) for k, w in queries] == expected


async def test_record_only_rules_are_kept_for_later_checks(redis_url):
    store = RedisCounterStore(connect(redis_url))
    recorded = Rule(LimitKind.CALL_COOLDOWN, "cooldown:c", 1, 30.0, enforce=False)
    enforced = Rule(LimitKind.CALL_COOLDOWN, "cooldown:c", 1, 30.0)
    assert await store.acquire([recorded], 0.0) is None
    assert await store.acquire([recorded], 1.0) is None
    refusal = await store.acquire([enforced], 5.0)
    assert refusal is not None and refusal.kind is LimitKind.CALL_COOLDOWN


async def test_breaker_state_is_shared_by_replicas(redis_url):
    clock = FakeClock()
    inner_a, inner_b = ScriptedProvider().then(outage()), ScriptedProvider().then(outage())
    a = CircuitBreakerProvider(
        inner_a,
        state=RedisBreakerState(connect(redis_url)),
        failure_threshold=2,
        open_seconds=30,
        clock=clock,
    )
    b = CircuitBreakerProvider(
        inner_b,
        state=RedisBreakerState(connect(redis_url)),
        failure_threshold=2,
        open_seconds=30,
        clock=clock,
    )
    for provider in (a, b):
        with pytest.raises(ProviderUnavailable):
            await provider.send(REQUEST)
    with pytest.raises(ProviderUnavailable) as opened:
        await b.send(REQUEST)
    assert opened.value.kind == "circuit_open"
    assert (inner_a.calls, inner_b.calls) == (1, 1)
    assert await a.is_open()


async def test_redis_down_refuses_politely_and_recovers(own_redis_server):
    server = own_redis_server
    clock, outbox = FakeClock(), []
    provider = sandbox(server.url, clock, outbox)
    redis = connect(server.url)
    store = RedisCounterStore(redis)
    breaker_state = RedisBreakerState(connect(server.url))
    sent = await provider.send(REQUEST)
    server.stop()
    with pytest.raises(ProviderUnavailable):
        await provider.verify(sent.request_id, outbox[-1].code)
    with pytest.raises(ProviderUnavailable):
        await provider.send(REQUEST)
    with pytest.raises(CounterStoreUnavailable):
        await store.acquire([Rule(LimitKind.AGENT_RATE, "a", 1, 60.0)], 0.0)
    assert await ping(redis) is False  # /ready says so
    assert await breaker_state.before_call(0.0, 30.0) is True  # fails open
    server.start()
    assert await ping(redis) is True
    sent = await provider.send(REQUEST)
    assert (await provider.verify(sent.request_id, outbox[-1].code)).verified


async def test_every_key_expires_or_is_capped(redis_url):
    """No cleanup job: after a send, a verify, counters and the breaker, every key has a TTL."""
    clock, outbox = FakeClock(), []
    redis = connect(redis_url)
    provider = SandboxProvider(RedisPendingCodes(redis), deliver=outbox.append, clock=clock)
    await provider.send(REQUEST)
    await RedisCounterStore(redis).acquire([Rule(LimitKind.AGENT_RATE, "a", 5, 60.0)], 0.0)
    await RedisBreakerState(redis).record(False, 0.0, 5, 30.0)
    keys = await redis.keys("mfa:*")
    assert len(keys) == 3
    assert all([await redis.pttl(key) > 0 for key in keys])


# -- replay claims and refunds -----------------------------------------------------------


def claim_of(key: str, token: str = "t1", pending: float = 5.0) -> ReplayClaim:
    return ReplayClaim(key, token, pending)


async def test_a_send_claim_is_taken_with_the_counters_in_one_step(redis_url):
    redis = connect(redis_url)
    store = RedisCounterStore(redis)
    rule = Rule(LimitKind.RECIPIENT_HOUR, "to:x", 5, 3600.0)
    claim = claim_of("replay:abc")
    assert await store.acquire([rule], 0.0, member="m1", claim=claim) is None
    # A duplicate finds the claim and records nothing.
    assert await store.acquire([rule], 1.0, member="m2", claim=claim_of("replay:abc", "t2")) == (
        Found(None)
    )
    assert await redis.zcard("mfa:limit:to:x") == 1
    store.answers.record(claim, '{"x":1}', 600)
    await store.answers.drain()
    assert await store.acquire([rule], 2.0, member="m3", claim=claim) == Found('{"x":1}')
    assert 0 < await redis.pttl("mfa:replay:abc") <= 600_000
    # A refused send takes no claim.
    full = Rule(LimitKind.CALL_SENDS, "call:c", 1, 60.0)
    assert await store.acquire([full], 3.0, member="m4") is None
    refused = await store.acquire([full], 4.0, member="m5", claim=claim_of("replay:new"))
    assert refused == Refusal(LimitKind.CALL_SENDS, retry_after=59.0)
    assert await redis.exists("mfa:replay:new") == 0


async def test_a_refund_removes_its_own_hits_once(redis_url):
    redis = connect(redis_url)
    store = RedisCounterStore(redis)
    rules = [
        Rule(LimitKind.RECIPIENT_HOUR, "to:y", 1, 3600.0),
        Rule(LimitKind.AGENT_RATE, "a", 9, 60.0),
    ]
    assert await store.acquire(rules, 0.0, member="kept") is None
    assert await store.acquire(rules, 1.0, member="other") is not None  # 1 per hour
    await store.acquire([rules[1]], 1.0, member="refunded")
    await store.refund(rules, 1.0, "refunded")
    await store.refund(rules, 1.0, "refunded")  # twice: a no-op
    await store.refund(rules, 1.0, "never-there")
    assert await redis.zcard("mfa:limit:to:y") == 1
    assert await redis.zcard("mfa:limit:a") == 1


async def test_verify_claims_release_only_their_own(redis_url):
    answers = RedisAnswerStore(connect(redis_url))
    mine = claim_of("replay:v")
    assert await answers.claim(mine) is None
    assert await answers.claim(claim_of("replay:v", "t2")) == Found(None)
    answers.release(claim_of("replay:v", "t2"))  # not its claim: nothing happens
    await answers.drain()
    assert await answers.peek("replay:v") == Found(None)
    answers.release(mine)
    await answers.drain()
    assert await answers.peek("replay:v") is None
