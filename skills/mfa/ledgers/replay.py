"""The same answer to the same request: SWAIG tools made idempotent.

SignalWire sends a SWAIG request again after a timeout, a connection failure or
a 5xx. A retried ``verify_mfa`` after a success would reach SignalWire again
(404: "already used") and a retried ``send_mfa`` would text a second code that
replaces the one the caller holds. So a request that consumed something upstream
is remembered under its fingerprint::

    fingerprint = hex(HMAC-SHA256(replay_key, JSON ["mfa-replay-v1", call_id, tool,
                                                     sorted normalised args, prior]))

where ``prior`` is the call's state before the request (the ``mfa_binding`` of
the pending code, the ``mfa_closed`` marker, or ``"none"``; see ``binding.py``)
and the args are the normalised code digits (verify) or the resolved recipient
and account (send). The key is keyed by the server key, so a store dump does not
reveal which codes were tried.

A repeat with the same fingerprint gets the recorded answer (same text, same
``set_meta_data``, same ``global_data``), nothing upstream, nothing counted,
published as ``replayed``. Anything genuinely new has another fingerprint: a
different code, a resend once the first answer was applied (the prior state
changed), a new send after a final outcome (``mfa_closed`` is new each time).

Only answers that consumed something upstream are recorded (``RECORDED``); any
other outcome releases the claim, so a retry of it is tried again.

A claim is taken before the work (``pending`` with a short expiry) so that a
concurrent duplicate never goes upstream: it waits a little for the record and
otherwise gets the "not confirmed" answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import Outcome
from skills.mfa.ledgers.binding import canonical

RECORDED = frozenset(
    {
        Outcome.CODE_SENT,
        Outcome.VERIFIED,
        Outcome.WRONG_CODE,
        Outcome.EXHAUSTED,
        Outcome.EXPIRED,
    }
)
PENDING_PREFIX = "p:"
RECORD_PREFIX = "r:"


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """One request's hold on its fingerprint: ``key`` in the store, ``token`` ours."""

    key: str
    token: str
    pending_seconds: float


@dataclass(frozen=True, slots=True)
class Found:
    """What a claim found: a recorded answer, or ``None`` while another copy is in flight."""

    record: str | None


class AnswerStore(Protocol):
    """Claims and recorded answers. ``claim`` is one atomic step (one round trip)."""

    async def claim(self, claim: ReplayClaim) -> Found | None:
        """Take the fingerprint (``None``) or say what holds it."""
        ...

    async def peek(self, key: str) -> Found | None:
        """What holds ``key`` now, if anything (the slow path of a duplicate)."""
        ...

    def record(self, claim: ReplayClaim, record: str, ttl_seconds: float) -> None:
        """Keep the answer unless one is recorded already (compare-and-set: a record
        only moves from pending to final, never from one answer to another); may
        complete in the background (then a duplicate waits)."""
        ...

    def release(self, claim: ReplayClaim) -> None:
        """Give the fingerprint back if it is still ours; may complete in the background."""
        ...


