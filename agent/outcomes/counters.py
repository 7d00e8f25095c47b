"""Today's counters on the live stream (UTC day): calls, codes sent, verified, failed.

Sent to readers as ``event: stats`` frames. Only tool outcomes (``kind`` ``mfa``)
count; calls are told apart by call id in a bounded LRU, so a long day costs a
bounded amount of memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from skills.mfa.events import Outcome

#: Outcomes the "failed" counter counts: the caller could not be verified this way.
FAILED_OUTCOMES = frozenset(
    {
        Outcome.EXHAUSTED,
        Outcome.EXPIRED,
        Outcome.SEND_FAILED,
        Outcome.PROVIDER_UNAVAILABLE,
        Outcome.PROVIDER_REJECTED,
        Outcome.OTHER_NUMBER_REFUSED,
        Outcome.NO_CALLER_NUMBER,
        Outcome.INVALID_NUMBER,
        Outcome.RATE_LIMITED,
        Outcome.COUNTRY_REFUSED,
        Outcome.NUMBER_TYPE_REFUSED,
        Outcome.ERROR,
        Outcome.ACCOUNT_UNKNOWN,
        Outcome.ACCOUNT_LOCKED,
        Outcome.DIRECTORY_UNAVAILABLE,
    }
)


class DailyCounters:
    """The hub's ``Counters``: totals of today's tool outcomes, reset when the day rolls."""

    _MAX_TRACKED_CALLS = 10_000

    def __init__(self) -> None:
        self.day = ""
        self.calls = self.codes_sent = self.verified = self.failed = 0
        self.lookups = self.unknown_accounts = 0
        self._calls_seen: OrderedDict[str, None] = OrderedDict()

    def count(self, data: Mapping[str, Any]) -> None:
        if data.get("kind") != "mfa":
            return  # sandbox texts and summaries are not tool outcomes
        self._roll(_utc_day(data.get("at")))
        call_id = data.get("call_id") or ""
        if call_id in self._calls_seen:
            self._calls_seen.move_to_end(call_id)
        else:
            self.calls += 1
            self._calls_seen[call_id] = None
            if len(self._calls_seen) > self._MAX_TRACKED_CALLS:
                self._calls_seen.popitem(last=False)
        outcome = data.get("outcome")
        if data.get("lookup") and data.get("lookup") != "locked":
            self.lookups += 1  # a directory lookup ran (found, unknown or unavailable)
            self.unknown_accounts += outcome == Outcome.ACCOUNT_UNKNOWN
        if outcome == Outcome.CODE_SENT:
            self.codes_sent += 1
        elif outcome == Outcome.VERIFIED:
            self.verified += 1
        elif outcome in FAILED_OUTCOMES:
            self.failed += 1

    def snapshot(self) -> dict[str, Any]:
        self._roll(_utc_day(time.time()))
        return {
            "day": self.day,
            "calls": self.calls,
            "codes_sent": self.codes_sent,
            "verified": self.verified,
            "failed": self.failed,
            "lookups": self.lookups,
            "unknown_accounts": self.unknown_accounts,
        }

    def _roll(self, day: str) -> None:
        if day > self.day:
            self.day = day
            self.calls = self.codes_sent = self.verified = self.failed = 0
            self.lookups = self.unknown_accounts = 0
            self._calls_seen.clear()


def _utc_day(at: Any) -> str:
    seconds = at if isinstance(at, int | float) else time.time()
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()
