"""The circuit breaker: opens on outages in a row, fails fast, lets one trial through.

The inner provider is a small real implementation of the protocol whose next answers
are scripted; the clock is injected.
"""

from __future__ import annotations

import asyncio

import pytest

from skills.mfa.delivery.providers.base import (
    CodeNotFound,
    CodeProvider,
    ProviderRejected,
    ProviderUnavailable,
    SentCode,
    VerifyOutcome,
)
from skills.mfa.delivery.providers.breaker import CircuitBreakerProvider
from tests.support.fakes import SEND_REQUEST, FakeClock, ScriptedProvider, outage

pytestmark = pytest.mark.anyio

REQUEST = SEND_REQUEST


down = outage


def breaker(
    inner: ScriptedProvider, *, threshold: int = 3, open_seconds: float = 30.0
) -> tuple[CircuitBreakerProvider, FakeClock]:
    clock = FakeClock()
    return (
        CircuitBreakerProvider(
            inner, failure_threshold=threshold, open_seconds=open_seconds, clock=clock
        ),
        clock,
    )


async def expect_unavailable(work) -> ProviderUnavailable:
    with pytest.raises(ProviderUnavailable) as caught:
        await work
    return caught.value


def test_the_fake_follows_the_protocol():
    assert isinstance(ScriptedProvider(), CodeProvider)
    provider, _ = breaker(ScriptedProvider())
    assert isinstance(provider, CodeProvider)
    assert provider.name == "scripted"


async def test_opens_after_the_threshold_of_consecutive_outages():
    inner = ScriptedProvider().then(down(), down(), down())
    provider, _ = breaker(inner, threshold=3)

    for i in range(2):
        error = await expect_unavailable(provider.send(REQUEST))
        assert error.kind == "server_error"  # the real outage, passed through
        assert inner.calls == i + 1
        assert not await provider.is_open()

    error = await expect_unavailable(provider.verify("req-1", "000000"))
    assert error.kind == "server_error"
    assert inner.calls == 3
    assert await provider.is_open()

    error = await expect_unavailable(provider.send(REQUEST))
    assert error.kind == "circuit_open"
    assert error.may_have_arrived is False
    assert inner.calls == 3


async def test_fails_fast_without_calling_inner_while_open():
    inner = ScriptedProvider().then(down(), down())
    provider, clock = breaker(inner, threshold=2, open_seconds=30)
    for _ in range(2):
        await expect_unavailable(provider.send(REQUEST))
    assert inner.calls == 2

    for step in range(10):
        clock.now += 2.9  # up to 29 s into the open period
        work = provider.send(REQUEST) if step % 2 else provider.verify("req-1", "123456")
        assert (await expect_unavailable(work)).kind == "circuit_open"
    assert inner.calls == 2
    assert await provider.is_open()


async def test_half_open_lets_exactly_one_trial_through():
    inner = ScriptedProvider().then(down(), down())
    provider, clock = breaker(inner, threshold=2, open_seconds=30)
    for _ in range(2):
        await expect_unavailable(provider.send(REQUEST))
    clock.now += 30
    assert not await provider.is_open()

    inner.gate = asyncio.Event()
    inner.started.clear()
    trial = asyncio.create_task(provider.send(REQUEST))
    await asyncio.wait_for(inner.started.wait(), 5)
    assert inner.calls == 3

    # While the trial is out, everyone else fails fast.
    others = await asyncio.gather(
        *(provider.verify("req-1", "123456") for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, ProviderUnavailable) and o.kind == "circuit_open" for o in others)
    assert inner.calls == 3

    inner.gate.set()
    assert await asyncio.wait_for(trial, 5) == SentCode("req-3")

    # The trial succeeded: closed again, every request goes through.
    inner.gate = None
    outcomes = await asyncio.gather(*(provider.verify("req-3", "123456") for _ in range(5)))
    assert outcomes == [VerifyOutcome(verified=True)] * 5
    assert inner.calls == 8


async def test_a_failed_trial_opens_the_breaker_again():
    inner = ScriptedProvider().then(down(), down(), down())
    provider, clock = breaker(inner, threshold=2, open_seconds=30)
    for _ in range(2):
        await expect_unavailable(provider.send(REQUEST))
    clock.now += 31

    error = await expect_unavailable(provider.send(REQUEST))
    assert error.kind == "server_error"  # the trial ran and failed
    assert inner.calls == 3
    assert await provider.is_open()

    clock.now += 29
    assert (await expect_unavailable(provider.send(REQUEST))).kind == "circuit_open"
    assert inner.calls == 3

    clock.now += 1  # a full open period after the failed trial: another trial
    assert await provider.send(REQUEST) == SentCode("req-4")
    assert not await provider.is_open()
    # Closed again: a single new outage does not open it (the count was reset).
    inner.then(down())
    await expect_unavailable(provider.send(REQUEST))
    assert await provider.send(REQUEST) == SentCode("req-6")


async def test_a_cancelled_trial_does_not_wedge_the_breaker():
    inner = ScriptedProvider().then(down(), down())
    provider, clock = breaker(inner, threshold=2, open_seconds=30)
    for _ in range(2):
        await expect_unavailable(provider.send(REQUEST))
    clock.now += 30

    inner.gate = asyncio.Event()
    inner.started.clear()
    trial = asyncio.create_task(provider.send(REQUEST))
    await asyncio.wait_for(inner.started.wait(), 5)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    inner.gate = None

    # The lost trial still counts as in flight for one more open period...
    clock.now += 29
    assert (await expect_unavailable(provider.send(REQUEST))).kind == "circuit_open"
    # ... then a new trial is allowed.
    clock.now += 1
    assert await provider.send(REQUEST) == SentCode("req-4")


@pytest.mark.parametrize(
    "answer",
    [CodeNotFound("gone"), ProviderRejected(422, "bad number"), ProviderRejected(401)],
    ids=["not-found", "rejected-422", "rejected-401"],
)
async def test_answers_that_are_not_outages_reset_the_count(answer):
    inner = ScriptedProvider().then(down(), down(), answer, down(), down(), down())
    provider, _ = breaker(inner, threshold=3)

    await expect_unavailable(provider.send(REQUEST))
    await expect_unavailable(provider.send(REQUEST))
    with pytest.raises(type(answer)):
        await provider.verify("req-1", "123456")
    assert not await provider.is_open()

    # Two more outages: 2 in a row, not 4; still closed and still calling upstream.
    await expect_unavailable(provider.send(REQUEST))
    await expect_unavailable(provider.send(REQUEST))
    assert not await provider.is_open()
    assert inner.calls == 5

    assert (await expect_unavailable(provider.send(REQUEST))).kind == "server_error"
    assert inner.calls == 6
    assert await provider.is_open()
    assert (await expect_unavailable(provider.send(REQUEST))).kind == "circuit_open"
    assert inner.calls == 6


async def test_a_wrong_code_is_an_answer_too():
    inner = ScriptedProvider().then(down(), down())
    provider, _ = breaker(inner, threshold=3)
    await expect_unavailable(provider.send(REQUEST))
    await expect_unavailable(provider.send(REQUEST))
    assert await provider.verify("req-1", "000000") == VerifyOutcome(verified=False)
    inner.then(down(), down())
    await expect_unavailable(provider.send(REQUEST))
    await expect_unavailable(provider.send(REQUEST))
    assert not await provider.is_open()
    assert inner.calls == 5
