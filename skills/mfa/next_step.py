"""What follows a tool's decision on the call: speech timing, history, the handoff.

``send_mfa`` and ``verify_mfa`` decide an outcome (``ToolAnswer``); ``NextStep``
then adds what the call as a caller lives it needs, without changing the outcome:

- a status line split from the spoken instruction (``tool_result``/``tool_prompt``),
  so the model does not read "status: wrong_code" aloud. Only where the sentence already
  says as much: every ``verify_mfa`` answer and a sent code. A ``send_mfa`` refusal keeps
  its one plain sentence, because the account directory's refusals are neutral on
  purpose (an unknown account reads exactly like a refused one) and an outcome name
  would tell them apart;
- a longer end-of-speech silence while a code is pending (people pause between
  digit groups), back to the normal one after the final verify outcome: per-turn
  actions, the SWML's own ``end_of_speech_timeout`` stays as it is;
- every ``verify_mfa`` call replaced in the model's history by a note without the
  code, so the model cannot later repeat a code it heard;
- the business's handoff: ``on_verified`` after a verified code; ``on_failed`` when
  the code is exhausted or expired and no send is left in this call.

``shape`` never raises: whatever fails here, the tool's own answer still goes out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from skills.mfa import messages
from skills.mfa.answer import ToolAnswer
from skills.mfa.events import Outcome
from skills.mfa.handoff import Destination, DestinationKind, Handoff, sip_headers

log = logging.getLogger("mfa.next_step")

SendsLeft = Callable[[str], Awaitable[int]]

_FAILED = frozenset({Outcome.EXHAUSTED, Outcome.EXPIRED})
_SETTLED = _FAILED | {Outcome.VERIFIED}


@dataclass(frozen=True, slots=True)
class Pacing:
    """End-of-speech silence in ms: ``pending`` while a code is awaited, else ``normal``."""

    normal_ms: int = 700
    pending_ms: int = 1500


class NextStep:
    def __init__(
        self,
        *,
        on_verified: Destination | None = None,
        on_failed: Destination | None = None,
        pacing: Pacing | None = None,
        sends_left: SendsLeft | None = None,
    ) -> None:
        """``sends_left(call_id)``: codes this call may still be sent (the limiter's);
        without it no send limit exists and ``on_failed`` never applies."""
        if on_verified is not None and on_verified.kind is DestinationKind.HANGUP:
            raise ValueError("on_verified cannot be a hang-up")
        self._on_verified = on_verified
        self._on_failed = on_failed
        self._pacing = pacing or Pacing()
        self._sends_left = sends_left

    async def shape(self, tool: str, call_id: str, answer: ToolAnswer) -> ToolAnswer:
        try:
            return await self._shape(tool, call_id, answer)
        except Exception as exc:
            log.error("next_step_failed", extra={"tool": tool, "exc_type": type(exc).__name__})
            return answer

    async def _shape(self, tool: str, call_id: str, answer: ToolAnswer) -> ToolAnswer:
        changes: dict[str, Any] = {}
        if answer.outcome is Outcome.CODE_SENT:
            changes["end_of_speech_ms"] = self._pacing.pending_ms
        elif answer.outcome in _SETTLED:
            changes["end_of_speech_ms"] = self._pacing.normal_ms

        handoff = await self._handoff(call_id, answer)
        if handoff is not None:
            changes["handoff"] = handoff
            changes["text"] = _handoff_text(answer.outcome, handoff.destination)

        status = _status(answer, handoff)
        if tool == "verify_mfa" or answer.outcome is Outcome.CODE_SENT:
            changes["status"] = status
        if tool == "verify_mfa":
            changes["history_note"] = f"(verify_mfa checked the caller's code; {status})"
        return dataclasses.replace(answer, **changes)

    async def _handoff(self, call_id: str, answer: ToolAnswer) -> Handoff | None:
        if answer.outcome is Outcome.VERIFIED:
            destination = self._on_verified
            verified = True
        elif answer.outcome in _FAILED and self._on_failed is not None:
            if self._sends_left is None or await self._sends_left(call_id) > 0:
                return None  # a new code can still be offered
            destination = self._on_failed
            verified = False
        else:
            return None
        if destination is None:
            return None
        headers: tuple[tuple[str, str], ...] = ()
        if destination.kind is DestinationKind.SIP:
            headers = sip_headers(
                verified=verified,
                outcome=str(answer.outcome),
                call_id=call_id,
                masked_number=answer.masked_number,
                account=answer.account or None,
            )
        return Handoff(destination, headers)


def _handoff_text(outcome: Outcome, destination: Destination) -> str:
    if outcome is Outcome.VERIFIED:
        return messages.verified_transferring()
    if destination.kind is DestinationKind.HANGUP:
        return messages.cannot_verify_goodbye()
    return messages.cannot_verify_transferring()


def _status(answer: ToolAnswer, handoff: Handoff | None) -> str:
    parts = [f"status: {answer.outcome}"]
    if answer.attempts_left is not None:
        parts.append(f"tries left: {answer.attempts_left}")
    if handoff is not None:
        described = handoff.describe()
        parts.append("next: hang up" if isinstance(described, str) else "next: transfer")
    return "; ".join(parts)
