"""``verify_mfa``'s path: from a spoken code to verified, wrong, or finished.

The request id comes from the sealed meta_data only. A code that does not read as
exactly ``token_length`` digits costs no try and never goes upstream. Then the replay
record (a platform retry gets the first answer), the code ledger (only the newest code
of a call verifies; a finished code is never checked again; a check under way is not
doubled), the provider, and the ledger again, so one code never has two final outcomes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import FINAL_OUTCOMES, Outcome
from skills.mfa.flow import messages
from skills.mfa.flow.tool_call import (
    PathBase,
    Shared,
    ToolCall,
    answering_errors,
    refused_meta_data,
)
from skills.mfa.flow.upstream import META_KEYS
from skills.mfa.ledgers.binding import META_CLOSED, Pending, Refused
from skills.mfa.ledgers.code_ledger import (
    Busy,
    Finished,
    LedgerUnavailable,
    Spent,
    Superseded,
)
from skills.mfa.ledgers.replay import Found, decode, encode
from skills.mfa.limits.send_limits import CounterStoreUnavailable
from skills.mfa.speech.spoken_code import normalize_spoken_code

log = logging.getLogger("mfa.tools")

#: A sealed state this much past its validity is refused without asking the ledger, so
#: an entry that expired is never taken for a fresh code (``tools.LEDGER_MARGIN_SECONDS``
#: keeps the entry longer than this).
LATE_SECONDS = 1800.0


class VerifyPath(PathBase):
    """Decides one ``verify_mfa`` request; built once by ``MfaTools`` with the shared parts."""

    def __init__(self, shared: Shared, *, clock: Callable[[], float]) -> None:
        super().__init__(shared)
        self._clock = clock

    async def answer(self, call: ToolCall, args: Any) -> ToolAnswer:
        state = self._binder.open(call.id, call.meta_data)
        if isinstance(state, Refused):
            return refused_meta_data(call, state)
        if not isinstance(state, Pending):
            return ToolAnswer(Outcome.NO_CODE_SENT, messages.no_code_sent())
        answer = await answering_errors(
            call.tool,
            state.last4,
            self._verify_code(call, args if isinstance(args, dict) else {}, state),
        )
        # The account and the channel come from the sealed record, never from the request's
        # claim.
        return replace(answer, account=state.account or answer.account, channel=state.channel)

    async def _verify_code(
        self, call: ToolCall, args: Mapping[str, Any], pending: Pending
    ) -> ToolAnswer:
        last4 = pending.last4
        code = normalize_spoken_code(
            args.get("token"), self._policy.token_length, self._policy.languages
        )
        if code is None:
            # Not sent upstream: a mishearing must not cost the caller a try.
            text = messages.malformed_code(self._policy.token_length)
            return ToolAnswer(Outcome.MALFORMED_CODE, text, number_last4=last4)

        # "Please try again": never a guess, never a second answer for one request.
        in_flight = ToolAnswer(
            Outcome.PROVIDER_UNAVAILABLE, messages.provider_unavailable(), number_last4=last4
        )
        claim = self._replays.claim_for(call.id, call.tool, {"code": code}, pending.seal)
        try:
            found: Found | None = await self._replays.claim(claim)
        except CounterStoreUnavailable:
            # Fail closed: without the record a platform retry of a verified code would
            # reach the provider again, and its "used" would contradict the first answer.
            log.warning("replay_unavailable", extra={"call_id": call.id})
            return in_flight
        if found is not None:
            return await self._replays.answer(found, claim, in_flight)
        answer: ToolAnswer | None = None
        try:
            answer = await self._check_code(call, pending, code, in_flight)
        finally:
            self._replays.settle(claim, answer)
        return answer

    async def _check_code(
        self, call: ToolCall, pending: Pending, code: str, in_flight: ToolAnswer
    ) -> ToolAnswer:
        """Ask the ledger whether this code may be checked, check it, settle it there."""
        if self._clock() > pending.sent_at + self._policy.valid_for + LATE_SECONDS:
            return self._finished(call, pending)
        try:
            gate = await self._ledger.begin(
                call.id, pending.request_id, self._policy.max_attempts, self._ledger_seconds
            )
        except LedgerUnavailable:
            log.warning("ledger_unavailable", extra={"step": "begin", "call_id": call.id})
            return in_flight
        if isinstance(gate, Superseded):
            return ToolAnswer(Outcome.SUPERSEDED, messages.older_code(), number_last4=pending.last4)
        if isinstance(gate, Finished):
            return self._finished(call, pending)
        if isinstance(gate, Busy):
            return in_flight
        if isinstance(gate, Spent):
            spent = self._upstream.spent(call.id, pending)
            return await self._settle_code(call, pending, spent, in_flight, checked=False)
        answer = await self._upstream.verify(call.id, pending, code, check=gate.number)
        return await self._settle_code(call, pending, answer, in_flight, checked=True)

    async def _settle_code(
        self,
        call: ToolCall,
        pending: Pending,
        answer: ToolAnswer,
        in_flight: ToolAnswer,
        *,
        checked: bool,
    ) -> ToolAnswer:
        """Record the check in the ledger; a code already final answers with its final
        (replayed), so one code never has two final outcomes."""
        final = encode(answer) if answer.outcome in FINAL_OUTCOMES else None
        try:
            recorded = await self._ledger.settle(
                call.id,
                pending.request_id,
                final=final,
                checked=checked,
                counted=not answer.provider_untouched,
                ttl_seconds=self._ledger_seconds,
            )
        except LedgerUnavailable:
            log.error("ledger_unavailable", extra={"step": "settle", "call_id": call.id})
            # A final answer not recorded must not be given: a later check could then
            # produce another final for the same code (``expired`` after ``verified``).
            return in_flight if final is not None else answer
        if recorded is None or recorded == final:
            return answer
        return decode(recorded)

    def _finished(self, call: ToolCall, pending: Pending) -> ToolAnswer:
        """A verify on a code that is already done: nothing is checked, and the stale
        pending state is closed so the next send is a new request."""
        return ToolAnswer(
            Outcome.NO_CODE_SENT,
            messages.code_finished(),
            number_last4=pending.last4,
            set_meta_data={META_CLOSED: self._binder.close(call.id)},
            unset_meta_data=META_KEYS,
        )
