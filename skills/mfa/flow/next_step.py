"""What follows a tool's decision on the call: speech timing, history, the handoff.

``send_mfa`` and ``verify_mfa`` decide an outcome (``ToolAnswer``); ``NextStep``
then adds what the call as a caller lives it needs, without changing the outcome:

- a status line split from the spoken instruction (``tool_result``/``tool_prompt``),
  so the model does not read "status: wrong_code" aloud. Only for the outcomes whose
  sentence already says as much (a code sent, verified, wrong, out of tries, gone):
  every other answer keeps its one plain sentence, because some are neutral on purpose
  (an unknown account reads exactly like a refused one, altered ``meta_data`` like no
  code sent) and an outcome name would tell them apart;
- a longer end-of-speech silence while a code is pending (people pause between
  digit groups), back to the normal one after the final verify outcome: per-turn
  actions, the SWML's own ``end_of_speech_timeout`` stays as it is;
- every ``verify_mfa`` call replaced in the model's history by a note without the
  code, so the model cannot later repeat a code it heard;
- a replayed answer (the platform retried a request) is shaped as its first copy was
  (``first_outcome``), so the retry's reply is the same reply;
- the business's handoff: ``on_verified`` after a verified code; ``on_failed`` when
  the code is exhausted or expired and no send is left in this call, or when the caller's
  own line is a landline that no code can reach (``flow/channels.py``).

``shape`` never raises: whatever fails here, the tool's own answer still goes out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import Outcome
from skills.mfa.flow import messages
from skills.mfa.handoff import Destination, DestinationKind, Handoff, sip_headers

log = logging.getLogger("mfa.next_step")

SendsLeft = Callable[[str], Awaitable[int]]

_FAILED = frozenset({Outcome.EXHAUSTED, Outcome.EXPIRED})
_SETTLED = _FAILED | {Outcome.VERIFIED}
# Outcomes whose sentence names them anyway, with the status the model may see.
_STATUS = {
    Outcome.CODE_SENT: "code sent",
    Outcome.VERIFIED: "verified",
    Outcome.WRONG_CODE: "wrong code",
    Outcome.EXHAUSTED: "no tries left",
    Outcome.EXPIRED: "code expired, used or out of tries",
}


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
        outcome = answer.first_outcome or answer.outcome
        changes: dict[str, Any] = {}
        if outcome is Outcome.CODE_SENT:
            changes["end_of_speech_ms"] = self._pacing.pending_ms
        elif outcome in _SETTLED:
            changes["end_of_speech_ms"] = self._pacing.normal_ms

        handoff = await self._handoff(call_id, outcome, answer)
        if handoff is not None:
            changes["handoff"] = handoff
            changes["text"] = _handoff_text(outcome, handoff.destination)

        status = _status(outcome, answer.attempts_left, handoff)
        if status:
            changes["status"] = status
        if tool == "verify_mfa":
            said = status or changes.get("text", answer.text)
            changes["history_note"] = f"(verify_mfa checked a code the caller gave: {said})"
        return dataclasses.replace(answer, **changes)

    async def _handoff(self, call_id: str, outcome: Outcome, answer: ToolAnswer) -> Handoff | None:
        if outcome is Outcome.VERIFIED:
            destination = self._on_verified
            verified = True
        elif outcome is Outcome.LANDLINE and self._on_failed is not None:
            # The caller's own landline: no code can reach it on this call, whatever is left.
            destination = self._on_failed
            verified = False
        elif outcome in _FAILED and self._on_failed is not None:
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
                outcome=str(outcome),
                call_id=call_id,
                masked_number=answer.masked_number,
                account=answer.account or None,
            )
        return Handoff(destination, headers)


def _handoff_text(outcome: Outcome, destination: Destination) -> str:
    if outcome is Outcome.VERIFIED:
        return messages.verified_transferring()
    if outcome is Outcome.LANDLINE:
        if destination.kind is DestinationKind.HANGUP:
            return messages.landline_goodbye()
        return messages.landline_transferring()
    if destination.kind is DestinationKind.HANGUP:
        return messages.cannot_verify_goodbye()
    return messages.cannot_verify_transferring()


def _status(outcome: Outcome, attempts_left: int | None, handoff: Handoff | None) -> str:
    if outcome not in _STATUS:
        return ""
    parts = [f"status: {_STATUS[outcome]}"]
    if attempts_left is not None and outcome is not Outcome.CODE_SENT:
        parts.append(f"tries left: {attempts_left}")
    if handoff is not None:
        described = handoff.describe()
        parts.append("next: hang up" if isinstance(described, str) else "next: transfer")
    return "; ".join(parts)
