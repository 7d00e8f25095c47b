"""The send limits: each rule, the all-or-nothing recording, concurrency and memory.

The clock is injected, so windows roll by advancing a number, not by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skills.mfa.ledgers.replay import InProcessAnswerStore
from skills.mfa.limits.send_limits import (
    InProcessCounterStore,
    LimitKind,
    Refusal,
    Rule,
    SendLimiter,
    SendLimits,
    recipient_key,
)
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.anyio

ALICE = "+15551230001"
BOB = "+15551230002"


def make_limiter(
    *,
    sends_per_call: int = 3,
    resend_cooldown_seconds: float = 30.0,
    per_recipient_per_hour: int = 5,
    per_recipient_per_day: int = 10,
    agent_sends_per_minute: int = 120,
    store: InProcessCounterStore | None = None,
) -> tuple[SendLimiter, InProcessCounterStore, FakeClock]:
    clock = FakeClock()
    store = store or InProcessCounterStore()
    limiter = SendLimiter(
        store,
        SendLimits(
            sends_per_call=sends_per_call,
            resend_cooldown_seconds=resend_cooldown_seconds,
            per_recipient_per_hour=per_recipient_per_hour,
            per_recipient_per_day=per_recipient_per_day,
            agent_sends_per_minute=agent_sends_per_minute,
        ),
        agent_id="agent-under-test",
        clock=clock,
    )
    return limiter, store, clock


def number(i: int) -> str:
    return f"+1555{i:07d}"


# -- the call cooldown ------------------------------------------------------------------


async def test_cooldown_applies_only_when_a_code_is_pending():
    limiter, _, clock = make_limiter(resend_cooldown_seconds=30)
    # The first send records the cooldown even though nothing is pending yet.
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None
    clock.advance(10)

    refusal = await limiter.try_send("call-1", ALICE, replaces_pending=True)
    assert refusal is not None
    assert refusal.kind is LimitKind.CALL_COOLDOWN
    assert refusal.retry_after == pytest.approx(20.0)

    # The earlier code expired or ran out of tries: a new one may go at once.
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None


async def test_cooldown_ends_after_its_window_and_is_per_call():
    limiter, _, clock = make_limiter(resend_cooldown_seconds=30)
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None
    # Another call is not cooled down by call-1's send.
    assert await limiter.try_send("call-2", BOB, replaces_pending=True) is None

    clock.advance(29.9)
    refusal = await limiter.try_send("call-1", ALICE, replaces_pending=True)
    assert refusal is not None and refusal.kind is LimitKind.CALL_COOLDOWN
    assert refusal.retry_after == pytest.approx(0.1)

    clock.advance(0.1)  # exactly the window: the earlier send no longer counts
    assert await limiter.try_send("call-1", ALICE, replaces_pending=True) is None
    # ... and that resend starts a new cooldown.
    refusal = await limiter.try_send("call-1", ALICE, replaces_pending=True)
    assert refusal is not None and refusal.kind is LimitKind.CALL_COOLDOWN
    assert refusal.retry_after == pytest.approx(30.0)


# -- per call, per recipient, per agent -------------------------------------------------


async def test_sends_per_call_cap():
    limiter, _, clock = make_limiter(sends_per_call=3, resend_cooldown_seconds=0)
    for _ in range(3):
        assert await limiter.try_send("call-1", ALICE, replaces_pending=True) is None
        clock.advance(1)
    refusal = await limiter.try_send("call-1", ALICE, replaces_pending=True)
    assert refusal is not None and refusal.kind is LimitKind.CALL_SENDS
    # A different call to the same number is not capped by call-1's count.
    assert await limiter.try_send("call-2", ALICE, replaces_pending=False) is None


async def test_recipient_hour_window_rolls():
    limiter, _, clock = make_limiter(per_recipient_per_hour=2, per_recipient_per_day=10)
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None
    clock.advance(600)
    assert await limiter.try_send("call-2", ALICE, replaces_pending=False) is None
    clock.advance(600)

    refusal = await limiter.try_send("call-3", ALICE, replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.RECIPIENT_HOUR
    # Retry when the oldest of the two leaves the hour: 3600 - 1200 seconds from now.
    assert refusal.retry_after == pytest.approx(2400.0)
    # Other numbers are unaffected.
    assert await limiter.try_send("call-3", BOB, replaces_pending=False) is None

    clock.advance(2400)  # the first send is now exactly an hour old
    assert await limiter.try_send("call-4", ALICE, replaces_pending=False) is None
    refusal = await limiter.try_send("call-5", ALICE, replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.RECIPIENT_HOUR


async def test_recipient_day_window_rolls():
    limiter, _, clock = make_limiter(per_recipient_per_hour=2, per_recipient_per_day=3)
    sent_at = []
    for i in range(3):
        assert await limiter.try_send(f"call-{i}", ALICE, replaces_pending=False) is None
        sent_at.append(clock.now)
        clock.advance(3600)  # a fresh hour each time: only the day rule can refuse

    refusal = await limiter.try_send("call-x", ALICE, replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.RECIPIENT_DAY
    assert refusal.retry_after == pytest.approx(sent_at[0] + 86400 - clock.now)

    clock.now = sent_at[0] + 86400  # the first send is a day old
    assert await limiter.try_send("call-y", ALICE, replaces_pending=False) is None
    refusal = await limiter.try_send("call-z", ALICE, replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.RECIPIENT_DAY


async def test_agent_cap_per_minute():
    limiter, _, clock = make_limiter(agent_sends_per_minute=3)
    for i in range(3):
        assert await limiter.try_send(f"call-{i}", number(i), replaces_pending=False) is None
    refusal = await limiter.try_send("call-3", number(3), replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.AGENT_RATE
    assert refusal.retry_after == pytest.approx(60.0)

    clock.advance(59)
    refusal = await limiter.try_send("call-3", number(3), replaces_pending=False)
    assert refusal is not None and refusal.kind is LimitKind.AGENT_RATE
    clock.advance(1)
    assert await limiter.try_send("call-3", number(3), replaces_pending=False) is None


# -- a refusal burns nothing -------------------------------------------------------------


async def test_a_refused_send_records_nothing():
    limiter, store, clock = make_limiter(
        sends_per_call=1,
        per_recipient_per_hour=1,
        per_recipient_per_day=1,
        agent_sends_per_minute=1,
    )
    assert await limiter.try_send("call-a", ALICE, replaces_pending=False) is None
    keys_before = store.key_count()

    # Refused by the agent cap: call-b's own budget and BOB's budgets must be untouched.
    for _ in range(5):
        refusal = await limiter.try_send("call-b", BOB, replaces_pending=False)
        assert refusal is not None and refusal.kind is LimitKind.AGENT_RATE
    assert store.key_count() == keys_before

    clock.advance(60)
    # Were any of those refusals counted, call-b (1 per call) or BOB (1 per hour/day) would
    # now be refused.
    assert await limiter.try_send("call-b", BOB, replaces_pending=False) is None


async def test_a_rule_refusal_leaves_the_earlier_rules_unrecorded():
    limiter, _, clock = make_limiter(
        sends_per_call=2, per_recipient_per_hour=1, agent_sends_per_minute=100
    )
    assert await limiter.try_send("call-a", ALICE, replaces_pending=False) is None
    # call-b to ALICE: allowed by call-b's cap, refused by ALICE's hour cap. Nothing counts.
    for _ in range(3):
        refusal = await limiter.try_send("call-b", ALICE, replaces_pending=False)
        assert refusal is not None and refusal.kind is LimitKind.RECIPIENT_HOUR
    # call-b still has both of its sends.
    assert await limiter.try_send("call-b", BOB, replaces_pending=False) is None
    clock.advance(3600)
    assert await limiter.try_send("call-b", ALICE, replaces_pending=False) is None


# -- concurrency -------------------------------------------------------------------------


async def test_concurrent_sends_never_overshoot_the_agent_cap():
    limiter, _, _ = make_limiter(agent_sends_per_minute=150)
    results = await asyncio.gather(
        *(limiter.try_send(f"call-{i}", number(i), replaces_pending=False) for i in range(200))
    )
    allowed = [r for r in results if r is None]
    refused = [r for r in results if r is not None]
    assert len(allowed) == 150
    assert len(refused) == 50
    assert {r.kind for r in refused} == {LimitKind.AGENT_RATE}


async def test_concurrent_resends_within_the_cooldown_are_all_refused():
    limiter, _, _ = make_limiter(sends_per_call=3, resend_cooldown_seconds=30)
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None
    results = await asyncio.gather(
        *(limiter.try_send("call-1", ALICE, replaces_pending=True) for _ in range(20))
    )
    assert results.count(None) == 0
    assert all(r is not None and r.kind is LimitKind.CALL_COOLDOWN for r in results)


async def test_concurrent_resends_after_the_cooldown_pass_once():
    limiter, _, clock = make_limiter(sends_per_call=3, resend_cooldown_seconds=30)
    assert await limiter.try_send("call-1", ALICE, replaces_pending=False) is None
    clock.advance(31)
    results = await asyncio.gather(
        *(limiter.try_send("call-1", ALICE, replaces_pending=True) for _ in range(20))
    )
    assert results.count(None) == 1
    assert all(r.kind is LimitKind.CALL_COOLDOWN for r in results if r is not None)


# -- memory ------------------------------------------------------------------------------


async def test_sweep_removes_stale_keys():
    store = InProcessCounterStore(sweep_every=5)
    limiter, _, clock = make_limiter(store=store)
    per_send = 4  # cooldown, call, recipient hour, recipient day; plus one agent key

    for i in range(5):
        assert await limiter.try_send(f"old-{i}", number(i), replaces_pending=False) is None
    assert store.key_count() == 5 * per_send + 1  # the sweep ran, nothing was stale yet

    clock.advance(3601)  # cooldown (30 s) and recipient-hour keys are stale, the rest not
    for i in range(4):
        assert await limiter.try_send(f"mid-{i}", number(100 + i), replaces_pending=False) is None
    assert store.key_count() == 5 * per_send + 1 + 4 * per_send  # no sweep yet
    assert await limiter.try_send("mid-4", number(104), replaces_pending=False) is None
    # Old calls keep their call and day keys; new calls have all four; one agent key.
    assert store.key_count() == 5 * 2 + 5 * per_send + 1

    clock.advance(86401)  # everything older than a day is stale
    for i in range(5):
        assert await limiter.try_send(f"new-{i}", number(200 + i), replaces_pending=False) is None
    assert store.key_count() == 5 * per_send + 1


async def test_memory_stays_bounded_under_steady_traffic():
    store = InProcessCounterStore(sweep_every=50)
    limiter, _, clock = make_limiter(store=store, agent_sends_per_minute=100000)
    peak = 0
    for i in range(3000):
        assert await limiter.try_send(f"c-{i}", number(i), replaces_pending=False) is None
        clock.advance(120)  # 720 sends a day
        peak = max(peak, store.key_count())
    # About a day of calls (2 day-long keys each) is live at most, plus sweep slack.
    assert peak <= 2 * 721 + 4 * 50 + 60 + 1


# -- privacy -----------------------------------------------------------------------------


class RecordingStore:
    """A CounterStore that remembers the rules it was asked about."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.answers = InProcessAnswerStore()

    async def acquire(
        self, rules: Sequence[Rule], now: float, *, member: str = "", claim: object = None
    ) -> Refusal | None:
        self.rules.extend(rules)
        return None


