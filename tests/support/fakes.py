"""Small fakes shared by the unit tests: real implementations, not mocks."""

from __future__ import annotations

import asyncio
from collections import deque

from skills.mfa.delivery.providers.base import (
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)

T0 = 1_800_000_000.0

SEND_REQUEST = SendRequest(
    to="+15551230001", message="Your code:", token_length=6, valid_for=600, max_attempts=3
)


class FakeClock:
    """``time.time`` under the test's control."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def outage() -> ProviderUnavailable:
    return ProviderUnavailable("server_error", may_have_arrived=True, status_code=503)


class ScriptedProvider:
    """Answers from a script: an exception to raise, or "ok". ``calls`` counts the
    requests that actually ran; ``gate``, when set, holds each request until released."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: deque[Exception | str] = deque()
        self.calls = 0
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    def then(self, *answers: Exception | str) -> ScriptedProvider:
        self.script.extend(answers)
        return self

    async def _answer(self) -> None:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        answer = self.script.popleft() if self.script else "ok"
        if isinstance(answer, Exception):
            raise answer

    async def send(self, request: SendRequest) -> SentCode:
        await self._answer()
        return SentCode(f"req-{self.calls}")

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        await self._answer()
        return VerifyOutcome(verified=code == "123456")

    async def aclose(self) -> None:
        pass
