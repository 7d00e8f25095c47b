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

``_send`` and ``_verify`` only decide: each returns a ``ToolAnswer``. The
handlers publish its event and build its ``FunctionResult`` in one place
(``_reply``), so every outcome yields exactly one event. Each handler is wrapped
in a boundary that turns any exception into a generic sentence: exception text
can carry request data and never reaches the model.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from signalwire.core.function_result import FunctionResult

from skills.mfa import messages
from skills.mfa.answer import ToolAnswer, function_result
from skills.mfa.binding import (
    META_ACCOUNT,
    META_ATTEMPTS_LEFT,
    META_BINDING,
    META_CLOSED,
    META_NUMBER_LAST4,
    META_REQUEST_ID,
    META_SENT_AT,
    Binder,
    Closed,
    Pending,
    Refused,
)
from skills.mfa.events import EventPublisher, MfaEvent, Outcome
from skills.mfa.limits import (
    CounterStoreUnavailable,
    LimitKind,
    Refusal,
    SendLimiter,
    SendTicket,
)
from skills.mfa.log_throttle import throttled_alerts
from skills.mfa.next_step import NextStep
from skills.mfa.phone import country_code_of, last_digits, textable_type, to_e164
from skills.mfa.policy import CodePolicy
from skills.mfa.providers.base import (
    CodeProvider,
)
from skills.mfa.recipient import AccountRecipients
from skills.mfa.replay import Found, InProcessAnswerStore, ReplayClaim, Replays
from skills.mfa.spoken_code import normalize_spoken_code
from skills.mfa.upstream import GLOBAL_VERIFIED, META_KEYS, Upstream

alerts = throttled_alerts()  # once a minute, with a count
log = logging.getLogger("mfa.tools")

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


