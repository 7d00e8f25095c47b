"""One final outcome as the outbox keeps it, and the question the history asks of it.

An ``OutboxEntry`` is written once per final outcome (verified, exhausted, expired)
before the tool answers. It holds two views of the outcome: what the history shows
(the number and the account masked, the handoff, the time, where delivery stands) and
the exact webhook body to POST (which carries the whole account number the business
needs). ``state`` is ``pending`` until the receiver took it (``delivered``) or delivery
gave up (``dead``); ``none`` when no receiver is configured.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from skills.mfa.events import MfaEvent
from skills.mfa.phone import mask_account

#: What ``/outcomes`` may return at once, and what it returns when not told.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    #: No receiver configured: kept for the history only.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str  # the delivery id, the same on every attempt (X-MFA-Delivery)
    call_id: str
    outcome: str
    masked_number: str
    last4: str
    masked_account: str
    handoff: dict[str, str] | str | None
    at: float  # when the outcome happened (unix seconds)
    body: bytes  # the webhook body, exactly as signed and sent
    state: DeliveryState
    attempts: int = 0
    next_at: float = 0.0  # the next attempt, not before (unix seconds)

    @property
    def channel(self) -> str | None:
        """How the code went, as the webhook body (kept verbatim) says: ``sms`` or ``call``."""
        return self._said("channel")

    @property
    def provider(self) -> str | None:
        """Who checked the code, as the body says: ``signalwire`` or ``sandbox`` (a sandbox
        outcome verified nobody's phone); ``None`` for rows written before it was kept."""
        return self._said("provider")

    def _said(self, key: str) -> str | None:
        try:
            said = json.loads(self.body).get(key)
        except (ValueError, AttributeError):
            return None
        return said if isinstance(said, str) else None

    def history_row(self) -> dict[str, Any]:
        """What ``GET /outcomes`` shows: nothing but masked numbers."""
        return {
            "call_id": self.call_id,
            "outcome": self.outcome,
            "subject": {
                "number": self.masked_number or None,
                "account": self.masked_account or None,
            },
            "handoff": self.handoff,
            "channel": self.channel,
            "provider": self.provider,
            "at": iso_time(self.at),
            "delivery": (
                None
                if self.state is DeliveryState.NONE
                else {"state": str(self.state), "attempts": self.attempts}
            ),
        }


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """``/outcomes`` filters, already checked (``history_routes.parse_query``)."""

    call_id: str | None = None
    last4: str | None = None
    since: float | None = None  # unix seconds, inclusive
    limit: int = DEFAULT_LIMIT

    def matches(self, entry: OutboxEntry) -> bool:
        return (
            (self.call_id is None or entry.call_id == self.call_id)
            and (self.last4 is None or entry.last4 == self.last4)
            and (self.since is None or entry.at >= self.since)
        )


def webhook_body(event: MfaEvent, provider: str | None = None) -> bytes:
    """The signed JSON body of the outcome webhook (README "Learn the outcome on your
    server"): no code, no request id, no full phone number; the account whole. ``provider``
    (``signalwire`` or ``sandbox``) tells a receiver, and the history, a sandbox outcome
    from a real one."""
    payload: dict[str, Any] = {
        "call_id": event.call_id,
        "agent_id": event.agent_id,
        "masked_number": event.masked_number,
        "outcome": str(event.outcome),
        "handoff": event.handoff,
        "at": event.at,
    }
    if event.account:  # the account the code went to the number on file of
        payload["account"] = event.account
    if event.channel:  # how the code went: "sms", or "call" (read out to a landline on file)
        payload["channel"] = event.channel
    if provider:
        payload["provider"] = provider
    return json.dumps(payload, separators=(",", ":")).encode()


def entry_of(event: MfaEvent, *, deliver: bool, provider: str | None = None) -> OutboxEntry:
    """The outbox entry of a final outcome; ``deliver``: a receiver is configured."""
    return OutboxEntry(
        id=str(uuid.uuid4()),
        call_id=event.call_id,
        outcome=str(event.outcome),
        masked_number=event.masked_number,
        last4=_last4(event.masked_number),
        masked_account=mask_account(event.account) if event.account else "",
        handoff=event.handoff,
        at=event.at,
        body=webhook_body(event, provider),
        state=DeliveryState.PENDING if deliver else DeliveryState.NONE,
        next_at=event.at,
    )


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def _last4(masked_number: str) -> str:
    digits = "".join(ch for ch in masked_number if ch.isdigit())
    return digits[-4:]
