"""The local stand-in for SignalWire's MFA API, used when there is no SignalWire account.

It obeys the same rules as SignalWire (``token_length`` digits, a ``valid_for`` window,
``max_attempts`` tries where the first one counts, single use) and raises the same errors,
so the skill behaves identically on both. Instead of sending an SMS it hands a
``SandboxText`` to an injected ``deliver`` callback (the console, a test, a fake phone).

Pending codes are kept hashed in a ``PendingCodes`` store (``pending_codes.py``): a
SQLite file by default, so a restart or a second process sharing the file loses
nothing; Redis for replicas. Each check-and-update is one atomic step there, so two
simultaneous right answers verify exactly once.

Nothing here logs; the code appears only in the ``SandboxText`` handed to ``deliver``.
"""

from __future__ import annotations

import inspect
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from skills.mfa.delivery.providers.base import (
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)
from skills.mfa.delivery.providers.pending_codes import PendingCodes, SqlitePendingCodes, hash_code

__all__ = ["SandboxProvider", "SandboxText", "secret_digits"]

_SALT_BYTES = 16
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True, slots=True)
class SandboxText:
    """The text message (or voice call) the sandbox "sends": what SignalWire would put on
    the phone.

    ``body`` is the request's message followed by a space and the code; ``code`` is given
    separately so a test or a fake phone need not parse it. Both are left out of ``repr``
    so that printing or logging a ``SandboxText`` by accident does not leak the code.
    """

    request_id: str
    to: str
    body: str = field(repr=False)
    code: str = field(repr=False)
    sent_at: float
    # "call": a voice call would read ``body`` out (``POST /mfa/call``); "sms": a text.
    channel: str = "sms"


Deliver = Callable[[SandboxText], Awaitable[None] | None]


def secret_digits(length: int) -> str:
    """``length`` uniformly random digits from the OS CSPRNG, leading zeros kept."""
    return str(secrets.randbelow(10**length)).zfill(length)


class SandboxProvider:
    """A ``CodeProvider`` that makes and checks codes itself instead of asking SignalWire.

    ``store`` is a SQLite file path (one process, or several sharing a disk) or any
    ``PendingCodes`` (``RedisPendingCodes`` for replicas on several machines).
    """

    name = "sandbox"

    def __init__(
        self,
        store: str | Path | PendingCodes,
        *,
        deliver: Deliver,
        clock: Callable[[], float] = time.time,
        random_digits: Callable[[int], str] | None = None,
    ) -> None:
        """``clock`` returns seconds on the same scale as ``time.time`` and decides expiry;
        every instance sharing a store must use the same clock. ``random_digits(n)`` must
        return ``n`` digits; it exists so tests can know the code, and defaults to
        ``secrets``.
        """
        self._store: PendingCodes = (
            SqlitePendingCodes(store) if isinstance(store, str | Path) else store
        )
        self._deliver = deliver
        self._clock = clock
        self._random_digits = random_digits or secret_digits
        self._closed = False

    async def send(self, request: SendRequest) -> SentCode:
        """Store a new pending code, then hand its text to ``deliver``.

        The code is stored before delivery, so a code that reaches the phone can always
        be verified. If delivery fails it is removed again and the send reports
        ``ProviderUnavailable`` with ``may_have_arrived=False``. Invalid fields are refused
        with ``ProviderRejected(422)``, as SignalWire does.
        """
        self._check_open()
        _validate(request)
        code = self._random_digits(request.token_length)
        if len(code) != request.token_length or not code.isascii() or not code.isdigit():
            raise ValueError(f"random_digits must return {request.token_length} digits")
        request_id = str(uuid.uuid4())
        now = self._clock()
        salt = secrets.token_bytes(_SALT_BYTES)
        await self._store.insert(
            request_id,
            salt,
            hash_code(salt, code),
            now + request.valid_for,
            request.max_attempts,
            now,
        )

        text = SandboxText(
            request_id=request_id,
            to=request.to,
            body=f"{request.message} {code}",
            code=code,
            sent_at=now,
            channel=str(request.channel),
        )
        try:
            result = self._deliver(text)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            await self._store.delete(request_id)
            raise ProviderUnavailable("delivery failed", may_have_arrived=False) from exc
        return SentCode(request_id)

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        """Check one attempt; raise ``CodeNotFound`` if the request is gone.

        Gone means unknown, expired (``now >= expires_at``), already verified or out of
        attempts. Every answered attempt, right or wrong, uses one try, so
        ``attempts_left`` is what remains after this one. A right code deletes the
        pending code (single use); a wrong one that uses the last try deletes it too.
        """
        self._check_open()
        return await self._store.check(request_id, code, self._clock())

    def pending_count(self) -> int:
        """Number of live pending codes (not expired, not used, tries left) in a SQLite
        store. Synchronous and for tests only: nothing in the product counts codes, so
        the ``PendingCodes`` protocol does not ask a store to."""
        self._check_open()
        if not isinstance(self._store, SqlitePendingCodes):
            raise TypeError("only a SQLite store counts its pending codes")
        return self._store.pending_count(self._clock())

    async def aclose(self) -> None:
        """Refuse further calls. Stores hold no open connection of their own."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("SandboxProvider is closed")


def _validate(request: SendRequest) -> None:
    """Refuse what SignalWire would refuse with 422 rather than invent a code for it."""
    if not _E164.fullmatch(request.to):
        raise ProviderRejected(422, "to must be an E.164 number")
    if request.token_length < 1:
        raise ProviderRejected(422, "token_length must be at least 1")
    if request.valid_for <= 0:
        raise ProviderRejected(422, "valid_for must be positive")
    if request.max_attempts < 1:
        raise ProviderRejected(422, "max_attempts must be at least 1")
