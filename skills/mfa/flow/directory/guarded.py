"""A directory behind a circuit breaker, like the code provider.

When the business's server is down, every account caller would wait the full
deadline before hearing an apology; after ``failure_threshold`` outages in a row
the breaker answers at once for ``open_seconds``. Only ``DirectoryUnavailable``
counts as an outage: a 404 (unknown account) or a 401 (bad secret) is an answer
from a server that is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from skills.mfa.delivery.providers.breaker import BreakerState, CircuitBreaker
from skills.mfa.flow.directory.base import Directory, DirectoryUnavailable


class GuardedDirectory:
    def __init__(self, inner: Directory, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.name = inner.name
        self._breaker = breaker

    async def lookup(self, account: str) -> str | None:
        return await self._breaker.run(self.inner.lookup(account))

    async def is_open(self) -> bool:
        return await self._breaker.is_open()


def directory_breaker(
    *,
    state: BreakerState | None = None,
    failure_threshold: int = 5,
    open_seconds: float = 30.0,
    clock: Callable[[], float] = time.time,
) -> CircuitBreaker:
    """A ``CircuitBreaker`` that counts ``DirectoryUnavailable`` and raises it when open."""
    return CircuitBreaker(
        state=state,
        failure_threshold=failure_threshold,
        open_seconds=open_seconds,
        clock=clock,
        outage=DirectoryUnavailable,
        open_error=lambda: DirectoryUnavailable("circuit_open"),
    )
