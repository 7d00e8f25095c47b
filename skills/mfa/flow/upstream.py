"""What the provider's answer means for the call: the send and verify answers.

``MfaTools`` decides whether a request may reach the provider at all (binding,
replay, limits); this module asks the provider and turns each of its answers or
errors into one ``ToolAnswer``: the sentence, the ``meta_data`` to seal or close,
the ``global_data`` of a verified caller, and the refund of a send that never left.

A send answered with a 5xx may still have texted a code, but SignalWire returns the
request id only in a 200, and a code without its id can never be verified. So a text
that the service answered with a 5xx is sent once more, at once, while the caller's
answer can still come in time (``RESEND_WITHIN_SECONDS``): the second code's id is kept,
so the call holds a code that verifies, and the model is told the newest text is the one
that counts. The second text is counted by the limits like any other (a limit that
refuses it means no second try). When no second try fits or it fails too, the answer
promises no code (a text that arrives anyway cannot be checked on this call). Timeouts and
unreadable answers are not sent again: the deadline is spent, or the service answers in a
way not to repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from skills.mfa.answer import ToolAnswer
from skills.mfa.delivery.providers.base import (
    Channel,
    CodeNotFound,
    CodeProvider,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
    SentCode,
)
from skills.mfa.events import Outcome
from skills.mfa.flow import messages
from skills.mfa.flow.policy import CodePolicy
from skills.mfa.ledgers.binding import (
    META_ACCOUNT,
    META_CHANNEL,
    META_CLOSED,
    PENDING_KEYS,
    VOICE,
    Binder,
    Closed,
    Pending,
)
from skills.mfa.limits.send_limits import CounterStoreUnavailable, SendLimiter, SendTicket
from skills.mfa.speech.spoken_redaction import redact_spoken_numbers

log = logging.getLogger("mfa.tools")

GLOBAL_VERIFIED = "mfa_verified"
GLOBAL_VERIFIED_ACCOUNT = "mfa_verified_account"
GLOBAL_VERIFIED_AT = "mfa_verified_at"
GLOBAL_VERIFIED_LAST4 = "mfa_verified_number_last4"
#: What ``global_data`` says about the verified subject; cleared together.
GLOBAL_VERIFIED_KEYS = (
    GLOBAL_VERIFIED,
    GLOBAL_VERIFIED_AT,
    GLOBAL_VERIFIED_LAST4,
    GLOBAL_VERIFIED_ACCOUNT,
)

#: What a final outcome removes from meta_data (it leaves a new ``mfa_closed`` instead).
META_KEYS = PENDING_KEYS
#: Both tries of a send end within this much (the caller hears an answer before 10 s);
#: a second try starts only with at least ``MIN_RESEND_SECONDS`` of it left.
RESEND_WITHIN_SECONDS = 8.0
MIN_RESEND_SECONDS = 1.0


class Upstream:
    """The provider calls of both tools and the answers they lead to."""

    def __init__(
        self,
        *,
        provider: CodeProvider,
        policy: CodePolicy,
        binder: Binder,
        limiter: SendLimiter | None,
        clock: Callable[[], float],
    ) -> None:
        self._provider = provider
        self._policy = policy
        self._binder = binder
        self._limiter = limiter
        self._clock = clock

    async def send(
        self,
        call_id: str,
        target: str,
        last4: str,
        state: Pending | Closed,
        ticket: SendTicket | None,
        *,
        account: str | None = None,
        message: str | None = None,
        channel: Channel = Channel.SMS,
    ) -> ToolAnswer:
        """Text ``target`` (or call it, ``channel``); ``account`` (the directory's, when it
        named the number) is sealed with the pending code, so the verified caller's account
        comes from it. ``message`` is the words before the code in the caller's language (the
        policy's first by default)."""
        request = SendRequest(
            to=target,
            message=message or self._policy.message,
            token_length=self._policy.token_length,
            valid_for=self._policy.valid_for,
            max_attempts=self._policy.max_attempts,
            channel=channel,
        )
        try:
            sent, resent = await self._send_confirmed(request, call_id)
        except ProviderRejected as exc:
            log.warning(
                "send_rejected",
                extra={
                    "status": exc.status_code,
                    "reason": _loggable(exc.reason),
                    "call_id": call_id,
                },
            )
            text = (
                messages.provider_misconfigured()
                if exc.is_auth_failure
                else messages.number_refused_by_provider()
            )
            return ToolAnswer(Outcome.PROVIDER_REJECTED, text, number_last4=last4)
        except ProviderUnavailable as exc:
            log.warning("send_unavailable", extra={"kind": exc.kind, "call_id": call_id})
            if exc.may_have_arrived:
                text = messages.send_unconfirmed()
            else:
                # It never left (breaker open, no connection): it costs no budget.
                text = messages.provider_unavailable()
                if ticket is not None and self._limiter is not None:
                    await self._limiter.refund(ticket)
            return ToolAnswer(Outcome.SEND_FAILED, text, number_last4=last4)

        minutes = max(1, self._policy.valid_for // 60)
        replaces_earlier = isinstance(state, Pending)
        if channel is Channel.CALL:
            sent_text = (
                messages.recalled_with_code if replaces_earlier else messages.calling_with_code
            )
        else:
            sent_text = messages.resent if replaces_earlier else messages.code_sent
        if resent:
            sent_text = messages.sent_after_unconfirmed(sent_text)
        sealed = self._binder.seal(
            call_id,
            request_id=sent.request_id,
            attempts_left=self._policy.max_attempts,
            last4=last4,
            sent_at=int(self._clock()),
            account=account,
            channel=str(channel),
        )
        # A new code's sealed fields replace the earlier code's: a key the new one does not
        # have (an account, a voice channel) goes.
        stale: tuple[str, ...] = ()
        if isinstance(state, Pending):
            if account is None and state.account is not None:
                stale += (META_ACCOUNT,)
            if channel is Channel.SMS and state.channel == VOICE:
                stale += (META_CHANNEL,)
        return ToolAnswer(
            Outcome.CODE_SENT,
            sent_text(last4, minutes),
            attempts_left=self._policy.max_attempts,
            number_last4=last4,
            # A resend replaces the pending request: the newest code is the one that counts.
            set_meta_data=sealed,
            unset_meta_data=stale,
            channel=str(channel),
        )

    async def _send_confirmed(self, request: SendRequest, call_id: str) -> tuple[SentCode, bool]:
        """The provider's send, and whether it took a second try (see the module's
        docstring). A second try that fails raises the first's error: the first may have
        gone out, so nothing is refunded."""
        started = time.monotonic()
        try:
            return await self._provider.send(request), False
        except ProviderUnavailable as exc:
            left = RESEND_WITHIN_SECONDS - (time.monotonic() - started)
            # A voice code is not placed twice: two calls ringing is worse than two texts.
            text_with_a_5xx = request.channel is Channel.SMS and exc.kind == "server_error"
            if not text_with_a_5xx or left < MIN_RESEND_SECONDS:
                raise
            first = exc
        if self._limiter is not None:
            # The second text is a send like any other for the limits and the pumping
            # counts (the number's, its prefix's, the agent's, the call's cap), so a space
            # answering 5xx cannot double what they allow. Not the call's cooldown: that is
            # for the caller asking again, and this is no asking.
            try:
                refusal = await self._limiter.try_send(call_id, request.to, replaces_pending=False)
            except CounterStoreUnavailable:
                raise first from None
            if refusal is not None:
                log.warning(
                    "send_unconfirmed_not_resent",
                    extra={"limit": str(refusal.kind), "call_id": call_id},
                )
                raise first from None
        log.warning(
            "send_unconfirmed_resent", extra={"status": first.status_code, "call_id": call_id}
        )
        try:
            async with asyncio.timeout(left):
                return await self._provider.send(request), True
        except (ProviderUnavailable, ProviderRejected, TimeoutError):
            raise first from None

    async def verify(
        self, call_id: str, pending: Pending, code: str, *, check: int = 0
    ) -> ToolAnswer:
        """Check ``code`` upstream. ``check`` is the ledger's number for this check (1 for
        the first, 0 when unknown): the tries left are the fewest that the provider, the
        sealed state and the ledger allow, so parallel checks of one sealed state do not
        all say "two tries left"."""
        last4 = pending.last4
        closed = {META_CLOSED: self._binder.close(call_id)}
        try:
            outcome = await self._provider.verify(pending.request_id, code)
        except CodeNotFound:
            return ToolAnswer(
                Outcome.EXPIRED,
                messages.code_gone(),
                number_last4=last4,
                set_meta_data=closed,
                unset_meta_data=META_KEYS,
            )
        except ProviderRejected as exc:
            log.warning(
                "verify_rejected",
                extra={
                    "status": exc.status_code,
                    "reason": _loggable(exc.reason),
                    "call_id": call_id,
                },
            )
            return ToolAnswer(
                Outcome.PROVIDER_REJECTED, messages.provider_misconfigured(), number_last4=last4
            )
        except ProviderUnavailable as exc:
            log.warning("verify_unavailable", extra={"kind": exc.kind, "call_id": call_id})
            return ToolAnswer(
                Outcome.PROVIDER_UNAVAILABLE,
                messages.provider_unavailable(),
                number_last4=last4,
                provider_untouched=not exc.may_have_arrived,
            )

        if outcome.verified:
            verified_at = datetime.fromtimestamp(self._clock(), UTC)
            verified = {
                GLOBAL_VERIFIED: True,
                GLOBAL_VERIFIED_AT: verified_at.isoformat(timespec="seconds"),
                GLOBAL_VERIFIED_LAST4: last4,
            }
            if pending.account is not None:
                verified[GLOBAL_VERIFIED_ACCOUNT] = pending.account
            return ToolAnswer(
                Outcome.VERIFIED,
                messages.verified(),
                number_last4=last4,
                set_meta_data=closed,
                unset_meta_data=META_KEYS,
                global_data=verified,
            )

        allowed = [pending.attempts_left - 1]
        if outcome.attempts_left is not None:
            allowed.append(outcome.attempts_left)
        if check > 0:
            allowed.append(self._policy.max_attempts - check)
        tries_left = max(0, min(allowed))
        if tries_left == 0:
            return self.spent(call_id, pending)
        return ToolAnswer(
            Outcome.WRONG_CODE,
            messages.wrong_code(tries_left),
            attempts_left=tries_left,
            number_last4=last4,
            set_meta_data=self._binder.reseal(call_id, pending, tries_left),
        )

    def spent(self, call_id: str, pending: Pending) -> ToolAnswer:
        """The code's last try is used: exhausted, and closed."""
        return ToolAnswer(
            Outcome.EXHAUSTED,
            messages.wrong_code(0),
            attempts_left=0,
            number_last4=pending.last4,
            set_meta_data={META_CLOSED: self._binder.close(call_id)},
            unset_meta_data=META_KEYS,
        )


def _loggable(reason: str) -> str:
    """The provider's error text, with anything that reads as a number masked: a 422's
    detail may repeat the ``to`` number, and logs never hold a full number."""
    return redact_spoken_numbers(reason, 4, "[redacted]")