@given(st.from_regex(r"\+1[2-9]\d{9}|\+447\d{9}|\+[2-9]\d{7,13}", fullmatch=True))
@settings(max_examples=200, deadline=None)
def test_recipient_key_never_holds_the_number(e164):
    digits = "".join(ch for ch in e164 if ch.isdigit())
    key = recipient_key(e164)
    assert e164 not in key
    assert digits not in key
    assert digits[-7:] not in key
    assert len(key) == 32 and all(ch in "0123456789abcdef" for ch in key)
    assert recipient_key(e164) == key  # stable
    assert recipient_key(e164 + "0") != key


async def test_store_keys_never_hold_the_number():
    store = RecordingStore()
    limiter = SendLimiter(store, SendLimits(), agent_id="agent")
    await limiter.try_send("call-1", "+15551230001", replaces_pending=True)
    pumping = {
        LimitKind.PREFIX_HOUR,
        LimitKind.COUNTRY_HOUR,
        LimitKind.CONVERSION,
        LimitKind.BLOCKED,
    }
    assert {rule.kind for rule in store.rules} == set(LimitKind) - pumping  # no guard here
    for rule in store.rules:
        assert "5551230001" not in rule.key
        assert "1230001" not in rule.key


# -- property: the store against a model -----------------------------------------------

