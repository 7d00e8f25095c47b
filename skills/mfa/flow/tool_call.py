"""What both tools share at their boundary: the facts of one request, and the rules that
turn a failure into an answer.

``ToolCall`` reads a request defensively (the body is the platform's JSON, or anyone's
with the credentials). ``answering_errors`` is the boundary every path runs inside: any
exception becomes a generic sentence, never its text, which can carry request data.
``refused_meta_data`` answers meta_data that does not open for the call; ``recording``
keeps a final outcome before the caller hears it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.flow import messages
from skills.mfa.flow.policy import CodePolicy
from skills.mfa.flow.upstream import META_KEYS, Upstream
from skills.mfa.ledgers.binding import META_CLOSED, Binder, Refused
from skills.mfa.ledgers.code_ledger import CodeLedger
from skills.mfa.ledgers.replay import Replays
from skills.mfa.recorder import OutcomeRecorder

log = logging.getLogger("mfa.tools")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The facts of one tool request that every answer and event depends on."""

    tool: str
    id: str
    raw: Mapping[str, Any]
    meta_data: Mapping[str, Any]
    started: float

    @classmethod
    def of(cls, tool: str, raw_data: Any) -> ToolCall:
        """Read defensively: the body is the platform's JSON, or anyone's with the credentials."""
        raw = raw_data if isinstance(raw_data, dict) else {}
        call_id = raw.get("call_id")
        meta = raw.get("meta_data")
        return cls(
            tool=tool,
            id=call_id if isinstance(call_id, str) else "",
            raw=raw,
            meta_data=meta if isinstance(meta, dict) else {},
            started=time.perf_counter(),
        )


def refused_meta_data(call: ToolCall, state: Refused) -> ToolAnswer:
    """meta_data that does not open for this call: nothing from it is used or echoed."""
    log.warning(
        "meta_data_refused", extra={"tool": call.tool, "why": state.reason, "call_id": call.id}
    )
    if call.tool == "send_mfa":
        # Cleared, so the caller's next request for a code is a fresh one (and still
        # counted by every limit): refusing without clearing would refuse every send after.
        return ToolAnswer(
            Outcome.META_REFUSED,
            messages.earlier_code_unusable(),
            unset_meta_data=(*META_KEYS, META_CLOSED),
        )
    return ToolAnswer(Outcome.META_REFUSED, messages.no_code_sent())


async def answering_errors(tool: str, last4: str, work: Awaitable[ToolAnswer]) -> ToolAnswer:
    """The tool boundary: any exception becomes the generic answer, never its text.

    ``last4`` is the number known before ``work`` started, so the event of a failure
    shows what it showed before the failure.
    """
    try:
        return await work
    except Exception as exc:
        # The type only: the text could hold request data.
        log.error("tool_failed", extra={"tool": tool, "exc_type": type(exc).__name__})
        return ToolAnswer(Outcome.ERROR, messages.unexpected_failure(), number_last4=last4)


async def recording(recorder: OutcomeRecorder, event: MfaEvent) -> None:
    """Written before the caller hears it. A failed write is logged, never the caller's
    problem: the outcome already happened upstream."""
    try:
        await recorder.record(event)
    except Exception as exc:
        log.error(
            "outcome_not_recorded",
            extra={"call_id": event.call_id, "exc_type": type(exc).__name__},
        )


@dataclass(frozen=True, slots=True)
class Shared:
    """What both paths decide with, built once by ``MfaTools``: the policy, the meta_data
    binder, the provider calls, the code ledger (entries kept ``ledger_seconds``) and the
    replay records."""

    policy: CodePolicy
    binder: Binder
    upstream: Upstream
    ledger: CodeLedger
    ledger_seconds: float
    replays: Replays


class PathBase:
    """The parts of ``Shared`` as the paths' own attributes."""

    def __init__(self, shared: Shared) -> None:
        self._policy = shared.policy
        self._binder = shared.binder
        self._upstream = shared.upstream
        self._ledger = shared.ledger
        self._ledger_seconds = shared.ledger_seconds
        self._replays = shared.replays
