"""Where a final outcome is kept before the caller hears it: the ``OutcomeRecorder`` protocol.

A final outcome (verified, exhausted, expired) is what a business builds an account
change on, so the tool does not answer until it is written down (the agent's durable
outbox, ``agent/outcomes/``). The skill names only this protocol; the agent implements
it, so ``skills/`` never imports ``agent/``.
"""

from __future__ import annotations

from typing import Protocol

from skills.mfa.events import MfaEvent


class OutcomeRecorder(Protocol):
    async def record(self, event: MfaEvent) -> None:
        """Keep ``event`` (a final outcome) durably; return once it is written.

        Raises when it could not be written; the tool still answers (the outcome
        happened upstream) and logs the failure."""
        ...
