"""Send limits: the defences against SMS pumping, code guessing and harassment.

Every send must pass all of these at once, checked and counted as one step:

=================  ===========================================  =====================
rule               why                                          default
=================  ===========================================  =====================
call cooldown      a caller hammering "send it again"           1 per 30 s per call
sends per call     one call cannot become a text cannon         3 per call
recipient / hour   harassment of one phone across many calls    5 per rolling hour
recipient / day    the same, slower                             10 per rolling day
agent rate cap     pumping bursts against the account           120 per minute
=================  ===========================================  =====================

The counters live behind ``CounterStore``: ``InProcessCounterStore`` here, a
shared store (Redis) when several replicas serve the agent. A store checks all
rules of one send and records them only when every rule allows it, so a refusal
never burns another rule's budget and concurrent sends never overshoot a limit.
Recipient keys hold a hash of the number, never the number.

A send counts only when it may have reached the provider: ``SendLimiter.refund``
takes back every hit of a send that provably never left (breaker open, no
connection made), atomically and at most once. ``acquire`` can also take a
replay claim (``replay.py``) in the same atomic step, so a send is still one
round trip to a shared store.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from skills.mfa.ledgers.code_ledger import CodeLedger, InProcessCodeLedger
from skills.mfa.ledgers.replay import AnswerStore, Found, InProcessAnswerStore, ReplayClaim


class LimitKind(StrEnum):
    CALL_COOLDOWN = "call_cooldown"
    CALL_SENDS = "call_sends"
    RECIPIENT_HOUR = "recipient_hour"
    RECIPIENT_DAY = "recipient_day"
    AGENT_RATE = "agent_rate"
    # SMS pumping (skills/mfa/limits/pumping.py)
    PREFIX_HOUR = "prefix_hour"
    COUNTRY_HOUR = "country_hour"
    CONVERSION = "conversion"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Rule:
    """At most ``limit`` hits on ``key`` within any ``window`` seconds.

    A rule with ``enforce=False`` is only recorded, so that a later send can be
    checked against it.
    """

    kind: LimitKind
    key: str
    limit: int
    window: float
    enforce: bool = True


class CounterStoreUnavailable(Exception):
    """The shared counters cannot be reached; the send is refused (fail closed)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: LimitKind
    retry_after: float


class CounterStore(Protocol):
    """Sliding-window counters; ``acquire`` is atomic over all its rules and the claim.

    ``answers`` is the replay store that ``acquire`` takes claims in, and ``ledger``
    the record of each code's checks and final answer, both living where the
    counters live (this process, or the same Redis).
    """

    answers: AnswerStore
    ledger: CodeLedger

    async def acquire(
        self,
        rules: Sequence[Rule],
        now: float,
        *,
        member: str = "",
        claim: ReplayClaim | None = None,
    ) -> Refusal | Found | None:
        """With ``claim``: when its fingerprint is held, return what holds it and record
        nothing. Then record one hit (named ``member``) on every rule, take the claim and
        return None, or record nothing and return the first rule that refuses."""
        ...

    async def refund(self, rules: Sequence[Rule], now: float, member: str) -> None:
        """Remove the hits ``acquire`` recorded for ``member``; a second call is a no-op."""
        ...

    async def count(self, key: str, window: float, now: float) -> int:
        """Hits on ``key`` within the last ``window`` seconds, recording nothing."""
        ...

    async def counts(self, queries: Sequence[tuple[str, float]], now: float) -> list[int]:
        """``count`` for each ``(key, window)``, read in one step (one round trip)."""
        ...


class SendGuard(Protocol):
    """More rules for a send, from outside this module (``pumping.PumpingGuard``)."""

    def rules(self, recipient_e164: str) -> list[Rule]:
        """Rules added to the send's atomic step."""
        ...

    async def refusal(self, recipient_e164: str, now: float) -> Refusal | None:
        """A refusal decided before the atomic step (lists, ratios)."""
        ...

    async def remember(self, call_id: str, recipient_e164: str) -> None:
        """Told of every send that was counted."""
        ...


@dataclass(slots=True)
class SendTicket:
    """A counted send, so that it can be refunded if it never left."""

    rules: tuple[Rule, ...]
    now: float
    member: str
    refunded: bool = False


