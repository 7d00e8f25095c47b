"""``SendLimiter.sends_left``: what is left of this call's sends, counting none, on both stores."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from skills.mfa.limits.send_limits import (
    CounterStore,
    CounterStoreUnavailable,
    InProcessCounterStore,
    SendLimiter,
    SendLimits,
)
from skills.mfa.redis_client import connect
from skills.mfa.stores.redis_state import RedisCounterStore
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.anyio

CALLER = "+15551230001"
LIMITS = SendLimits(sends_per_call=3, resend_cooldown_seconds=0)


@pytest.fixture(params=["in_process", "redis"])
def make_store(request) -> Callable[[], CounterStore]:
    if request.param == "in_process":
        return InProcessCounterStore
    url = request.getfixturevalue("redis_url")
    return lambda: RedisCounterStore(connect(url))


async def test_sends_left_counts_down_with_sends_and_not_with_asking(make_store):
    clock = FakeClock()
    limiter = SendLimiter(make_store(), LIMITS, agent_id="a", clock=clock)
    assert await limiter.sends_left("call-1") == 3
    assert await limiter.sends_left("call-1") == 3  # asking counts nothing
    for left in (2, 1, 0):
        assert await limiter.try_send("call-1", CALLER, replaces_pending=False) is None
        assert await limiter.sends_left("call-1") == left
    assert await limiter.try_send("call-1", CALLER, replaces_pending=False) is not None
    assert await limiter.sends_left("call-1") == 0  # a refused send is not counted either
    assert await limiter.sends_left("call-2") == 3  # per call
    clock.advance(86400 + 1)  # the per-call window has passed
    assert await limiter.sends_left("call-1") == 3


async def test_sends_left_fails_like_sending_when_redis_is_down():
    store = RedisCounterStore(connect("redis://127.0.0.1:1/0", timeout=0.2))
    limiter = SendLimiter(store, LIMITS, agent_id="a")
    with pytest.raises(CounterStoreUnavailable):
        await limiter.sends_left("call-1")