@dataclass(frozen=True, slots=True)
class _Call:
    """The facts of one tool request that every answer and event depends on."""

    tool: str
    id: str
    raw: Mapping[str, Any]
    meta_data: Mapping[str, Any]
    started: float

    @classmethod
    def of(cls, tool: str, raw_data: Any) -> _Call:
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (seconds, like ``time.time``) stamps ``mfa_verified_at``; tests fix it.

        ``binding_key`` seals ``meta_data`` (``binding.binding_key``; random per process
        when absent). Replay records live where the limiter's counters live (its store's
        ``answers``), in this process without a limiter. ``pending_seconds`` bounds how
        long a request in flight holds its fingerprint (more than the upstream deadline).
        ``accounts``, when a directory is configured, texts the number on file instead.
        ``next_step`` adds speech timing, history and the handoff to each answer.
        """
        self._provider = provider
        self._next_step = next_step
        self._accounts = accounts
        self._limiter = limiter
        self._policy = policy
        self._publisher = publisher
        self._agent_id = agent_id
        self._clock = clock
        key = binding_key or secrets.token_bytes(32)
        self._binder = Binder(key)
        self._upstream = Upstream(
            provider=provider, policy=policy, binder=self._binder, limiter=limiter, clock=clock
        )
        self._replays = Replays(
            limiter.answers if limiter is not None else InProcessAnswerStore(),
            key,
            record_seconds=policy.valid_for,
            pending_seconds=pending_seconds,
        )

    # -- the handlers the skill registers ---------------------------------------------------

    async def send_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = _Call.of("send_mfa", raw_data)
        language = self._policy.language_of(
            args.get("language") if isinstance(args, dict) else None
        )
        answer = await _answering_errors(call.tool, "", self._send(call, args, language))
        # The event names the language only where there is a choice (live page, outcomes).
        shown = language if len(self._policy.languages) > 1 else ""
        return await self._reply(call, answer, shown)

    async def verify_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = _Call.of("verify_mfa", raw_data)
        answer = await _answering_errors(call.tool, "", self._verify(call, args))
        return await self._reply(call, answer)

    async def _reply(self, call: _Call, answer: ToolAnswer, language: str = "") -> FunctionResult:
        """The one place an outcome is published and turned into the SDK's reply."""
        if self._next_step is not None:
            answer = await self._next_step.shape(call.tool, call.id, answer)
        self._publisher.publish(
            MfaEvent(
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
                handoff=answer.handoff.describe() if answer.handoff else None,
                language=language,
            )
        )
        return function_result(answer)

    # -- send_mfa ---------------------------------------------------------------------------

    async def _send(self, call: _Call, args: Any, language: str) -> ToolAnswer:
        state = self._binder.open(call.id, call.meta_data)
        if isinstance(state, Refused):
            return _refused(call, state)
        args = args if isinstance(args, dict) else {}
        if self._accounts is not None and self._accounts.applies(args):
            return await self._accounts.send(
                call.id,
                args.get("account_number"),
                lambda number, account: self._send_checked(call, number, state, account, language),
            )
        target = self._recipient(call, args)
        if isinstance(target, ToolAnswer):
            return target
        return await self._send_checked(call, target, state, None, language)

    async def _send_checked(
        self,
        call: _Call,
        target: str,
        state: Pending | Closed,
        account: str | None,
        language: str,
    ) -> ToolAnswer:
        """Send to ``target`` (the caller's number, or the number on file for ``account``)."""
        # From here on the number is known: even an unexpected failure names its last digits.
        last4 = last_digits(target)
        request = {"to": target, "account": account}
        if len(self._policy.languages) > 1:
            # A send in another language is another request (its replay record apart).
            request["language"] = language
        return await _answering_errors(
            call.tool, last4, self._send_to(call, target, last4, state, request)
        )

    def _recipient(self, call: _Call, args: Mapping[str, Any]) -> str | ToolAnswer:
        """The E.164 number to text, or the refusal when there is none we may text."""
        caller = to_e164(call.raw.get("caller_id_num"), self._policy.default_region)
        requested = args.get("phone_number")
        if requested in (None, ""):
            if caller is None:
                return ToolAnswer(Outcome.NO_CALLER_NUMBER, messages.no_caller_number())
            return caller
        target = to_e164(requested, self._policy.default_region)
        if not self._policy.allow_other_numbers and (target is None or target != caller):
            return ToolAnswer(Outcome.OTHER_NUMBER_REFUSED, messages.other_number_refused())
        if target is None:
            return ToolAnswer(Outcome.INVALID_NUMBER, messages.invalid_number())
        return target

    async def _send_to(
        self,
        call: _Call,
        target: str,
        last4: str,
        state: Pending | Closed,
        request: Mapping[str, str | None],
    ) -> ToolAnswer:
        if country_code_of(target) not in self._policy.allowed_country_codes:
            return ToolAnswer(
                Outcome.COUNTRY_REFUSED, messages.country_not_supported(), number_last4=last4
            )
        if not textable_type(target):
            return ToolAnswer(
                Outcome.NUMBER_TYPE_REFUSED,
                messages.number_cannot_receive_texts(),
                number_last4=last4,
            )
        replaces_earlier = isinstance(state, Pending)
        prior = state.seal if isinstance(state, Pending) else state.marker
        claim = self._replays.claim_for(call.id, call.tool, request, prior)
        in_flight = ToolAnswer(
            Outcome.SEND_FAILED, messages.send_failed_maybe_sent(), number_last4=last4
        )
        ticket: SendTicket | None = None
        try:
            if self._limiter is not None:
                decision = await self._limiter.reserve(
                    call.id, target, replaces_pending=replaces_earlier, claim=claim
                )
            else:
                decision = await self._replays.claim(claim)
        except CounterStoreUnavailable:
            # Fail closed: without the counters no limit can be enforced.
            log.error("limits_unavailable", extra={"call_id": call.id})
            return ToolAnswer(
                Outcome.SEND_FAILED, messages.provider_unavailable(), number_last4=last4
            )
        if isinstance(decision, Found):
            return await self._replays.answer(decision, claim, in_flight)
        if isinstance(decision, Refusal):
            log.warning("send_limited", extra={"limit": str(decision.kind), "call_id": call.id})
            return ToolAnswer(Outcome.RATE_LIMITED, _refusal_message(decision), number_last4=last4)
        ticket = decision
        answer: ToolAnswer | None = None
        try:
            answer = await self._upstream.send(
                call.id,
                target,
                last4,
                state,
                ticket,
                account=request["account"],
                message=self._policy.message_for(request.get("language") or ""),
            )
        finally:
            self._replays.settle(claim, answer)
        return answer

    # -- verify_mfa -------------------------------------------------------------------------

    async def _verify(self, call: _Call, args: Any) -> ToolAnswer:
        state = self._binder.open(call.id, call.meta_data)
        if isinstance(state, Refused):
            return _refused(call, state)
        if not isinstance(state, Pending):
            return ToolAnswer(Outcome.NO_CODE_SENT, messages.no_code_sent())
        answer = await _answering_errors(
            call.tool,
            state.last4,
            self._verify_code(call, args if isinstance(args, dict) else {}, state),
        )
        # The account comes from the sealed record, never from the request's claim.
        return answer if state.account is None else replace(answer, account=state.account)

    async def _verify_code(
        self, call: _Call, args: Mapping[str, Any], pending: Pending
    ) -> ToolAnswer:
        last4 = pending.last4
        code = normalize_spoken_code(
            args.get("token"), self._policy.token_length, self._policy.languages
        )
        if code is None:
            # Not sent upstream: a mishearing must not cost the caller a try.
            text = messages.malformed_code(self._policy.token_length)
            return ToolAnswer(Outcome.MALFORMED_CODE, text, number_last4=last4)

        claim = self._replays.claim_for(call.id, call.tool, {"code": code}, pending.seal)
        found = await self._claim_verify(call, claim)
        if found is not None:
            in_flight = ToolAnswer(
                Outcome.PROVIDER_UNAVAILABLE, messages.provider_unavailable(), number_last4=last4
            )
            return await self._replays.answer(found, claim, in_flight)
        answer: ToolAnswer | None = None
        try:
            answer = await self._upstream.verify(call.id, pending, code)
        finally:
            self._replays.settle(claim, answer)
        return answer

    async def _claim_verify(self, call: _Call, claim: ReplayClaim) -> Found | None:
        try:
            return await self._replays.claim(claim)
        except CounterStoreUnavailable:
            # Fail open: the state store is down; checking the code is still safe
            # (single use and tries are enforced upstream). Only a platform retry in
            # this window could reach the provider twice.
            log.warning("replay_unavailable", extra={"call_id": call.id})
            return None


def _refused(call: _Call, state: Refused) -> ToolAnswer:
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


async def _answering_errors(tool: str, last4: str, work: Awaitable[ToolAnswer]) -> ToolAnswer:
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


def _refusal_message(refusal: Refusal) -> str:
    if refusal.kind is LimitKind.CALL_COOLDOWN:
        return messages.wait_before_resend(round(refusal.retry_after))
    if refusal.kind is LimitKind.CALL_SENDS:
        return messages.too_many_sends_this_call()
    if refusal.kind is LimitKind.AGENT_RATE:
        alerts.error("agent_send_rate_cap_reached")  # possible SMS pumping burst
        return messages.agent_busy()
    return messages.too_many_sends_to_number()
