"""SMS pumping protection: many numbers in one range, each texted once, never verified.

Pumping (toll fraud) asks for codes to numbers whose owners are paid per text received;
nobody ever enters those codes. The per-call and per-number limits (``limits.py``) do not
see it (each number is new), and the agent-wide cap stops everyone at once. This module
adds what Twilio's Verify Fraud Guard and Telnyx's verification guide describe:

================  ===============================================  ======================
rule              what                                             default
================  ===============================================  ======================
prefix velocity   texts to one prefix (E.164 minus its last 4)     10 an hour
country velocity  texts to one country calling code                200 an hour
conversion        share of codes verified in a country or prefix   under 20% (once 20
                  over the last hour (codes younger than 5 min     were sent there):
                  not yet counted); below the floor, further       wait
                  texts there wait until old sends age out
block list        prefixes or countries never texted               none
allow list        prefixes or countries none of the above apply to none
================  ===============================================  ======================

The velocity rules are two more ``Rule``s in the limiter's one atomic step, so they hold
on both backends (in-process, Redis) exactly like the others. Conversion needs what was
verified: the guard remembers which prefix each call was last texted at
(``Destinations``) and, when a ``verified`` event is published, counts one success for
that prefix and its country. Its check reads two counts before the atomic step, so a
burst of parallel sends may pass the floor by a few; the velocity rules still bound it.

The lists are a text file (``pumping.lists_path``), one entry a line, reloaded like the
account directory (taken only when settled and unchanged while read)::

    # comments and blank lines are ignored
    block +234          a country: its calling code
    block +4470         a prefix of any length
    allow +1202555      the longest match wins; a tie blocks

A refusal is a ``Refusal`` like any other limit's: the caller hears the same neutral
sentence, nothing is texted, and the event names the limit (``MfaEvent.limit``). Keys
hold a hash of a prefix, never the digits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.limits.pumping_lists import ListsFile
from skills.mfa.limits.send_limits import (
    CounterStore,
    CounterStoreUnavailable,
    LimitKind,
    Refusal,
    Rule,
)
from skills.mfa.log_throttle import throttled_alerts
from skills.mfa.phone import country_code_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

alerts = throttled_alerts()  # once a minute per kind, with a count
log = logging.getLogger("mfa.pumping")

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PumpingLimits:
    """From the ``pumping`` section of the YAML file."""

    per_prefix_per_hour: int = 10
    per_country_per_hour: int = 200
    conversion_floor: float = 0.2
    conversion_min_sent: int = 20
    # A code sent less than this long ago has not had its chance to be read back yet: it
    # is not counted as unverified (a morning's first twenty callers are not pumping).
    conversion_grace_seconds: float = 300.0


def prefix_of(e164: str) -> str:
    """The number's range: the E.164 number without its last four digits."""
    return e164[:-4]


def _hashed(prefix: str) -> str:
    return hashlib.sha256(b"mfa-prefix:" + prefix.encode()).hexdigest()[:24]


# -- which prefix each call was last texted at --------------------------------------------


class Destinations(Protocol):
    async def remember(self, call_id: str, prefix: str, ttl: float) -> None: ...

    async def recall(self, call_id: str) -> str | None: ...


class InProcessDestinations:
    """Bounded: the oldest entries go first past ``max_entries``."""

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    async def remember(self, call_id: str, prefix: str, ttl: float) -> None:
        with self._lock:
            self._entries.pop(call_id, None)
            self._entries[call_id] = (self._clock() + ttl, prefix)
            while len(self._entries) > self._max:
                del self._entries[next(iter(self._entries))]

    async def recall(self, call_id: str) -> str | None:
        with self._lock:
            entry = self._entries.get(call_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]


class RedisDestinations:
    """Shared by the replicas: a key per call that expires on its own."""

    def __init__(self, redis: Redis, *, prefix: str = "mfa") -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, call_id: str) -> str:
        return f"{self._prefix}:pump:call:{call_id}"

    async def remember(self, call_id: str, prefix: str, ttl: float) -> None:
        from skills.mfa.redis_client import REDIS_ERRORS

        try:
            await self._redis.set(self._key(call_id), prefix, px=max(1, int(ttl * 1000)))
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None

    async def recall(self, call_id: str) -> str | None:
        from skills.mfa.redis_client import REDIS_ERRORS

        try:
            value = await self._redis.get(self._key(call_id))
        except REDIS_ERRORS:
            raise CounterStoreUnavailable("redis") from None
        return value.decode() if isinstance(value, bytes) else value


