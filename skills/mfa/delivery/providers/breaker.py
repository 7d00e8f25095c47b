"""A circuit breaker around a code provider.

When SignalWire is down every caller would wait for the full deadline (8 s of
silence) before hearing an apology. After ``failure_threshold`` consecutive
"unavailable" answers the breaker opens: calls fail at once with
``ProviderUnavailable("circuit_open")`` for ``open_seconds``. Then one trial
call is let through (half-open); its success closes the breaker, its failure
opens it again. Only ``ProviderUnavailable`` counts: a wrong code, an expired
request or a refused number are answers, not outages.

The state sits behind ``BreakerState`` so that replicas can share it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from skills.mfa.delivery.providers.base import (
    CodeProvider,
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)

T = TypeVar("T")


@dataclass
class BreakerSnapshot:
    failures: int = 0
    open_until: float = 0.0
    trial_in_flight: bool = False


class BreakerState(Protocol):
    async def before_call(self, now: float, open_seconds: float) -> bool:
        """True when a call may go through (closed, or the one half-open trial)."""
        ...

    async def record(self, ok: bool, now: float, threshold: int, open_seconds: float) -> None:
        """Count a success (resets) or a failure (opens at the threshold)."""
        ...

    async def snapshot(self) -> BreakerSnapshot: ...


class InProcessBreakerState:
    """Breaker state for one process; all steps run on the event loop, so no lock is needed."""

    def __init__(self) -> None:
        self._state = BreakerSnapshot()

    async def before_call(self, now: float, open_seconds: float) -> bool:
        state = self._state
        if state.open_until == 0.0:
            return True
        if now < state.open_until:
            return False
        # One trial at a time; a trial that never reported back (cancelled) must not
        # wedge the breaker, so it is forgotten after another open period.
        if state.trial_in_flight and now < state.open_until + open_seconds:
            return False
        state.trial_in_flight = True
        return True

    async def record(self, ok: bool, now: float, threshold: int, open_seconds: float) -> None:
        state = self._state
        if ok:
            self._state = BreakerSnapshot()
            return
        state.failures += 1
        state.trial_in_flight = False
        if state.failures >= threshold or state.open_until:
            state.open_until = now + open_seconds

    async def snapshot(self) -> BreakerSnapshot:
        return BreakerSnapshot(**vars(self._state))


class CircuitBreaker:
    """The breaker itself, for any upstream: only ``outage`` errors count as failures.

    ``open_error`` builds what a call raises while the breaker is open (its coroutine
    never runs). Any other exception is an answer from a working upstream and resets
    the count, as a success does.
    """

    def __init__(
        self,
        *,
        state: BreakerState | None = None,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        outage: type[Exception] = ProviderUnavailable,
        open_error: Callable[[], Exception] = lambda: ProviderUnavailable(
            "circuit_open", may_have_arrived=False
        ),
    ) -> None:
        self._state = state or InProcessBreakerState()
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._outage = outage
        self._open_error = open_error

    async def run(self, work: Awaitable[T]) -> T:
        if not await self._state.before_call(self._clock(), self._open_seconds):
            close = getattr(work, "close", None)
            if close is not None:
                close()  # the coroutine never runs
            raise self._open_error()
        try:
            result = await work
        except self._outage:
            await self._record(False)
            raise
        except Exception:
            await self._record(True)  # an answer such as 404 or 422: the upstream is up
            raise
        await self._record(True)
        return result

    async def is_open(self) -> bool:
        snapshot = await self._state.snapshot()
        return snapshot.open_until > self._clock()

    async def _record(self, ok: bool) -> None:
        await self._state.record(ok, self._clock(), self._threshold, self._open_seconds)


class CircuitBreakerProvider:
    """Wraps a ``CodeProvider``; same protocol, fails fast while the upstream is down."""

    def __init__(
        self,
        inner: CodeProvider,
        *,
        state: BreakerState | None = None,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._breaker = CircuitBreaker(
            state=state,
            failure_threshold=failure_threshold,
            open_seconds=open_seconds,
            clock=clock,
        )

    async def send(self, request: SendRequest) -> SentCode:
        return await self._breaker.run(self.inner.send(request))

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        return await self._breaker.run(self.inner.verify(request_id, code))

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def is_open(self) -> bool:
        return await self._breaker.is_open()
