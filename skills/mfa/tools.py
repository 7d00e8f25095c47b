"""The two SWAIG tools, ``send_mfa`` and ``verify_mfa``, as async handlers.

State lives where the platform keeps it, not in this process: the pending
request id and the tries left go into ``meta_data`` (scoped to these two tools
by their shared ``meta_data_token``, never shown to the model), and the verified
flag into ``global_data``, set only here on a successful verification. So any
replica can answer any request of a call, and a restart loses nothing.

``_send`` and ``_verify`` only decide: each returns a ``ToolAnswer``. The
handlers publish its event and build its ``FunctionResult`` in one place
(``_reply``), so every outcome yields exactly one event. Each handler is wrapped
in a boundary that turns any exception into a generic sentence: exception text
can carry request data and never reaches the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from signalwire.core.function_result import FunctionResult

from skills.mfa import messages
from skills.mfa.answer import ToolAnswer, function_result
from skills.mfa.events import EventPublisher, MfaEvent, Outcome
from skills.mfa.limits import CounterStoreUnavailable, LimitKind, Refusal, SendLimiter
from skills.mfa.next_step import NextStep
from skills.mfa.phone import country_code_of, last_digits, textable_type, to_e164
from skills.mfa.providers.base import (
    CodeNotFound,
    CodeProvider,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
)
from skills.mfa.recipient import GLOBAL_VERIFIED_ACCOUNT, META_ACCOUNT, AccountRecipients
from skills.mfa.spoken_code import normalize_spoken_code

log = logging.getLogger("mfa.tools")

META_REQUEST_ID = "mfa_request_id"
META_ATTEMPTS_LEFT = "mfa_attempts_left"
META_NUMBER_LAST4 = "mfa_number_last4"
META_KEYS = (META_REQUEST_ID, META_ATTEMPTS_LEFT, META_NUMBER_LAST4)

GLOBAL_VERIFIED = "mfa_verified"


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """The code's rules and who may be texted, from the settings."""

    message: str
    token_length: int
    valid_for: int
    max_attempts: int
    allow_other_numbers: bool
    default_region: str | None
    allowed_country_codes: frozenset[int] = frozenset({1})


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
        next_step: NextStep | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (seconds, like ``time.time``) stamps ``mfa_verified_at``; tests fix it.
        ``accounts``, when a directory is configured, texts the number on file instead.
        ``next_step`` adds speech timing, history and the handoff to each answer."""
        self._provider = provider
        self._accounts = accounts
        self._limiter = limiter
        self._policy = policy
        self._publisher = publisher
        self._agent_id = agent_id
        self._clock = clock
        self._next_step = next_step

    # -- the handlers the skill registers ---------------------------------------------------

    async def send_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = _Call.of("send_mfa", raw_data)
        return await self._reply(
            call, await _answering_errors(call.tool, "", self._send(call, args))
        )

    async def verify_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        call = _Call.of("verify_mfa", raw_data)
        answer = await _answering_errors(call.tool, "", self._verify(call, args))
        return await self._reply(call, answer)

    async def _reply(self, call: _Call, answer: ToolAnswer) -> FunctionResult:
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
            )
        )
        return function_result(answer)

    # -- send_mfa ---------------------------------------------------------------------------

    async def _send(self, call: _Call, args: Any) -> ToolAnswer:
        args = args if isinstance(args, dict) else {}
        if self._accounts is not None and self._accounts.applies(args):
            return await self._accounts.send(
                call.id, args.get("account_number"), lambda number: self._send_checked(call, number)
            )
        target = self._recipient(call, args)
        if isinstance(target, ToolAnswer):
            return target
        answer = await self._send_checked(call, target)
        if answer.outcome is Outcome.CODE_SENT and META_ACCOUNT in call.meta_data:
            # This code went to the caller's phone: an earlier account no longer applies.
            answer = replace(answer, unset_meta_data=(META_ACCOUNT,))
        return answer

    async def _send_checked(self, call: _Call, target: str) -> ToolAnswer:
        # From here on the number is known: even an unexpected failure names its last digits.
        last4 = last_digits(target)
        return await _answering_errors(call.tool, last4, self._send_to(call, target, last4))

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

    async def _send_to(self, call: _Call, target: str, last4: str) -> ToolAnswer:
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
        replaces_earlier = bool(call.meta_data.get(META_REQUEST_ID))
        if self._limiter is not None:
            try:
                refusal = await self._limiter.try_send(
                    call.id, target, replaces_pending=replaces_earlier
                )
            except CounterStoreUnavailable:
                # Fail closed: without the counters no limit can be enforced.
                log.error("limits_unavailable", extra={"call_id": call.id})
                return ToolAnswer(
                    Outcome.SEND_FAILED, messages.provider_unavailable(), number_last4=last4
                )
            if refusal is not None:
                log.warning("send_limited", extra={"limit": str(refusal.kind), "call_id": call.id})
                return ToolAnswer(
                    Outcome.RATE_LIMITED, _refusal_message(refusal), number_last4=last4
                )

        request = SendRequest(
            to=target,
            message=self._policy.message,
            token_length=self._policy.token_length,
            valid_for=self._policy.valid_for,
            max_attempts=self._policy.max_attempts,
        )
        try:
            sent = await self._provider.send(request)
        except ProviderRejected as exc:
            log.warning(
                "send_rejected",
                extra={"status": exc.status_code, "reason": exc.reason, "call_id": call.id},
            )
            text = (
                messages.provider_misconfigured()
                if exc.is_auth_failure
                else messages.number_refused_by_provider()
            )
            return ToolAnswer(Outcome.PROVIDER_REJECTED, text, number_last4=last4)
        except ProviderUnavailable as exc:
            log.warning("send_unavailable", extra={"kind": exc.kind, "call_id": call.id})
            text = (
                messages.send_failed_maybe_sent()
                if exc.may_have_arrived
                else messages.provider_unavailable()
            )
            return ToolAnswer(Outcome.SEND_FAILED, text, number_last4=last4)

        minutes = max(1, self._policy.valid_for // 60)
        sent_text = messages.resent if replaces_earlier else messages.code_sent
        return ToolAnswer(
            Outcome.CODE_SENT,
            sent_text(last4, minutes),
            attempts_left=self._policy.max_attempts,
            number_last4=last4,
            # A resend replaces the pending request: the newest code is the one that counts.
            set_meta_data={
                META_REQUEST_ID: sent.request_id,
                META_ATTEMPTS_LEFT: self._policy.max_attempts,
                META_NUMBER_LAST4: last4,
            },
        )

    # -- verify_mfa -------------------------------------------------------------------------

    async def _verify(self, call: _Call, args: Any) -> ToolAnswer:
        meta = call.meta_data
        last4 = str(meta.get(META_NUMBER_LAST4) or "")
        answer = await _answering_errors(
            call.tool, last4, self._verify_code(call, args if isinstance(args, dict) else {}, last4)
        )
        account = meta.get(META_ACCOUNT)
        if not isinstance(account, str) or not account:
            return answer
        if answer.outcome is Outcome.VERIFIED:
            answer = replace(
                answer, global_data={**answer.global_data, GLOBAL_VERIFIED_ACCOUNT: account}
            )
        if answer.unset_meta_data:  # the pending code is gone, and its account with it
            answer = replace(answer, unset_meta_data=(*answer.unset_meta_data, META_ACCOUNT))
        return replace(answer, account=account)

    async def _verify_code(self, call: _Call, args: Mapping[str, Any], last4: str) -> ToolAnswer:
        meta = call.meta_data
        request_id = meta.get(META_REQUEST_ID)
        if not isinstance(request_id, str) or not request_id:
            return ToolAnswer(Outcome.NO_CODE_SENT, messages.no_code_sent(), number_last4=last4)

        code = normalize_spoken_code(args.get("token"), self._policy.token_length)
        if code is None:
            # Not sent upstream: a mishearing must not cost the caller a try.
            text = messages.malformed_code(self._policy.token_length)
            return ToolAnswer(Outcome.MALFORMED_CODE, text, number_last4=last4)

        try:
            outcome = await self._provider.verify(request_id, code)
        except CodeNotFound:
            return ToolAnswer(
                Outcome.EXPIRED, messages.code_gone(), number_last4=last4, unset_meta_data=META_KEYS
            )
        except ProviderRejected as exc:
            log.warning(
                "verify_rejected",
                extra={"status": exc.status_code, "reason": exc.reason, "call_id": call.id},
            )
            return ToolAnswer(
                Outcome.PROVIDER_REJECTED, messages.provider_misconfigured(), number_last4=last4
            )
        except ProviderUnavailable as exc:
            log.warning("verify_unavailable", extra={"kind": exc.kind, "call_id": call.id})
            return ToolAnswer(
                Outcome.PROVIDER_UNAVAILABLE, messages.provider_unavailable(), number_last4=last4
            )

        if outcome.verified:
            verified_at = datetime.fromtimestamp(self._clock(), UTC)
            return ToolAnswer(
                Outcome.VERIFIED,
                messages.verified(),
                number_last4=last4,
                unset_meta_data=META_KEYS,
                global_data={
                    GLOBAL_VERIFIED: True,
                    "mfa_verified_at": verified_at.isoformat(timespec="seconds"),
                    "mfa_verified_number_last4": last4,
                },
            )

        tries_left = outcome.attempts_left
        if tries_left is None:
            tries_left = _int_or(meta.get(META_ATTEMPTS_LEFT), self._policy.max_attempts) - 1
        tries_left = max(0, tries_left)
        if tries_left == 0:
            return ToolAnswer(
                Outcome.EXHAUSTED,
                messages.wrong_code(0),
                attempts_left=0,
                number_last4=last4,
                unset_meta_data=META_KEYS,
            )
        return ToolAnswer(
            Outcome.WRONG_CODE,
            messages.wrong_code(tries_left),
            attempts_left=tries_left,
            number_last4=last4,
            set_meta_data={META_ATTEMPTS_LEFT: tries_left},
        )


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
        log.error("agent_send_rate_cap_reached")  # an alert: possible SMS pumping burst
        return messages.agent_busy()
    return messages.too_many_sends_to_number()


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
