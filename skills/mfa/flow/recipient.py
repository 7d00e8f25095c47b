"""Who ``send_mfa`` texts when a directory is configured: the number on file for an account.

``AccountRecipients.send`` reads the account number the model heard, looks it up, and
hands the number on file to the tools' usual send (country, number type, limits,
provider), whatever number the caller is calling from. It is also where the directory
stops being an oracle or a texting gun:

* an unknown account and a found account whose send did not end in a code sent (a limit,
  the provider refusing the number, the provider down, its breaker open) get the same
  sentence (``messages.account_not_sent``), padded to the same minimum time
  (``neutral_answer_seconds``), so neither words nor timing say which accounts exist;
* each such neutral answer counts against the call (``MissCounter``): a lookup takes its
  place before it starts, atomically, and gives it back only when a code went out; after
  ``unknown_accounts_per_call`` the call can look up no more accounts, even a valid one;
  counting failed sends as well as unknowns means the lockout itself reveals nothing;
* each lookup counts in the agent-wide rate (``SendLimiter.try_lookup``), and per-recipient
  limits apply to the number on file (the usual send checks that number).

A directory outage is answered as one (it is the same for every account, so it says
nothing about this one). Logs show an account masked, never a number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import Outcome
from skills.mfa.flow import messages
from skills.mfa.flow.directory.base import (
    Directory,
    DirectoryRejected,
    DirectoryUnavailable,
    spoken_account,
)
from skills.mfa.flow.directory.misses import MissCounter
from skills.mfa.limits.send_limits import CounterStoreUnavailable, Refusal
from skills.mfa.log_throttle import throttled_alerts
from skills.mfa.phone import mask_account

alerts = throttled_alerts()  # once a minute, with a count
log = logging.getLogger("mfa.directory")


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    """From the ``directory`` settings."""

    caller_number_allowed: bool = False
    unknown_accounts_per_call: int = 3
    neutral_answer_seconds: float = 1.0
    # The languages whose number words a spoken account number may use (English always).
    languages: tuple[str, ...] = ("en",)


#: The tools' usual send: to this E.164 number, for this account (sealed with the code).
SendTo = Callable[[str, str], Awaitable[ToolAnswer]]


class AccountRecipients:
    def __init__(
        self,
        directory: Directory,
        misses: MissCounter,
        policy: AccountPolicy,
        *,
        try_lookup: Callable[[], Awaitable[Refusal | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` time the neutral answers; tests pass fakes."""
        self.directory = directory
        self.policy = policy
        self._misses = misses
        self._try_lookup = try_lookup
        self._clock = clock
        self._sleep = sleep

    def applies(self, args: Mapping[str, Any]) -> bool:
        """Whether this send goes to an account's number rather than the caller's."""
        named = args.get("account_number") not in (None, "")
        return named or not self.policy.caller_number_allowed

    async def send(self, call_id: str, said: Any, send_to: SendTo) -> ToolAnswer:
        """The answer to ``send_mfa(account_number=said)``; ``send_to(number, account)`` is
        the tools' usual send to an E.164 number, with the account sealed to the code."""
        if said in (None, ""):
            return ToolAnswer(Outcome.ACCOUNT_REQUIRED, messages.account_required())
        account = spoken_account(said, self.policy.languages)
        if account is None:
            return ToolAnswer(Outcome.ACCOUNT_UNCLEAR, messages.account_unclear())
        started = self._clock()
        try:
            answer = await self._look_up_and_send(call_id, account, send_to)
        except CounterStoreUnavailable:
            # Fail closed: without the counters the lockout cannot be enforced.
            log.error("limits_unavailable", extra={"call_id": call_id})
            answer = ToolAnswer(Outcome.SEND_FAILED, messages.provider_unavailable())
        answer = replace(answer, account=account)
        log.info(
            "directory_lookup",
            extra={
                "call_id": call_id,
                "account": mask_account(account),
                "lookup": answer.lookup,
                "outcome": str(answer.outcome),
            },
        )
        if answer.text == messages.account_not_sent():
            await self._pad(started)
        return answer

    async def _look_up_and_send(self, call_id: str, account: str, send_to: SendTo) -> ToolAnswer:
        # The lookup takes its place in the call's budget first, atomically: parallel
        # requests of one call cannot all see "no misses yet" (misses.py).
        if not await self._misses.take(call_id, self.policy.unknown_accounts_per_call):
            return ToolAnswer(
                Outcome.ACCOUNT_LOCKED, messages.account_lookups_ended(), lookup="locked"
            )
        answer, missed = await self._counted_lookup(call_id, account, send_to)
        if not missed:
            await self._misses.give_back(call_id)
        return answer

    async def _counted_lookup(
        self, call_id: str, account: str, send_to: SendTo
    ) -> tuple[ToolAnswer, bool]:
        """The answer, and whether it counts as a miss (it stays in the call's budget)."""
        if self._try_lookup is not None and await self._try_lookup() is not None:
            alerts.error("agent_send_rate_cap_reached")  # a burst of lookups
            busy = ToolAnswer(
                Outcome.RATE_LIMITED, messages.agent_busy(), lookup="refused", limit="agent_rate"
            )
            return busy, False
        try:
            number = await self.directory.lookup(account)
        except DirectoryRejected as exc:
            log.error("directory_rejected", extra={"status": exc.status_code})
            rejected = ToolAnswer(
                Outcome.DIRECTORY_UNAVAILABLE, messages.provider_misconfigured(), lookup="rejected"
            )
            return rejected, False
        except DirectoryUnavailable as exc:
            # The same for every account, found or not: it tells nothing about one.
            log.warning("directory_unavailable", extra={"kind": exc.kind})
            unavailable = ToolAnswer(
                Outcome.DIRECTORY_UNAVAILABLE,
                messages.provider_unavailable(),
                lookup="unavailable",
            )
            return unavailable, False
        if number is None:
            unknown = ToolAnswer(
                Outcome.ACCOUNT_UNKNOWN, messages.account_not_sent(), lookup="unknown"
            )
            return unknown, True

        answer = replace(await send_to(number, account), lookup="found")
        if (answer.first_outcome or answer.outcome) is Outcome.CODE_SENT:
            # A replay (a duplicate of a request already answered) keeps its place in the
            # budget: identical requests in parallel must not buy lookups.
            return answer, answer.outcome is Outcome.REPLAYED
        # Anything else (a limit, the provider down or refusing, the breaker open) reads
        # and counts exactly like an unknown account: an outage answered only for found
        # accounts, fast and unpadded, would list which accounts exist. The event keeps
        # the real outcome and the last digits for the operator.
        return replace(answer, text=messages.account_not_sent()), True

    async def _pad(self, started: float) -> None:
        """Neutral answers take at least ``neutral_answer_seconds``, found or not."""
        left = self.policy.neutral_answer_seconds - (self._clock() - started)
        if left > 0:
            await self._sleep(left)
