"""What the agent keeps in ``meta_data``, sealed to the call it was written for.

``meta_data`` comes back in every SWAIG request body, and anyone holding the
basic-auth credentials can mint tool tokens for any ``call_id`` and post any
``meta_data``. So the agent treats it as a claim to check, not as state to
trust. Everything the agent writes there about a pending code is sealed with

    mfa_binding = hex(HMAC-SHA256(key, canonical))
    canonical   = JSON of ["mfa-binding-v1", call_id, request_id, attempts_left,
                           last4, sent_at, account]   (compact, ASCII, account null if none)
                  + ["call"] for a code read out by a voice call (``mfa_channel``: "call";
                  absent for a text, so a texted code's seal is what it always was)
    key         = HMAC-SHA256(SIGNALWIRE_SWAIG_SECRET, "mfa-binding-v1")

so a claim copied from another call, or with any field altered, added or
dropped, does not open. Without ``SIGNALWIRE_SWAIG_SECRET`` the key is random
per process: the SDK's tool tokens are random per process too in that case, so
a restart already ends the calls in flight and nothing new is lost. Replicas and
restarts keep working when the secret is set, because the key is derived from it.

After a final outcome (verified, exhausted, expired) the pending fields are
removed and a sealed ``mfa_closed`` marker (a random nonce and its MAC) is left,
so the call's state differs from a fresh call's and a new send is a new request
(see ``replay.py``).

Every field's type and size is checked before anything else is done with it: a
1 MB value is refused on its length, never hashed, logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

META_REQUEST_ID = "mfa_request_id"
META_ATTEMPTS_LEFT = "mfa_attempts_left"
META_NUMBER_LAST4 = "mfa_number_last4"
META_SENT_AT = "mfa_sent_at"
META_ACCOUNT = "mfa_account"
META_CHANNEL = "mfa_channel"
META_BINDING = "mfa_binding"
META_CLOSED = "mfa_closed"

#: The fields of a pending code; any one of them present means "a claim to open".
PENDING_KEYS = (
    META_REQUEST_ID,
    META_ATTEMPTS_LEFT,
    META_NUMBER_LAST4,
    META_SENT_AT,
    META_ACCOUNT,
    META_CHANNEL,
    META_BINDING,
)
#: The one channel ``mfa_channel`` may name; absent means a text.
VOICE = "call"

KEY_LABEL = b"mfa-binding-v1"
_SEAL_VERSION = "mfa-binding-v1"
_CLOSED_VERSION = "mfa-closed-v1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_LAST4 = re.compile(r"[0-9]{4}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CLOSED = re.compile(r"([0-9a-f]{16})\.([0-9a-f]{64})")
_MAX_ACCOUNT = 64
_MAX_ATTEMPTS = 20
_MAX_SENT_AT = 2**40


def binding_key(swaig_secret: str | None) -> bytes:
    """The server key: derived from the SWAIG secret when set (shared by replicas,
    kept across restarts), else random for this process."""
    if swaig_secret:
        return hmac.new(swaig_secret.encode(), KEY_LABEL, hashlib.sha256).digest()
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Pending:
    """A pending code whose claim opened for this call: the only source of the
    request id, the masked number and the account the agent acts on."""

    request_id: str
    attempts_left: int
    last4: str
    sent_at: int
    account: str | None
    seal: str
    channel: str = "sms"  # "call" when the code was read out by a voice call


@dataclass(frozen=True, slots=True)
class Closed:
    """No code pending: the call's last code reached a final outcome."""

    marker: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A claim that does not open: copied, altered, incomplete or malformed.
    ``reason`` is a fixed word for the logs, never a value from the request."""

    reason: str


#: No mfa field at all: a fresh call.
NOTHING = Closed("none")

MetaState = Pending | Closed | Refused


class Binder:
    """Seals and opens the ``meta_data`` claim under one server key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the binding key must have at least 16 bytes")
        self._key = key

    def seal(
        self,
        call_id: str,
        *,
        request_id: str,
        attempts_left: int,
        last4: str,
        sent_at: int,
        account: str | None = None,
        channel: str = "sms",
    ) -> dict[str, Any]:
        """The ``meta_data`` entries of a pending code, binding included."""
        fields: dict[str, Any] = {
            META_REQUEST_ID: request_id,
            META_ATTEMPTS_LEFT: attempts_left,
            META_NUMBER_LAST4: last4,
            META_SENT_AT: sent_at,
        }
        if account is not None:
            fields[META_ACCOUNT] = account
        voice = channel == VOICE
        if voice:
            fields[META_CHANNEL] = VOICE
        fields[META_BINDING] = self._mac(
            [_SEAL_VERSION, call_id, request_id, attempts_left, last4, sent_at, account]
            + ([VOICE] if voice else [])
        )
        return fields

    def reseal(self, call_id: str, pending: Pending, attempts_left: int) -> dict[str, Any]:
        """The entries that change when a wrong code used a try."""
        sealed = self.seal(
            call_id,
            request_id=pending.request_id,
            attempts_left=attempts_left,
            last4=pending.last4,
            sent_at=pending.sent_at,
            account=pending.account,
            channel=pending.channel,
        )
        return {META_ATTEMPTS_LEFT: attempts_left, META_BINDING: sealed[META_BINDING]}

    def close(self, call_id: str) -> str:
        """A new ``mfa_closed`` marker: unique, so no two closed states look alike."""
        nonce = secrets.token_hex(8)
        return f"{nonce}.{self._mac([_CLOSED_VERSION, call_id, nonce])}"

    def open(self, call_id: str, meta: Mapping[str, Any]) -> MetaState:
        """What ``meta_data`` proves about this call, checked before any value is used."""
        if not any(key in meta for key in PENDING_KEYS):
            marker = meta.get(META_CLOSED)
            if marker is None:
                return NOTHING
            if not isinstance(marker, str) or len(marker) != 81:
                return Refused("closed_shape")
            match = _CLOSED.fullmatch(marker)
            if match is None:
                return Refused("closed_shape")
            expected = self._mac([_CLOSED_VERSION, call_id, match.group(1)])
            if not hmac.compare_digest(expected, match.group(2)):
                return Refused("closed_seal")
            return Closed(marker)

        request_id = meta.get(META_REQUEST_ID)
        attempts_left = meta.get(META_ATTEMPTS_LEFT)
        last4 = meta.get(META_NUMBER_LAST4)
        sent_at = meta.get(META_SENT_AT)
        account = meta.get(META_ACCOUNT)
        channel = meta.get(META_CHANNEL)
        seal = meta.get(META_BINDING)
        if not (
            _short_match(_REQUEST_ID, request_id, 128)
            and _bounded_int(attempts_left, _MAX_ATTEMPTS)
            and _short_match(_LAST4, last4, 4)
            and _bounded_int(sent_at, _MAX_SENT_AT)
            # The agent writes an account or no key at all: an explicit null is an edit.
            and (META_ACCOUNT not in meta or _account_ok(account))
            # The agent writes "call" or no key at all.
            and (META_CHANNEL not in meta or channel == VOICE)
            and _short_match(_HEX64, seal, 64)
        ):
            return Refused("shape")
        voice = META_CHANNEL in meta
        expected = self._mac(
            [_SEAL_VERSION, call_id, request_id, attempts_left, last4, sent_at, account]
            + ([VOICE] if voice else [])
        )
        if not hmac.compare_digest(expected, seal):
            return Refused("seal")
        return Pending(
            request_id, attempts_left, last4, sent_at, account, seal, VOICE if voice else "sms"
        )

    def _mac(self, fields: list[Any]) -> str:
        return hmac.new(self._key, canonical(fields), hashlib.sha256).hexdigest()


def canonical(fields: list[Any]) -> bytes:
    """Compact ASCII JSON: unambiguous for strings, ints and null."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def _short_match(pattern: re.Pattern[str], value: Any, max_len: int) -> bool:
    return isinstance(value, str) and len(value) <= max_len and bool(pattern.fullmatch(value))


def _bounded_int(value: Any, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _account_ok(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ACCOUNT and value.isprintable()
