"""The code-provider protocol and the domain errors every provider raises.

A provider sends a one-time code to a phone and later checks a code against
that request. The skill never knows which provider it talks to: SignalWire's
MFA API in production, the local sandbox without an account. Both follow the
same rules (length, validity window, attempts, single use) and raise the same
errors, so the spoken answers are decided in one place (``messages.py``).

Error tree::

    MfaError
     ├── CodeNotFound         the request is gone: unknown, expired, used, out of attempts
     ├── ProviderRejected     the provider refused our request (401/403/422, other 4xx)
     └── ProviderUnavailable  no usable answer: timeout, connection error, 5xx, bad body
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Channel(StrEnum):
    """How the code reaches the phone: a text (``POST /mfa/sms``) or a voice call that reads
    it out (``POST /mfa/call``); both verify through ``/mfa/{id}/verify``."""

    SMS = "sms"
    CALL = "call"


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What to send: the recipient in E.164, the rules the code obeys, and the channel."""

    to: str
    message: str
    token_length: int
    valid_for: int
    max_attempts: int
    channel: Channel = Channel.SMS


@dataclass(frozen=True, slots=True)
class SentCode:
    """A code is on its way. ``request_id`` is what ``verify`` needs later."""

    request_id: str


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """The provider's answer to one verification attempt.

    ``attempts_left`` is set when the provider knows it (the sandbox does);
    SignalWire does not say, so the caller's tries are counted by the skill.
    """

    verified: bool
    attempts_left: int | None = None


class MfaError(Exception):
    """Base of every error a provider raises. Its text never reaches the caller."""


class CodeNotFound(MfaError):
    """The request no longer exists: unknown id, expired, already used or out of attempts."""


class ProviderRejected(MfaError):
    """The provider refused the request itself (bad credentials, invalid number or field)."""

    def __init__(self, status_code: int, reason: str = "") -> None:
        super().__init__(f"provider rejected the request with HTTP {status_code}")
        self.status_code = status_code
        self.reason = reason

    @property
    def is_auth_failure(self) -> bool:
        return self.status_code in (401, 403)


class ProviderUnavailable(MfaError):
    """No usable answer: timeout, connection error, 5xx or a body we cannot read.

    ``may_have_arrived`` tells whether the provider may have acted on the
    request (a send may have gone out, an attempt may have been used), which
    forbids a blind retry.
    """

    def __init__(self, kind: str, *, may_have_arrived: bool, status_code: int | None = None):
        super().__init__(f"provider unavailable: {kind}")
        self.kind = kind
        self.may_have_arrived = may_have_arrived
        self.status_code = status_code


@runtime_checkable
class CodeProvider(Protocol):
    """Sends one-time codes and checks them. Implementations must be safe to share
    between concurrent calls."""

    name: str

    async def send(self, request: SendRequest) -> SentCode:
        """Send a code; raise ``ProviderRejected`` or ``ProviderUnavailable`` on failure."""
        ...

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        """Check ``code`` for ``request_id``; raise ``CodeNotFound`` when the request is gone."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
