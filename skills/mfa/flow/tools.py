"""The two SWAIG tools, ``send_mfa`` and ``verify_mfa``, as async handlers.

State lives where the platform keeps it, not in this process: the pending
request id and the tries left go into ``meta_data`` (scoped to these two tools
by their shared ``meta_data_token``, never shown to the model), and the verified
flag into ``global_data``, set only here on a successful verification. So any
replica can answer any request of a call, and a restart loses nothing.

``meta_data`` comes back in the request body, so it is a claim: sealed to the
call when written and opened before anything is done with it (``binding.py``).
A claim that does not open is refused as "no code sent" and published as
``tampered``; nothing goes upstream. Answers that consumed something upstream
are recorded, so a platform retry gets the same answer (``replay.py``).

The two paths only decide (``send_path.SendPath``, ``verify_path.VerifyPath``): each
returns a ``ToolAnswer``. The handlers here publish its event and build its
``FunctionResult`` in one place (``_reply``), so every outcome yields exactly one event.
Each handler is wrapped in a boundary that turns any exception into a generic sentence
(``tool_call.answering_errors``): exception text can carry request data and never
reaches the model.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from signalwire.core.function_result import FunctionResult

from skills.mfa.answer import ToolAnswer, function_result
from skills.mfa.delivery.providers.base import (
    CodeProvider,
)
from skills.mfa.events import FINAL_OUTCOMES, EventPublisher, MfaEvent
from skills.mfa.flow.channels import ChannelPolicy
from skills.mfa.flow.next_step import NextStep
from skills.mfa.flow.policy import CodePolicy
from skills.mfa.flow.recipient import AccountRecipients
from skills.mfa.flow.send_path import SendPath
from skills.mfa.flow.tool_call import Shared, ToolCall, answering_errors, recording
from skills.mfa.flow.upstream import (
    GLOBAL_VERIFIED,
    META_KEYS,
    Upstream,
)
from skills.mfa.flow.verify_path import VerifyPath
from skills.mfa.ledgers.binding import (
    META_ACCOUNT,
    META_ATTEMPTS_LEFT,
    META_BINDING,
    META_CLOSED,
    META_NUMBER_LAST4,
    META_REQUEST_ID,
    META_SENT_AT,
    Binder,
)
from skills.mfa.ledgers.code_ledger import (
    CodeLedger,
    InProcessCodeLedger,
)
from skills.mfa.ledgers.replay import InProcessAnswerStore, Replays
from skills.mfa.limits.send_limits import (
    SendLimiter,
)
from skills.mfa.recorder import OutcomeRecorder

#: A code's ledger entry outlives the code by this much, more than a sealed state may be
#: late (``verify_path.LATE_SECONDS``), so an entry that expired is never taken for a
#: fresh code. The gap covers clock skew between replicas and the store.
_LEDGER_MARGIN_SECONDS = 3600.0

__all__ = [
    "GLOBAL_VERIFIED",
    "META_ACCOUNT",
    "META_ATTEMPTS_LEFT",
    "META_BINDING",
    "META_CLOSED",
    "META_KEYS",
    "META_NUMBER_LAST4",
    "META_REQUEST_ID",
    "META_SENT_AT",
    "CodePolicy",
    "MfaTools",
]


class MfaTools:
    """Holds the provider, the policy and the publisher; exposes the two handlers."""

    def __init__(
        self,
        *,
        provider: CodeProvider,
        policy: CodePolicy,
        publisher: EventPublisher,
        agent_id: str,
        limiter: SendLimiter | None = None,
        accounts: AccountRecipients | None = None,
        binding_key: bytes | None = None,
        pending_seconds: float = 15.0,
        next_step: NextStep | None = None,
        recorder: OutcomeRecorder | None = None,
        channels: ChannelPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (seconds, like ``time.time``) stamps ``mfa_verified_at``; tests fix it.

        ``binding_key`` seals ``meta_data`` (``binding.binding_key``; random per process
        when absent). Replay records live where the limiter's counters live (its store's
        ``answers``), in this process without a limiter. ``pending_seconds`` bounds how
        long a request in flight holds its fingerprint (more than the upstream deadline).
        ``accounts``, when a directory is configured, texts the number on file instead.
        ``next_step`` adds speech timing, history and the handoff to each answer.
        The code ledger (``code_ledger.py``) lives beside the limiter's counters too; in
        this process, on ``clock``, without a limiter. ``recorder`` keeps each final
        outcome durably before the tool answers. ``channels`` looks up the line type before
        a send and picks a text or a voice call (``flow/channels.py``); none: always a text.
        """
        self._provider = provider
        self._next_step = next_step
        self._accounts = accounts
        self._limiter = limiter
        self._policy = policy
        self._publisher = publisher
        self._recorder = recorder
        self._agent_id = agent_id
        self._clock = clock
        key = binding_key or secrets.token_bytes(32)
        self._binder = Binder(key)
        self._upstream = Upstream(
            provider=provider, policy=policy, binder=self._binder, limiter=limiter, clock=clock
        )
        self._ledger: CodeLedger = (
            limiter.ledger if limiter is not None else InProcessCodeLedger(clock=clock)
        )
        self._ledger_seconds = policy.valid_for + _LEDGER_MARGIN_SECONDS
        self._replays = Replays(
            limiter.answers if limiter is not None else InProcessAnswerStore(clock=clock),
            key,
            record_seconds=policy.valid_for,
            pending_seconds=pending_seconds,
        )
        shared = Shared(
            policy, self._binder, self._upstream, self._ledger, self._ledger_seconds, self._replays
        )
        self._sends = SendPath(shared, limiter=limiter, accounts=accounts, channels=channels)
        self._verifies = VerifyPath(shared, clock=clock)

    # -- the handlers the skill registers ---------------------------------------------------

    async def send_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = ToolCall.of("send_mfa", raw_data)
        language = self._policy.language_of(
            args.get("language") if isinstance(args, dict) else None
        )
        answer = await answering_errors(call.tool, "", self._sends.answer(call, args, language))
        # The event names the language only where there is a choice (live page, outcomes).
        shown = language if len(self._policy.languages) > 1 else ""
        return await self._reply(call, answer, shown)

    async def verify_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = ToolCall.of("verify_mfa", raw_data)
        answer = await answering_errors(call.tool, "", self._verifies.answer(call, args))
        return await self._reply(call, answer)

    async def _reply(
        self, call: ToolCall, answer: ToolAnswer, language: str = ""
    ) -> FunctionResult:
        """The one place an outcome is recorded, published and turned into the SDK's reply."""
        if self._next_step is not None:
            answer = await self._next_step.shape(call.tool, call.id, answer)
        event = MfaEvent(
            agent_id=self._agent_id,
            call_id=call.id[:128],
            tool=call.tool,
            outcome=answer.outcome,
            masked_number=answer.masked_number,
            provider=self._provider.name,
            duration_ms=(time.perf_counter() - call.started) * 1000,
            attempts_left=answer.attempts_left,
            account=answer.account,
            lookup=answer.lookup,
            limit=answer.limit,
            language=language,
            handoff=answer.handoff.describe() if answer.handoff else None,
            channel=answer.channel,
            line_type=answer.line_type,
            line_lookup=answer.line_lookup,
        )
        if self._recorder is not None and event.outcome in FINAL_OUTCOMES:
            await recording(self._recorder, event)
        self._publisher.publish(event)
        return function_result(answer)
