"""MFA outcome events: one record per tool outcome, published to whoever listens.

The publisher logs every event now; the live stream and the outcome webhook
subscribe to it. An event never holds a code, a request id, a token or a full
phone number: the number is masked before the event is built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from skills.mfa.phone import mask_account

log = logging.getLogger("mfa.events")


class Outcome(StrEnum):
    CODE_SENT = "code_sent"
    SEND_FAILED = "send_failed"
    OTHER_NUMBER_REFUSED = "other_number_refused"
    NO_CALLER_NUMBER = "no_caller_number"
    INVALID_NUMBER = "invalid_number"
    VERIFIED = "verified"
    WRONG_CODE = "wrong_code"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    MALFORMED_CODE = "malformed_code"
    NO_CODE_SENT = "no_code_sent"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_REJECTED = "provider_rejected"
    RATE_LIMITED = "rate_limited"
    COUNTRY_REFUSED = "country_refused"
    NUMBER_TYPE_REFUSED = "number_type_refused"
    ERROR = "error"
    ACCOUNT_REQUIRED = "account_required"
    ACCOUNT_UNCLEAR = "account_unclear"
    ACCOUNT_UNKNOWN = "account_unknown"
    ACCOUNT_LOCKED = "account_locked"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    #: meta_data that does not open for this call (copied, altered, malformed): refused.
    META_REFUSED = "tampered"
    #: a repeat of an answered request (a platform retry): the recorded answer again.
    REPLAYED = "replayed"
    #: a code older than the call's latest send: refused, nothing checked upstream.
    SUPERSEDED = "superseded"
    #: the number is a landline a text cannot reach, and no voice code applies to it.
    LANDLINE = "landline"
    #: the number's line type (VoIP, other) is one the operator refuses.
    LINE_TYPE_REFUSED = "line_type_refused"


FINAL_OUTCOMES = frozenset({Outcome.VERIFIED, Outcome.EXHAUSTED, Outcome.EXPIRED})


@dataclass(frozen=True, slots=True)
class MfaEvent:
    agent_id: str
    call_id: str
    tool: str
    outcome: Outcome
    masked_number: str
    provider: str
    duration_ms: float
    attempts_left: int | None = None
    # Where the call went next: {"kind": "transfer", "to": "***4567" or a SIP URI}, or
    # "hangup"; None while the call stays with the agent.
    handoff: dict[str, str] | str | None = None
    at: float = field(default_factory=time.time)
    # The account the code is for (directory path), whole: the signed outcome webhook
    # needs it. ``to_dict`` (logs, the live stream) shows it masked.
    account: str = ""
    # What the directory said for this send: found, unknown, locked, unavailable, ...
    lookup: str = ""
    # Which limit refused a send (``rate_limited``): call_sends, prefix_hour, conversion,
    # ... (``skills.mfa.limits.send_limits.LimitKind``), so metrics can say which one.
    limit: str = ""
    # The language code a send named for the caller (its text message's language); empty
    # for a verify, whose call keeps the language of its send on the live page.
    language: str = ""
    # How the code went (``sms``, ``call``): set on a send and on every verify of its code.
    channel: str = ""
    # The recipient's line type when it was looked up (``wireless``, ``landline``...), and
    # where the answer came from (``looked_up``, ``cached``, ``failed``).
    line_type: str = ""
    line_lookup: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Present only when set (the account path, a refusal, a language), so others keep
        # their shape.
        for key in (
            "account",
            "lookup",
            "limit",
            "language",
            "channel",
            "line_type",
            "line_lookup",
        ):
            if not data[key]:
                del data[key]
        if self.account:
            data["account"] = mask_account(self.account)
        data["outcome"] = str(self.outcome)
        data["duration_ms"] = round(self.duration_ms, 2)
        return data


Subscriber = Callable[[MfaEvent], None]


class EventPublisher:
    """Fan-out of events to subscribers; a failing subscriber never reaches the tool."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Listeners are wired once at start-up and live as long as the process."""
        self._subscribers.append(subscriber)

    def publish(self, event: MfaEvent) -> None:
        log.info("mfa_event", extra={"event": event.to_dict()})
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event_subscriber_failed")
