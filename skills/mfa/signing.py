"""The one signature scheme of every request the agent makes to the business's own server.

The outcome webhook (``agent/outcomes/webhook.py``) and the account directory
(``skills/mfa/directory/http_directory.py``) both sign their POSTs the same way, so the
business verifies both with one helper::

    X-MFA-Timestamp: 1764072001                 (unix seconds, when the request was signed)
    X-MFA-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}" under the secret>

Receiving: compute the HMAC over the raw body bytes exactly as received (not a
re-serialised copy), compare in constant time, and reject a timestamp more than
``REPLAY_WINDOW_SECONDS`` away from your clock, so a captured request cannot be replayed
later. ``verify_signature`` does all three.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "REPLAY_WINDOW_SECONDS",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "sign",
    "signed_headers",
    "verify_signature",
]

REPLAY_WINDOW_SECONDS = 300
SIGNATURE_PREFIX = "sha256="
TIMESTAMP_HEADER = "X-MFA-Timestamp"
SIGNATURE_HEADER = "X-MFA-Signature"


def sign(secret: str | bytes, timestamp: str | int, body: str | bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}">``: the ``X-MFA-Signature`` value."""
    key = secret.encode() if isinstance(secret, str) else secret
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signed_headers(secret: str | bytes, body: bytes, now: float) -> dict[str, str]:
    """The JSON content type plus the timestamp and signature headers for ``body``."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: str | bytes,
    signature_header: str | None,
    now: float | None = None,
    window: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """True when ``signature_header`` signs ``timestamp`` and ``body`` under ``secret`` and the
    timestamp is within ``window`` seconds of ``now`` (default: the current time)."""
    stamp = str(timestamp).strip()
    if not stamp.isascii() or not stamp.isdigit() or not isinstance(signature_header, str):
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > window:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature_header.strip())