def found_in(value: str | bytes | None) -> Found | None:
    """Read a stored value: ``p:<token>`` (in flight) or ``r:<json>`` (the answer)."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    if text.startswith(RECORD_PREFIX):
        return Found(text[len(RECORD_PREFIX) :])
    return Found(None)


class InProcessAnswerStore:
    """Answers in this process: bounded (oldest dropped first) and expiring."""

    def __init__(
        self, *, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, claim: ReplayClaim) -> Found | None:
        """``claim`` without awaiting: the counter store calls it under its own lock."""
        held = self._live(claim.key)
        if held is not None:
            return found_in(held)
        self._put(claim.key, PENDING_PREFIX + claim.token, claim.pending_seconds)
        return None

    async def claim(self, claim: ReplayClaim) -> Found | None:
        return self.take(claim)

    async def peek(self, key: str) -> Found | None:
        return self.peek_now(key)

    def peek_now(self, key: str) -> Found | None:
        return found_in(self._live(key))

    def record(self, claim: ReplayClaim, record: str, ttl_seconds: float) -> None:
        # Pending to final only: a recorded answer is never replaced by another one.
        held = self._live(claim.key)
        if held is not None and held.startswith(RECORD_PREFIX):
            return
        self._put(claim.key, RECORD_PREFIX + record, ttl_seconds)

    def release(self, claim: ReplayClaim) -> None:
        if self._live(claim.key) == PENDING_PREFIX + claim.token:
            del self._entries[claim.key]

    def _live(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def _put(self, key: str, value: str, ttl_seconds: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() + ttl_seconds, value)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class Replays:
    """Fingerprints requests and turns stored records back into answers."""

    def __init__(
        self,
        store: AnswerStore,
        key: bytes,
        *,
        record_seconds: float,
        pending_seconds: float = 15.0,
        wait_seconds: float = 2.0,
        poll_seconds: float = 0.025,
    ) -> None:
        self.store = store
        self._key = hmac.new(key, b"mfa-replay-v1", hashlib.sha256).digest()
        # At least the platform's retry window (4 tries 120 s apart), at most an hour.
        self._record_seconds = min(max(record_seconds, 600.0), 3600.0)
        self._pending_seconds = pending_seconds
        self._wait_seconds = min(wait_seconds, 2.0)
        self._poll_seconds = poll_seconds

    def claim_for(
        self, call_id: str, tool: str, args: Mapping[str, str | None], prior: str
    ) -> ReplayClaim:
        fields = [
            "mfa-replay-v1",
            call_id,
            tool,
            sorted([name, value] for name, value in args.items()),
            prior,
        ]
        digest = hmac.new(self._key, canonical(fields), hashlib.sha256).hexdigest()
        return ReplayClaim(f"replay:{digest}", secrets.token_hex(8), self._pending_seconds)

    async def claim(self, claim: ReplayClaim) -> Found | None:
        return await self.store.claim(claim)

    def settle(self, claim: ReplayClaim, answer: ToolAnswer | None) -> None:
        """Record an answer that consumed something upstream; release the claim otherwise."""
        if answer is not None and answer.outcome in RECORDED:
            self.store.record(claim, encode(answer), self._record_seconds)
        else:
            self.store.release(claim)

    async def answer(self, found: Found, claim: ReplayClaim, in_flight: ToolAnswer) -> ToolAnswer:
        """The recorded answer as a replay; ``in_flight`` when the first copy has not
        finished within the wait (it is never sent upstream a second time)."""
        deadline = time.monotonic() + self._wait_seconds
        while found.record is None:
            if time.monotonic() >= deadline:
                return in_flight
            await asyncio.sleep(self._poll_seconds)
            again = await self.store.peek(claim.key)
            if again is None:
                return in_flight  # the first copy ended without a recorded answer
            found = again
        return decode(found.record)


def encode(answer: ToolAnswer) -> str:
    return json.dumps(
        {
            "outcome": str(answer.outcome),
            "text": answer.text,
            "attempts_left": answer.attempts_left,
            "last4": answer.number_last4,
            "set": dict(answer.set_meta_data),
            "unset": list(answer.unset_meta_data),
            "global": dict(answer.global_data),
            "unset_global": list(answer.unset_global_data),
            "account": answer.account,
            "channel": answer.channel,
        },
        separators=(",", ":"),
    )


def decode(record: str) -> ToolAnswer:
    """The recorded reply, published as ``replayed`` (never a second final outcome)."""
    data = json.loads(record)
    return ToolAnswer(
        Outcome.REPLAYED,
        data["text"],
        attempts_left=data["attempts_left"],
        number_last4=data["last4"],
        set_meta_data=data["set"],
        unset_meta_data=tuple(data["unset"]),
        global_data=data["global"],
        # Absent from records written before these fields existed.
        unset_global_data=tuple(data.get("unset_global", ())),
        account=data.get("account", ""),
        channel=data.get("channel", ""),
        first_outcome=Outcome(data["outcome"]),
    )