class InProcessCounterStore:
    """Counters in this process: one lock, a sorted list of hit times per key.

    A key holds at most ``limit`` timestamps, and keys whose newest hit is older
    than their window are swept now and then, so memory stays bounded by the
    live traffic. Lists, not deques: most keys hold one or two hits, and an
    empty deque alone costs over 600 bytes.
    """

    def __init__(
        self,
        *,
        sweep_every: int = 1000,
        answers: InProcessAnswerStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``answers``: where replay claims are taken, in the same step as the counting.
        ``clock`` ages the replay records and the code ledger kept beside the counters:
        the same clock as the limiter's (which passes ``now`` to the counters), so a
        test that moves one moves every in-process window."""
        self.answers = answers or InProcessAnswerStore(clock=clock)
        self.ledger = InProcessCodeLedger(clock=clock)
        self._hits: dict[str, list[float]] = {}
        self._windows: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._sweep_every = sweep_every
        self._since_sweep = 0

    async def acquire(
        self,
        rules: Sequence[Rule],
        now: float,
        *,
        member: str = "",
        claim: ReplayClaim | None = None,
    ) -> Refusal | Found | None:
        async with self._lock:
            if claim is not None:
                # Peek before counting; take it only once every rule allows the send.
                found = self.answers.peek_now(claim.key)
                if found is not None:
                    return found
            for rule in rules:
                hits = self._live_hits(rule, now)
                if rule.enforce and len(hits) >= rule.limit:
                    return Refusal(rule.kind, retry_after=max(0.0, hits[0] + rule.window - now))
            for rule in rules:
                insort(self._hits.setdefault(rule.key, []), now)
                self._windows[rule.key] = max(self._windows.get(rule.key, 0.0), rule.window)
            if claim is not None:
                self.answers.take(claim)
            self._since_sweep += 1
            if self._since_sweep >= self._sweep_every:
                self._sweep(now)
        return None

    async def refund(self, rules: Sequence[Rule], now: float, member: str) -> None:
        """Hits are bare times here: one hit at ``now`` comes off each rule's list.
        ``SendLimiter`` calls this at most once per ticket; a hit already gone is skipped."""
        async with self._lock:
            for rule in rules:
                hits = self._hits.get(rule.key)
                if not hits:
                    continue
                at = bisect_left(hits, now)
                if at < len(hits) and hits[at] == now:
                    del hits[at]

    async def count(self, key: str, window: float, now: float) -> int:
        async with self._lock:
            hits = self._hits.get(key, [])
            return len(hits) - bisect_right(hits, now - window)

    async def counts(self, queries: Sequence[tuple[str, float]], now: float) -> list[int]:
        async with self._lock:
            found = []
            for key, window in queries:
                hits = self._hits.get(key, [])
                found.append(len(hits) - bisect_right(hits, now - window))
            return found

    def key_count(self) -> int:
        return len(self._hits)

    def _live_hits(self, rule: Rule, now: float) -> list[float]:
        hits = self._hits.get(rule.key)
        if hits is None:
            return []
        del hits[: bisect_right(hits, now - rule.window)]
        return hits

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        stale = [
            key
            for key, hits in self._hits.items()
            if not hits or hits[-1] <= now - self._windows.get(key, 0.0)
        ]
        for key in stale:
            self._hits.pop(key, None)
            self._windows.pop(key, None)


@dataclass(frozen=True, slots=True)
class SendLimits:
    """The numbers, from the settings."""

    sends_per_call: int = 3
    resend_cooldown_seconds: float = 30.0
    per_recipient_per_hour: int = 5
    per_recipient_per_day: int = 10
    agent_sends_per_minute: int = 120


class SendLimiter:
    """Builds the rules for one send and asks the store."""

    def __init__(
        self,
        store: CounterStore,
        limits: SendLimits,
        *,
        agent_id: str,
        clock: Callable[[], float] = time.time,
        guard: SendGuard | None = None,
    ) -> None:
        """``guard`` adds the SMS pumping rules (``pumping.PumpingGuard``)."""
        self._store = store
        self._limits = limits
        self._agent_id = agent_id
        self._clock = clock
        self._guard = guard

    @property
    def answers(self) -> AnswerStore:
        """The replay store the counters take claims in: the tools record answers there."""
        return self._store.answers

    @property
    def ledger(self) -> CodeLedger:
        """The code ledger beside the counters: the tools check and settle codes there."""
        return self._store.ledger

    async def try_send(
        self, call_id: str, recipient_e164: str, *, replaces_pending: bool
    ) -> Refusal | None:
        """Count one send, or say which limit refuses it (no claim, no refund)."""
        decision = await self.reserve(call_id, recipient_e164, replaces_pending=replaces_pending)
        return decision if isinstance(decision, Refusal) else None

    async def reserve(
        self,
        call_id: str,
        recipient_e164: str,
        *,
        replaces_pending: bool,
        claim: ReplayClaim | None = None,
    ) -> Refusal | Found | SendTicket:
        """Count one send and take ``claim`` in one atomic step, or say what stops it:
        a limit (``Refusal``) or an answer recorded for the same request (``Found``).

        Per-call rules are keyed by ``call_id``: the body's call id, the one the SDK
        checked the tool token against. The cooldown applies only while an earlier code
        of this call is still pending: a caller whose code expired or ran out of tries
        may ask for a new one at once (the per-call cap still bounds that).
        """
        rules = self._rules(call_id, recipient_e164, replaces_pending)
        now, member = self._clock(), uuid.uuid4().hex
        if self._guard is not None:
            # A platform retry of an answered send gets its answer, whatever the guard says.
            found = await self._store.answers.peek(claim.key) if claim is not None else None
            if found is not None:
                return found
            refusal = await self._guard.refusal(recipient_e164, now)
            if refusal is not None:
                return refusal
            rules += self._guard.rules(recipient_e164)
        decision = await self._store.acquire(rules, now, member=member, claim=claim)
        if decision is not None:
            return decision
        if self._guard is not None:
            await self._guard.remember(call_id, recipient_e164)
        return SendTicket(tuple(rules), now, member)

    async def refund(self, ticket: SendTicket) -> None:
        """Take back a send that never reached the provider; at most once per ticket."""
        if ticket.refunded:
            return
        ticket.refunded = True
        await self._store.refund(ticket.rules, ticket.now, ticket.member)

    def _rules(self, call_id: str, recipient_e164: str, replaces_pending: bool) -> list[Rule]:
        limits = self._limits
        recipient = recipient_key(recipient_e164)
        call = call_id or "unknown-call"
        return [
            Rule(
                LimitKind.CALL_COOLDOWN,
                f"cooldown:{call}",
                1,
                limits.resend_cooldown_seconds,
                enforce=replaces_pending,
            ),
            Rule(LimitKind.CALL_SENDS, _call_key(call), limits.sends_per_call, _CALL_WINDOW),
            Rule(
                LimitKind.RECIPIENT_HOUR, f"to:h:{recipient}", limits.per_recipient_per_hour, 3600.0
            ),
            Rule(
                LimitKind.RECIPIENT_DAY, f"to:d:{recipient}", limits.per_recipient_per_day, 86400.0
            ),
            Rule(
                LimitKind.AGENT_RATE, f"agent:{self._agent_id}", limits.agent_sends_per_minute, 60.0
            ),
        ]

    async def try_lookup(self) -> Refusal | None:
        """Count one account lookup in the agent-wide rate, or refuse it (``AGENT_RATE``).

        A lookup costs the business's directory what a send costs SignalWire, so a burst
        of lookups is a burst of work like a burst of sends: both draw on one budget."""
        rule = Rule(
            LimitKind.AGENT_RATE,
            f"agent:{self._agent_id}",
            self._limits.agent_sends_per_minute,
            60.0,
        )
        return await self._store.acquire([rule], self._clock())

    async def sends_left(self, call_id: str) -> int:
        """How many more codes this call may be sent, without counting one. Raises
        ``CounterStoreUnavailable`` like ``try_send``."""
        used = await self._store.count(
            _call_key(call_id or "unknown-call"), _CALL_WINDOW, self._clock()
        )
        return max(0, self._limits.sends_per_call - used)


_CALL_WINDOW = 86400.0


def _call_key(call: str) -> str:
    return f"call:{call}"


def recipient_key(e164: str) -> str:
    """A stable, non-reversible-at-a-glance key for a number (stores never hold numbers)."""
    return hashlib.sha256(b"mfa-recipient:" + e164.encode()).hexdigest()[:32]