LIMITS = SendLimits(
    sends_per_call=3,
    resend_cooldown_seconds=5,
    per_recipient_per_hour=3,
    per_recipient_per_day=5,
    agent_sends_per_minute=4,
)
STEPS = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0, 1, 2, 5, 30, 59, 60, 61, 600, 3600, 86400])),
    st.tuples(
        st.just("send"),
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans()),
    ),
)


def model_decision(
    allowed: list[tuple[float, int, int]], now: float, call: int, to: int, replaces: bool
) -> LimitKind | None:
    """The rules, written the plain way: count earlier allowed sends in (now - window, now]."""

    def count(window: float, match) -> int:
        return sum(1 for t, c, r in allowed if t > now - window and match(c, r))

    checks = [
        (
            LimitKind.CALL_COOLDOWN,
            replaces and count(LIMITS.resend_cooldown_seconds, lambda c, r: c == call) >= 1,
        ),
        (LimitKind.CALL_SENDS, count(86400, lambda c, r: c == call) >= LIMITS.sends_per_call),
        (
            LimitKind.RECIPIENT_HOUR,
            count(3600, lambda c, r: r == to) >= LIMITS.per_recipient_per_hour,
        ),
        (
            LimitKind.RECIPIENT_DAY,
            count(86400, lambda c, r: r == to) >= LIMITS.per_recipient_per_day,
        ),
        (LimitKind.AGENT_RATE, count(60, lambda c, r: True) >= LIMITS.agent_sends_per_minute),
    ]
    return next((kind for kind, refused in checks if refused), None)


