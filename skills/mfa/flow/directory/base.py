"""The account directory: which phone number is on file for an account.

A directory answers one question, ``lookup(account) -> E.164 number or None``,
for the ``send_mfa(account_number=...)`` path: the code goes to the number on
file, whatever number the caller is calling from. Two implementations, chosen
at start-up: a CSV file (``csv_directory.py``) and the business's own server
(``http_directory.py``), the latter behind a circuit breaker (``guarded.py``).

Error tree::

    MfaError
     ├── DirectoryRejected     the server refused our request (401/403, other 4xx): setup
     └── DirectoryUnavailable  no usable answer: timeout, connection error, 5xx, bad body

Account numbers are digits only, from 1 to ``MAX_ACCOUNT_DIGITS``. They are
personal data: logs and events show ``mask_account`` of one, never the whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from skills.mfa.delivery.providers.base import MfaError
from skills.mfa.speech.spoken_code import read_digits

MAX_ACCOUNT_DIGITS = 32
_SEPARATORS = str.maketrans("", "", " -./")


class DirectoryRejected(MfaError):
    """The directory server refused the request itself (bad secret, bad request)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"directory rejected the lookup with HTTP {status_code}")
        self.status_code = status_code


class DirectoryUnavailable(MfaError):
    """No usable answer from the directory: timeout, connection error, 5xx, bad body."""

    def __init__(self, kind: str, *, status_code: int | None = None) -> None:
        super().__init__(f"directory unavailable: {kind}")
        self.kind = kind
        self.status_code = status_code


@runtime_checkable
class Directory(Protocol):
    """Finds the number on file. Implementations must be safe to share between calls."""

    name: str

    async def lookup(self, account: str) -> str | None:
        """The E.164 number on file for ``account`` (digits), or None for an unknown account.

        Raises ``DirectoryUnavailable`` or ``DirectoryRejected`` when it cannot tell."""
        ...


def spoken_account(value: object, languages: Iterable[str] = ("en",)) -> str | None:
    """The account number the model heard ("four oh seven, double two", "4072-2", 40722,
    "cuatro cero siete, veintidós" with Spanish in ``languages``), as digits, or None when
    it does not read as one number of a sensible length."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits: str | None = str(value) if value >= 0 else None
    else:
        digits = read_digits(value, languages)
    return digits if digits and len(digits) <= MAX_ACCOUNT_DIGITS else None


def file_account(value: str) -> str | None:
    """An account number as a file writes it: digits with optional spaces, dashes, dots."""
    digits = value.strip().translate(_SEPARATORS)
    if not digits.isascii() or not digits.isdigit() or len(digits) > MAX_ACCOUNT_DIGITS:
        return None
    return digits
