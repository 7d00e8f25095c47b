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
from skills.mfa.code_ledger import (
    Busy,
    CodeLedger,
    Finished,
    InProcessCodeLedger,
    LedgerUnavailable,
    Spent,
    Superseded,
)
from skills.mfa.events import FINAL_OUTCOMES, EventPublisher, MfaEvent, Outcome
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
from skills.mfa.recorder import OutcomeRecorder
from skills.mfa.replay import Found, InProcessAnswerStore, Replays, decode, encode
from skills.mfa.spoken_code import normalize_spoken_code
from skills.mfa.upstream import (
    GLOBAL_VERIFIED,
    GLOBAL_VERIFIED_ACCOUNT,
    GLOBAL_VERIFIED_KEYS,
    GLOBAL_VERIFIED_LAST4,
    META_KEYS,
    Upstream,
)

alerts = throttled_alerts()  # once a minute, with a count

#: A code's ledger entry outlives the code by this much, and a sealed state this much
#: past its validity is refused without asking the ledger (``_LATE_SECONDS``), so an
#: entry that expired is never taken for a fresh code. The gap covers clock skew
#: between replicas and the store.
_LEDGER_MARGIN_SECONDS = 3600.0
_LATE_SECONDS = 1800.0
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
        recorder: OutcomeRecorder | None = None,
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
        outcome durably before the tool answers.
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
        )
        if self._recorder is not None and event.outcome in FINAL_OUTCOMES:
            await _recording(self._recorder, event)
        self._publisher.publish(event)
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
            return ToolAnswer(
                Outcome.RATE_LIMITED,
                _refusal_message(decision),
                number_last4=last4,
                limit=str(decision.kind),
            )
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
            answer = await self._after_send(call, answer, request["account"])
        finally:
            self._replays.settle(claim, answer)
        return answer

    async def _after_send(self, call: _Call, answer: ToolAnswer, account: str | None) -> ToolAnswer:
        """A code went out: it is now the call's newest (older ones stop verifying), and
        ``global_data`` stops naming another subject as verified until this one is."""
        if answer.outcome is not Outcome.CODE_SENT:
            return answer
        request_id = answer.set_meta_data.get(META_REQUEST_ID)
        try:
            await self._ledger.sent(call.id, str(request_id), self._ledger_seconds)
        except LedgerUnavailable:
            # The text is out: failing now would lose it. Only an older code of this
            # call could still verify, and the send limits bound how many exist.
            log.warning("ledger_unavailable", extra={"step": "sent", "call_id": call.id})
        if _verified_other_subject(call.raw.get("global_data"), answer.number_last4, account):
            answer = replace(answer, unset_global_data=GLOBAL_VERIFIED_KEYS)
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
        self, call: _Call, pending: Pending, code: str, in_flight: ToolAnswer
    ) -> ToolAnswer:
        """Ask the ledger whether this code may be checked, check it, settle it there."""
        if self._clock() > pending.sent_at + self._policy.valid_for + _LATE_SECONDS:
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
        call: _Call,
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

    def _finished(self, call: _Call, pending: Pending) -> ToolAnswer:
        """A verify on a code that is already done: nothing is checked, and the stale
        pending state is closed so the next send is a new request."""
        return ToolAnswer(
            Outcome.NO_CODE_SENT,
            messages.code_finished(),
            number_last4=pending.last4,
            set_meta_data={META_CLOSED: self._binder.close(call.id)},
            unset_meta_data=META_KEYS,
        )


def _verified_other_subject(global_data: Any, last4: str, account: str | None) -> bool:
    """Whether the call's ``global_data`` names a verified subject other than this send's
    (another number's last four, or another account, or an account against none)."""
    if not isinstance(global_data, dict) or global_data.get(GLOBAL_VERIFIED) is not True:
        return False
    return (
        global_data.get(GLOBAL_VERIFIED_LAST4) != last4
        or global_data.get(GLOBAL_VERIFIED_ACCOUNT) != account
    )


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


async def _recording(recorder: OutcomeRecorder, event: MfaEvent) -> None:
    """Written before the caller hears it. A failed write is logged, never the caller's
    problem: the outcome already happened upstream."""
    try:
        await recorder.record(event)
    except Exception as exc:
        log.error(
            "outcome_not_recorded",
            extra={"call_id": event.call_id, "exc_type": type(exc).__name__},
        )


def _refusal_message(refusal: Refusal) -> str:
    if refusal.kind is LimitKind.CALL_COOLDOWN:
        return messages.wait_before_resend(round(refusal.retry_after))
    if refusal.kind is LimitKind.CALL_SENDS:
        return messages.too_many_sends_this_call()
    if refusal.kind is LimitKind.AGENT_RATE:
        alerts.error("agent_send_rate_cap_reached")  # possible SMS pumping burst
        return messages.agent_busy()
    if refusal.kind in (LimitKind.PREFIX_HOUR, LimitKind.COUNTRY_HOUR):
        alerts.warning("pumping_velocity_reached", extra={"limit": str(refusal.kind)})
    # The pumping limits (skills/mfa/pumping.py) read like the per-number one: the caller
    # hears the same neutral sentence as for any other limit on their number.
    return messages.too_many_sends_to_number()
