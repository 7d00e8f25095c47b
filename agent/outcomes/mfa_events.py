"""Domain outcomes turned into live-stream events, redacted on the way.

An event never holds a code, a request id, a token or a full phone number, with
one deliberate exception: a ``sandbox_text`` (sandbox provider only) is the text
the sandbox "sent", code included, because in the sandbox the operator's screen
is the phone. Kinds: ``mfa`` (a tool outcome, already safe: ``MfaEvent``),
``sandbox_text`` and ``summary`` (the model's post-prompt account, whose free
text is cut short and stripped of anything that reads as four or more digits,
number words included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from skills.mfa.delivery.providers.sandbox import SandboxText
from skills.mfa.events import MfaEvent
from skills.mfa.phone import mask_number
from skills.mfa.speech.spoken_redaction import redact_spoken_numbers

log = logging.getLogger("mfa.live")

#: Where an event goes: the hub of this process, or the relay shared by the replicas.
Publish = Callable[[str, Mapping[str, Any]], None]

_SUMMARY_TEXT_MAX = 300
# A run that could read as four or more digits, written in digits or in words: a code
# (4 digits at the least) or a phone number the model wrote into its summary despite
# being told not to.
_REDACT_FROM_DIGITS = 4


class LiveFeed:
    """Publishes what the operator's live page shows, each piece made safe first."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def mfa(self, event: MfaEvent) -> None:
        """``EventPublisher`` subscriber: one tool outcome."""
        self._publish("mfa", event.to_dict())

    def sandbox_text(self, text: SandboxText) -> None:
        """The sandbox outbox. Never raises: a failure here must not fail the delivery."""
        try:
            fields = {
                "to": mask_number(text.to),
                "body": text.body,
                "sandbox": True,
                "channel": text.channel,
            }
            self._publish("sandbox_text", {**fields, "at": text.sent_at})
        except Exception:
            log.exception("live_publish_failed")

    def summary(self, call_id: Any, summary: Any) -> None:
        """The post-prompt summary's safe fields only; digit runs in its text are redacted.
        Never raises: the SDK would answer the platform's post-prompt POST with an error."""
        try:
            said = summary if isinstance(summary, Mapping) else {}
            outcome = said.get("outcome")
            self._publish(
                "summary",
                {
                    "call_id": call_id[:128] if isinstance(call_id, str) else "",
                    "verified": _bool_or_none(said.get("verified")),
                    "code_sent": _bool_or_none(said.get("code_sent")),
                    "outcome": _safe_text(outcome) if isinstance(outcome, str) else None,
                },
            )
        except Exception:
            log.exception("live_publish_failed")


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _safe_text(text: str) -> str:
    return redact_spoken_numbers(
        text[:_SUMMARY_TEXT_MAX].replace("\n", " "), _REDACT_FROM_DIGITS, "[redacted]"
    )
