"""The two SWAIG tools, ``send_mfa`` and ``verify_mfa``, as async handlers.

State lives where the platform keeps it, not in this process: the pending
request id and the tries left go into ``meta_data`` (scoped to these two tools
by their shared ``meta_data_token``, never shown to the model), and the verified
flag into ``global_data``, set only here on a successful verification. So any
replica can answer any request of a call, and a restart loses nothing.

Each handler is wrapped in a boundary that turns any exception into a generic
sentence: exception text can carry request data and never reaches the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signalwire.core.function_result import FunctionResult

from skills.mfa import messages
from skills.mfa.events import EventPublisher, MfaEvent, Outcome
from skills.mfa.limits import CounterStoreUnavailable, LimitKind, Refusal, SendLimiter
from skills.mfa.phone import country_code_of, last_digits, mask_number, textable_type, to_e164
from skills.mfa.providers.base import (
    CodeNotFound,
    CodeProvider,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
)
from skills.mfa.spoken_code import normalize_spoken_code

log = logging.getLogger("mfa.tools")

META_REQUEST_ID = "mfa_request_id"
META_ATTEMPTS_LEFT = "mfa_attempts_left"
META_NUMBER_LAST4 = "mfa_number_last4"
META_SENT_AT = "mfa_sent_at"
META_KEYS = [META_REQUEST_ID, META_ATTEMPTS_LEFT, META_NUMBER_LAST4, META_SENT_AT]

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
    ) -> None:
        self._provider = provider
        self._limiter = limiter
        self._policy = policy
        self._publisher = publisher
        self._agent_id = agent_id

    # -- send_mfa ---------------------------------------------------------------------------

    async def send_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        return await self._guarded("send_mfa", self._send, args, raw_data)

    async def _send(self, call: _Call, args: Mapping[str, Any]) -> FunctionResult:
        caller = to_e164(call.raw.get("caller_id_num"), self._policy.default_region)
        requested = args.get("phone_number")
        if requested not in (None, ""):
            target = to_e164(requested, self._policy.default_region)
            if not self._policy.allow_other_numbers and (target is None or target != caller):
                return call.finish(Outcome.OTHER_NUMBER_REFUSED, messages.other_number_refused())
            if target is None:
                return call.finish(Outcome.INVALID_NUMBER, messages.invalid_number())
        else:
            target = caller
            if target is None:
                return call.finish(Outcome.NO_CALLER_NUMBER, messages.no_caller_number())
        call.number = target

        if country_code_of(target) not in self._policy.allowed_country_codes:
            return call.finish(Outcome.COUNTRY_REFUSED, messages.country_not_supported())
        if not textable_type(target):
            return call.finish(Outcome.NUMBER_TYPE_REFUSED, messages.number_cannot_receive_texts())
        replaces_earlier = bool(call.meta_data.get(META_REQUEST_ID))
        if self._limiter is not None:
            try:
                refusal = await self._limiter.try_send(
                    call.id, target, replaces_pending=replaces_earlier
                )
            except CounterStoreUnavailable:
                # Fail closed: without the counters no limit can be enforced.
                log.error("limits_unavailable", extra={"call_id": call.id})
                return call.finish(Outcome.SEND_FAILED, messages.provider_unavailable())
            if refusal is not None:
                log.warning("send_limited", extra={"limit": str(refusal.kind), "call_id": call.id})
                return call.finish(Outcome.RATE_LIMITED, _refusal_message(refusal))

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
            return call.finish(Outcome.PROVIDER_REJECTED, text)
        except ProviderUnavailable as exc:
            log.warning("send_unavailable", extra={"kind": exc.kind, "call_id": call.id})
            text = (
                messages.send_failed_maybe_sent()
                if exc.may_have_arrived
                else messages.provider_unavailable()
            )
            return call.finish(Outcome.SEND_FAILED, text)

        minutes = max(1, self._policy.valid_for // 60)
        text = (messages.resent if replaces_earlier else messages.code_sent)(
            last_digits(target), minutes
        )
        result = call.finish(Outcome.CODE_SENT, text, attempts_left=self._policy.max_attempts)
        # A resend replaces the pending request: the newest code is the one that counts.
        return result.set_metadata(
            {
                META_REQUEST_ID: sent.request_id,
                META_ATTEMPTS_LEFT: self._policy.max_attempts,
                META_NUMBER_LAST4: last_digits(target),
                META_SENT_AT: int(time.time()),
            }
        )

    # -- verify_mfa -------------------------------------------------------------------------

    async def verify_mfa(self, args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        return await self._guarded("verify_mfa", self._verify, args, raw_data)

    async def _verify(self, call: _Call, args: Mapping[str, Any]) -> FunctionResult:
        meta = call.meta_data
        request_id = meta.get(META_REQUEST_ID)
        call.number_last4 = str(meta.get(META_NUMBER_LAST4) or "")
        if not isinstance(request_id, str) or not request_id:
            return call.finish(Outcome.NO_CODE_SENT, messages.no_code_sent())

        code = normalize_spoken_code(args.get("token"), self._policy.token_length)
        if code is None:
            # Not sent upstream: a mishearing must not cost the caller a try.
            return call.finish(
                Outcome.MALFORMED_CODE, messages.malformed_code(self._policy.token_length)
            )

        try:
            outcome = await self._provider.verify(request_id, code)
        except CodeNotFound:
            return call.finish(Outcome.EXPIRED, messages.code_gone()).remove_metadata(META_KEYS)
        except ProviderRejected as exc:
            log.warning(
                "verify_rejected",
                extra={"status": exc.status_code, "reason": exc.reason, "call_id": call.id},
            )
            return call.finish(Outcome.PROVIDER_REJECTED, messages.provider_misconfigured())
        except ProviderUnavailable as exc:
            log.warning("verify_unavailable", extra={"kind": exc.kind, "call_id": call.id})
            return call.finish(Outcome.PROVIDER_UNAVAILABLE, messages.provider_unavailable())

        if outcome.verified:
            result = call.finish(Outcome.VERIFIED, messages.verified())
            result.update_global_data(
                {
                    GLOBAL_VERIFIED: True,
                    "mfa_verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "mfa_verified_number_last4": call.number_last4,
                }
            )
            return result.remove_metadata(META_KEYS)

        tries_left = outcome.attempts_left
        if tries_left is None:
            tries_left = _int_or(meta.get(META_ATTEMPTS_LEFT), self._policy.max_attempts) - 1
        tries_left = max(0, tries_left)
        if tries_left == 0:
            result = call.finish(Outcome.EXHAUSTED, messages.wrong_code(0), attempts_left=0)
            return result.remove_metadata(META_KEYS)
        result = call.finish(
            Outcome.WRONG_CODE, messages.wrong_code(tries_left), attempts_left=tries_left
        )
        return result.set_metadata({META_ATTEMPTS_LEFT: tries_left})

    # -- the tool boundary ------------------------------------------------------------------

    async def _guarded(
        self,
        tool: str,
        body: Callable[[_Call, Mapping[str, Any]], Awaitable[FunctionResult]],
        args: Any,
        raw_data: Any,
    ) -> FunctionResult:
        call = _Call(self._emit, tool, raw_data if isinstance(raw_data, dict) else {})
        try:
            return await body(call, args if isinstance(args, dict) else {})
        except Exception as exc:
            # The type only: the text could hold request data.
            log.error("tool_failed", extra={"tool": tool, "exc_type": type(exc).__name__})
            return call.finish(Outcome.ERROR, messages.unexpected_failure())

    def _emit(self, call: _Call, outcome: Outcome, attempts_left: int | None) -> None:
        if call.number:
            masked = mask_number(call.number)
        else:
            masked = f"***{call.number_last4}" if call.number_last4 else "unknown"
        self._publisher.publish(
            MfaEvent(
                agent_id=self._agent_id,
                call_id=call.id[:128],
                tool=call.tool,
                outcome=outcome,
                masked_number=masked,
                provider=self._provider.name,
                duration_ms=(time.perf_counter() - call.started) * 1000,
                attempts_left=attempts_left,
            )
        )


class _Call:
    """One tool invocation: the request's facts, and the event it ends with."""

    def __init__(
        self,
        emit: Callable[[_Call, Outcome, int | None], None],
        tool: str,
        raw: dict[str, Any],
    ) -> None:
        self._emit = emit
        self.tool = tool
        self.raw = raw
        call_id = raw.get("call_id")
        self.id = call_id if isinstance(call_id, str) else ""
        meta = raw.get("meta_data")
        self.meta_data: Mapping[str, Any] = meta if isinstance(meta, dict) else {}
        self.number: str | None = None
        self.number_last4 = ""
        self.started = time.perf_counter()

    def finish(
        self, outcome: Outcome, text: str, *, attempts_left: int | None = None
    ) -> FunctionResult:
        """Publish the outcome's event and start the reply the model will read."""
        self._emit(self, outcome, attempts_left)
        return FunctionResult(text)


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
