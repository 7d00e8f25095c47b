"""``send_mfa``'s path: from the request to a code sent (or the reason none was).

The recipient is the caller's own number, the number on file for an account (through
``AccountRecipients``), or a number the operator allowed; then the country and number
type, the replay record (a platform retry gets the first answer), the limits (fail
closed without their store), the provider, and the ledger (this code is now the call's
newest, so older ones stop verifying).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from skills.mfa.answer import ToolAnswer
from skills.mfa.delivery.line_type import LookupSource
from skills.mfa.delivery.providers.base import Channel
from skills.mfa.events import Outcome
from skills.mfa.flow import messages
from skills.mfa.flow.channels import ChannelChoice, ChannelPolicy, choose_channel
from skills.mfa.flow.recipient import AccountRecipients
from skills.mfa.flow.tool_call import (
    PathBase,
    Shared,
    ToolCall,
    answering_errors,
    refused_meta_data,
)
from skills.mfa.flow.upstream import (
    GLOBAL_VERIFIED,
    GLOBAL_VERIFIED_ACCOUNT,
    GLOBAL_VERIFIED_KEYS,
    GLOBAL_VERIFIED_LAST4,
)
from skills.mfa.ledgers.binding import META_REQUEST_ID, Closed, Pending, Refused
from skills.mfa.ledgers.code_ledger import LedgerUnavailable
from skills.mfa.ledgers.replay import Found
from skills.mfa.limits.send_limits import (
    CounterStoreUnavailable,
    LimitKind,
    Refusal,
    SendLimiter,
    SendTicket,
)
from skills.mfa.log_throttle import throttled_alerts
from skills.mfa.phone import country_code_of, last_digits, textable_type, to_e164

alerts = throttled_alerts()  # once a minute, with a count
log = logging.getLogger("mfa.tools")


class SendPath(PathBase):
    """Decides one ``send_mfa`` request; built once by ``MfaTools`` with the shared parts."""

    def __init__(
        self,
        shared: Shared,
        *,
        limiter: SendLimiter | None,
        accounts: AccountRecipients | None,
        channels: ChannelPolicy | None = None,
    ) -> None:
        super().__init__(shared)
        self._limiter = limiter
        self._accounts = accounts
        self._channels = channels or ChannelPolicy()

    def _message(self, language: str, channel: Channel) -> str:
        """The words before the code: the text message's, or the voice call's."""
        text = self._policy.message_for(language)
        if channel is Channel.CALL:
            chosen = language or self._policy.languages[0]
            return self._channels.voice_message_for(chosen, text)
        return text

    async def answer(self, call: ToolCall, args: Any, language: str) -> ToolAnswer:
        state = self._binder.open(call.id, call.meta_data)
        if isinstance(state, Refused):
            return refused_meta_data(call, state)
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
        call: ToolCall,
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
        return await answering_errors(
            call.tool, last4, self._send_to(call, target, last4, state, request)
        )

    def _recipient(self, call: ToolCall, args: Mapping[str, Any]) -> str | ToolAnswer:
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
        call: ToolCall,
        target: str,
        last4: str,
        state: Pending | Closed,
        request: Mapping[str, str | None],
    ) -> ToolAnswer:
        if country_code_of(target) not in self._policy.allowed_country_codes:
            return ToolAnswer(
                Outcome.COUNTRY_REFUSED, messages.country_not_supported(), number_last4=last4
            )
        # Premium rate, shared cost, pagers...: refused before any (billable) lookup.
        if not textable_type(target):
            return ToolAnswer(
                Outcome.NUMBER_TYPE_REFUSED,
                messages.number_cannot_receive_texts(),
                number_last4=last4,
            )
        on_file = request["account"] is not None
        caller = to_e164(call.raw.get("caller_id_num"), self._policy.default_region)
        choice = await choose_channel(self._channels, target, caller=caller, on_file=on_file)
        line = _line_fields(choice)
        if choice.refusal is not None:
            if choice.refusal is Outcome.LANDLINE:
                text = (
                    messages.landline_on_file_cannot_text()
                    if on_file
                    else messages.landline_cannot_text()
                )
            else:
                text = messages.line_type_refused()
            log.info(
                "send_refused_line", extra={"line_type": line["line_type"], "call_id": call.id}
            )
            return ToolAnswer(choice.refusal, text, number_last4=last4, **line)
        # The channel is not part of the request's replay key: a platform retry of a send
        # gets the first answer even if the line type came back otherwise the second time
        # (a lookup that failed, then answered), never a second code by the other channel.
        channel = choice.channel or Channel.SMS
        answer = await self._reserve_and_send(call, target, last4, state, request, channel)
        return dataclasses.replace(answer, **line) if line["line_type"] else answer

    async def _reserve_and_send(
        self,
        call: ToolCall,
        target: str,
        last4: str,
        state: Pending | Closed,
        request: Mapping[str, str | None],
        channel: Channel,
    ) -> ToolAnswer:
        """The replay record, the limits (counting a voice code like a text), the send."""
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
                message=self._message(request.get("language") or "", channel),
                channel=channel,
            )
            answer = await self._after_send(call, answer, request["account"])
        finally:
            self._replays.settle(claim, answer)
        return answer

    async def _after_send(
        self, call: ToolCall, answer: ToolAnswer, account: str | None
    ) -> ToolAnswer:
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


def _line_fields(choice: ChannelChoice) -> dict[str, str]:
    """What the answer (and so the event, metrics and record) says of the line lookup."""
    if choice.line.source is LookupSource.OFF:
        return {"line_type": "", "line_lookup": ""}
    return {"line_type": str(choice.line.line_type), "line_lookup": str(choice.line.source)}


def _verified_other_subject(global_data: Any, last4: str, account: str | None) -> bool:
    """Whether the call's ``global_data`` names a verified subject other than this send's
    (another number's last four, or another account, or an account against none)."""
    if not isinstance(global_data, dict) or global_data.get(GLOBAL_VERIFIED) is not True:
        return False
    return (
        global_data.get(GLOBAL_VERIFIED_LAST4) != last4
        or global_data.get(GLOBAL_VERIFIED_ACCOUNT) != account
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
    # The pumping limits (skills/mfa/limits/pumping.py) read like the per-number one: the caller
    # hears the same neutral sentence as for any other limit on their number.
    return messages.too_many_sends_to_number()