@given(st.lists(STEPS, max_size=80))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_store_never_exceeds_a_limit_within_any_window(steps):
    async def run() -> list[tuple[float, int, int]]:
        store = InProcessCounterStore(sweep_every=7)  # sweep often: it must not change answers
        clock = FakeClock()
        limiter = SendLimiter(store, LIMITS, agent_id="agent", clock=clock)
        allowed: list[tuple[float, int, int]] = []
        for op, arg in steps:
            if op == "advance":
                clock.advance(arg)
                continue
            call, to, replaces = arg
            expected = model_decision(allowed, clock.now, call, to, replaces)
            refusal = await limiter.try_send(f"call-{call}", number(to), replaces_pending=replaces)
            assert (refusal.kind if refusal else None) == expected
            if refusal is None:
                allowed.append((clock.now, call, to))
        return allowed

    allowed = asyncio.run(run())

    # The invariant itself, independent of the model: no window ever holds more than its limit.
    for t, _, _ in allowed:

        def within(window: float, t=t) -> list[tuple[float, int, int]]:
            return [s for s in allowed if t - window < s[0] <= t]

        assert len(within(60)) <= LIMITS.agent_sends_per_minute
        for who in range(4):
            assert len([s for s in within(86400) if s[1] == who]) <= LIMITS.sends_per_call
        for to in range(3):
            assert len([s for s in within(3600) if s[2] == to]) <= LIMITS.per_recipient_per_hour
            assert len([s for s in within(86400) if s[2] == to]) <= LIMITS.per_recipient_per_day


async def test_a_refund_goes_on_past_a_rule_with_no_hits_left():
    """A refund walks every rule of the send: one whose hits are gone (swept, or another
    replica's refund) must not stop the ones after it."""
    store = InProcessCounterStore()
    gone = Rule(LimitKind.RECIPIENT_HOUR, "to:gone", 5, 3600.0)
    kept = Rule(LimitKind.AGENT_RATE, "agent", 5, 60.0)
    await store.acquire([kept], 10.0, member="m")
    await store.refund([gone, kept], 10.0, "m")
    assert await store.count("agent", 60.0, 10.0) == 0


async def test_a_refund_at_a_time_after_every_hit_removes_nothing():
    store = InProcessCounterStore()
    rule = Rule(LimitKind.AGENT_RATE, "agent", 5, 60.0)
    await store.acquire([rule], 10.0, member="m")
    await store.refund([rule], 11.0, "m")  # no hit at 11.0: nothing to take back
    assert await store.count("agent", 60.0, 11.0) == 1
