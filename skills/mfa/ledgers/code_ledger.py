"""One record per code, kept by the agent: finished means finished.

``meta_data`` is a claim the request carries, so it cannot say how often a code
was checked or whether it already reached a final outcome: a flood of verifies
with the same sealed state and different codes would each look like a first
try. The ledger keeps those facts where the counters live (this process, or
the replicas' Redis), keyed by a digest of (call id, request id):

- ``checks``: upstream checks begun, at most ``max_attempts`` per code, so a
  call makes at most ``sends_per_call x max_attempts`` whatever arrives;
- ``settled``: checks whose answer came back;
- ``final``: the first final answer (verified, exhausted, expired), set by
  compare-and-set and never replaced. Once set, the code is finished: no
  further check begins, and a check still in flight that ends later gets the
  recorded answer instead of producing a second final outcome.

It also keeps the latest code sent per call, so a sealed state older than the
call's latest send is refused without an upstream call ("only the newest code
verifies", also when the request carries an older copy of ``meta_data``).

Every entry expires on its own (``ttl_seconds``, longer than a code can live);
``MfaTools`` refuses a state older than that without asking the ledger, so an
expired entry is never mistaken for a fresh code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from skills.mfa.ledgers.binding import canonical


@dataclass(frozen=True, slots=True)
class Check:
    """This request may check the code upstream: it is check ``number`` (from 1)."""

    number: int


@dataclass(frozen=True, slots=True)
class Superseded:
    """A newer code was sent on this call: this one no longer verifies."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The code reached a final outcome; ``record`` is its answer (``replay.encode``)."""

    record: str


@dataclass(frozen=True, slots=True)
class Busy:
    """Every check is taken and one is still in flight: nothing more goes upstream."""


@dataclass(frozen=True, slots=True)
class Spent:
    """Every check is taken and came back, none final (an outage ate the last one)."""


Gate = Check | Superseded | Finished | Busy | Spent


class LedgerUnavailable(Exception):
    """The ledger cannot be reached: nothing goes upstream (fail closed)."""


class CodeLedger(Protocol):
    async def sent(self, call_id: str, request_id: str, ttl_seconds: float) -> None:
        """``request_id`` is now the call's newest code."""
        ...

    async def begin(
        self, call_id: str, request_id: str, max_checks: int, ttl_seconds: float
    ) -> Gate:
        """One atomic step: refuse an older code, report a finished, busy or spent one,
        or count one more check and allow it."""
        ...

    async def settle(
        self,
        call_id: str,
        request_id: str,
        *,
        final: str | None,
        checked: bool,
        counted: bool = True,
        ttl_seconds: float,
    ) -> str | None:
        """End a check begun by ``begin``: ``counted`` False gives it back (it never
        reached the provider); ``checked`` False touches no count (a final decided
        without a check). ``final``, when no final is recorded yet, becomes the code's
        final. Returns the code's final after this step (ours or an earlier one)."""
        ...


def code_key(call_id: str, request_id: str) -> str:
    """Keys hold digests: a store dump names no call and no request id."""
    return hashlib.sha256(canonical(["mfa-code-v1", call_id, request_id])).hexdigest()[:32]


def call_key(call_id: str) -> str:
    return hashlib.sha256(canonical(["mfa-call-v1", call_id])).hexdigest()[:32]


@dataclass(slots=True)
class _Entry:
    expires_at: float
    checks: int = 0
    settled: int = 0
    final: str | None = None


class InProcessCodeLedger:
    """The ledger in this process. Each method runs without awaiting, so each is
    atomic on the event loop. Entries expire on ``clock`` (the one clock of every
    in-process store) and are swept now and then."""

    def __init__(self, *, clock: Callable[[], float], sweep_every: int = 1000) -> None:
        self._clock = clock
        self._codes: dict[str, _Entry] = {}
        self._latest: dict[str, tuple[float, str]] = {}
        self._sweep_every = sweep_every
        self._since_sweep = 0

    def __len__(self) -> int:
        return len(self._codes) + len(self._latest)

    async def sent(self, call_id: str, request_id: str, ttl_seconds: float) -> None:
        self._latest[call_key(call_id)] = (
            self._clock() + ttl_seconds,
            code_key(call_id, request_id),
        )
        self._maybe_sweep()

    async def begin(
        self, call_id: str, request_id: str, max_checks: int, ttl_seconds: float
    ) -> Gate:
        now = self._clock()
        key = code_key(call_id, request_id)
        latest = self._latest.get(call_key(call_id))
        if latest is not None and latest[0] > now and latest[1] != key:
            return Superseded()
        entry = self._entry(key, now, ttl_seconds)
        if entry.final is not None:
            return Finished(entry.final)
        if entry.checks >= max_checks:
            return Spent() if entry.settled >= entry.checks else Busy()
        entry.checks += 1
        self._maybe_sweep()
        return Check(entry.checks)

    async def settle(
        self,
        call_id: str,
        request_id: str,
        *,
        final: str | None,
        checked: bool,
        counted: bool = True,
        ttl_seconds: float,
    ) -> str | None:
        entry = self._entry(code_key(call_id, request_id), self._clock(), ttl_seconds)
        if checked and not counted:
            entry.checks = max(0, entry.checks - 1)
        elif checked:
            entry.settled += 1
        if entry.final is None and final is not None:
            entry.final = final
        return entry.final

    def _entry(self, key: str, now: float, ttl_seconds: float) -> _Entry:
        entry = self._codes.get(key)
        if entry is None or entry.expires_at <= now:
            entry = self._codes[key] = _Entry(expires_at=now + ttl_seconds)
        return entry

    def _maybe_sweep(self) -> None:
        self._since_sweep += 1
        if self._since_sweep < self._sweep_every:
            return
        self._since_sweep = 0
        now = self._clock()
        for key in [k for k, e in self._codes.items() if e.expires_at <= now]:
            del self._codes[key]
        for key in [k for k, (expires, _) in self._latest.items() if expires <= now]:
            del self._latest[key]
