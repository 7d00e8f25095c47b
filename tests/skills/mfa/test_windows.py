"""Every window lasts as long as it says: lower bounds as well as upper ones.

A window counted in the wrong unit (seconds given to ``PEXPIRE``) or cut short (a
replay record kept 15 s) would still pass an upper bound alone. So each Redis key's
PTTL is read right after it is written and must be at least 90% of its window, and
the in-process stores are moved by the ONE clock the tests hold (``FakeClock``):
advancing it must age counters, replay records, the code ledger and misses alike.

The windows are written out here (the documented defaults), not read from the product.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.state import StateBackend
from skills.mfa.flow.directory.misses import RedisMissCounter
from skills.mfa.ledgers.code_ledger import Check
from skills.mfa.ledgers.replay import ReplayClaim
from skills.mfa.limits.send_limits import SendLimiter, SendLimits, SendTicket
from skills.mfa.redis_client import connect
from skills.mfa.stores.redis_state import RedisBreakerState, RedisCounterStore
from tests.skills.mfa.test_tools import make_rig, send
from tests.support.fakes import T0, FakeClock

pytestmark = pytest.mark.anyio

HOUR, DAY = 3600.0, 86400.0
# The platform retries a SWAIG request up to 4 times, 120 s apart: a replay record must
# outlive that, and the product keeps one at least 600 s (at most an hour).
RETRY_WINDOW = 4 * 120.0
REPLAY_RECORD_SECONDS = 600.0


def ms(seconds: float) -> float:
    return seconds * 1000


async def test_every_send_counter_lives_its_window_in_redis(redis_url):
    redis = connect(redis_url)
    limiter = SendLimiter(RedisCounterStore(redis), SendLimits(), agent_id="jim", clock=FakeClock())
    ticket = await limiter.reserve("call-1", "+15551230001", replaces_pending=False)
    assert isinstance(ticket, SendTicket)
    windows = {
        "mfa:limit:cooldown:": 30.0,
        "mfa:limit:call:": DAY,
        "mfa:limit:to:h:": HOUR,
        "mfa:limit:to:d:": DAY,
        "mfa:limit:agent:": 60.0,
    }
    keys = [key.decode() for key in await redis.keys("mfa:limit:*")]
    assert len(keys) == len(windows)
    for key in keys:
        (window,) = [w for prefix, w in windows.items() if key.startswith(prefix)]
        ttl = await redis.pttl(key)
        assert ms(window) * 0.9 <= ttl <= ms(window) + 1000, (key, ttl)


async def test_a_replay_record_outlives_the_platforms_retries_in_redis(redis_url):
    redis = connect(redis_url)
    store = RedisCounterStore(redis)
    rig = make_rig(store=store)
    await send(rig)
    await store.answers.drain()
    (key,) = await redis.keys("mfa:replay:*")
    ttl = await redis.pttl(key)
    assert ms(REPLAY_RECORD_SECONDS) * 0.9 <= ttl <= ms(HOUR)
    assert ttl >= ms(RETRY_WINDOW)


async def test_account_misses_last_a_day_in_redis(redis_url):
    redis = connect(redis_url)
    assert await RedisMissCounter(redis).take("call-1", 3) is True
    (key,) = await redis.keys("mfa:dir:miss:*")
    assert ms(DAY) * 0.9 <= await redis.pttl(key) <= ms(DAY)


async def test_breaker_state_outlives_its_open_window_in_redis(redis_url):
    redis = connect(redis_url)
    open_seconds = 30.0
    await RedisBreakerState(redis).record(False, T0, 5, open_seconds)
    ttl = await redis.pttl("mfa:breaker")
    # Open, then a trial window of the same length: the state must outlive both.
    assert 2 * ms(open_seconds) <= ttl <= 4 * ms(open_seconds) + 60_000


# -- one clock for every in-process store --------------------------------------------------


async def test_advancing_the_rigs_clock_ages_replay_records():
    rig = make_rig()
    first = await send(rig)
    rig.clock.advance(RETRY_WINDOW)
    assert await send(rig) == first  # the platform's last retry: the recorded reply
    assert rig.provider.calls == 1
    rig.clock.advance(REPLAY_RECORD_SECONDS - RETRY_WINDOW + 1)
    await send(rig)  # the record is gone: a new request, a new code
    assert rig.provider.calls == 2


async def test_the_state_backends_clock_reaches_every_in_process_store(tmp_path: Path):
    clock = FakeClock()
    state = StateBackend(tmp_path / "sandbox.db", clock=clock)
    assert await state.account_misses.take("call-1", 1) is True
    await state.counters.ledger.sent("call-1", "r2", 60.0)
    answers = state.counters.answers
    claim = ReplayClaim("replay:k", "t", 15.0)
    assert await answers.claim(claim) is None
    answers.record(claim, "{}", 600.0)
    clock.advance(599)
    assert await answers.peek("replay:k") is not None
    assert await state.account_misses.take("call-1", 1) is False  # still counted
    clock.advance(2)
    assert await answers.peek("replay:k") is None
    # The ledger's latest send (60 s) is gone too: an older code is not superseded.
    assert await state.counters.ledger.begin("call-1", "r1", 3, 60.0) == Check(1)
    clock.advance(DAY)
    assert await state.account_misses.take("call-1", 1) is True  # a day later: forgotten