# -- the guard ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str  # "prefix" or "country"
    sent_key: str
    verified_key: str
    limit: int
    kind: LimitKind


class PumpingGuard:
    """What ``SendLimiter`` asks before and during each send, and what a verification
    tells it (``on_event``, subscribed to the event publisher)."""

    def __init__(
        self,
        store: CounterStore,
        limits: PumpingLimits,
        destinations: Destinations,
        *,
        lists: ListsFile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits
        self._destinations = destinations
        self._lists = lists
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def _scopes(self, e164: str) -> list[_Scope]:
        prefix = _hashed(prefix_of(e164))
        country = str(country_code_of(e164) or 0)
        return [
            _Scope(
                "prefix",
                f"pump:p:{prefix}",
                f"pump:ok:p:{prefix}",
                self._limits.per_prefix_per_hour,
                LimitKind.PREFIX_HOUR,
            ),
            _Scope(
                "country",
                f"pump:c:{country}",
                f"pump:ok:c:{country}",
                self._limits.per_country_per_hour,
                LimitKind.COUNTRY_HOUR,
            ),
        ]

    def _listed(self, e164: str) -> str | None:
        return self._lists.current().verdict(e164) if self._lists is not None else None

    def rules(self, e164: str) -> list[Rule]:
        """The velocity rules of a send to ``e164`` (none for an allow-listed number)."""
        if self._listed(e164) == "allow":
            return []
        return [Rule(s.kind, s.sent_key, s.limit, HOUR) for s in self._scopes(e164)]

    async def refusal(self, e164: str, now: float) -> Refusal | None:
        """The block list, then conversion, for a send to ``e164``. Raises
        ``CounterStoreUnavailable`` like the other limits."""
        listed = self._listed(e164)
        if listed == "block":
            return Refusal(LimitKind.BLOCKED, retry_after=HOUR)
        if listed == "allow":
            return None
        grace = self._limits.conversion_grace_seconds
        scopes = self._scopes(e164)
        # Every count the rules below may read, in one step of the store (one round trip
        # to Redis instead of up to six): per scope, sent in the hour, sent within the
        # grace, verified in the hour.
        counts = await self._store.counts(
            [
                query
                for s in scopes
                for query in ((s.sent_key, HOUR), (s.sent_key, grace), (s.verified_key, HOUR))
            ],
            now,
        )
        for at, scope in enumerate(scopes):
            sent, recent, verified = counts[3 * at : 3 * at + 3]
            # Sends of the last hour, less those still within their grace period.
            if sent < self._limits.conversion_min_sent:
                continue
            if grace > 0:
                sent -= recent
                if sent < self._limits.conversion_min_sent:
                    continue
            if verified < self._limits.conversion_floor * sent:
                alerts.error(
                    "sms_pumping_suspected",
                    extra={
                        "scope": scope.name,
                        "country": country_code_of(e164),
                        "sent": sent,
                        "verified": verified,
                    },
                )
                return Refusal(LimitKind.CONVERSION, retry_after=HOUR)
        return None

    async def remember(self, call_id: str, e164: str) -> None:
        """After a send was counted: where this call's newest code went, for its verify.
        Best effort: a lost record costs one verification in the conversion count, while
        failing here would refuse a send already counted."""
        if not call_id:
            return
        try:
            await self._destinations.remember(call_id, prefix_of(e164), HOUR)
        except CounterStoreUnavailable:
            log.warning("pumping_destination_not_kept")

    def on_event(self, event: MfaEvent) -> None:
        """Publisher subscriber: a verification counts for its prefix and country."""
        if event.outcome is not Outcome.VERIFIED or not event.call_id:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # published outside the server's loop: nothing to count with
        task = loop.create_task(self.note_verified(event.call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def note_verified(self, call_id: str) -> None:
        try:
            prefix = await self._destinations.recall(call_id)
            if prefix is None:
                return
            # Any number with this prefix shares its scopes: the digits after it are not used.
            scopes = self._scopes(prefix + "0000")
            rules = [
                Rule(LimitKind.CONVERSION, s.verified_key, 1, HOUR, enforce=False) for s in scopes
            ]
            await self._store.acquire(rules, self._clock())
        except CounterStoreUnavailable:
            log.warning("pumping_verified_not_counted")
