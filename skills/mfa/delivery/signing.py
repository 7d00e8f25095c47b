"""The one signature scheme of every request the agent makes to the business's own server.

The outcome webhook (``agent/outcomes/webhook.py``) and the account directory
(``skills/mfa/flow/directory/http_directory.py``) both sign their POSTs as Standard Webhooks
(https://www.standardwebhooks.com/, the spec's "Signature scheme"), so a business verifies
both with an off-the-shelf library in any language (PyPI ``standardwebhooks``, npm
``standardwebhooks``, ...)::

    webhook-id: <uuid>                      (the same on every retry of one message)
    webhook-timestamp: 1764072001           (unix seconds, when this attempt was signed)
    webhook-signature: v1,<base64 HMAC-SHA256 of f"{id}.{timestamp}.{body}">

The key is the secret's bytes: for ``whsec_<base64>`` (the spec's form, what the libraries
take) the base64-decoded bytes; for any other secret its UTF-8 bytes, which a library
takes as ``"whsec_" + base64(secret)``. The id is inside the signed string, so a receiver
that deduplicates on it cannot be fooled by a changed id.

For one release the earlier headers are sent beside them, unchanged (key: the secret's
UTF-8 bytes as configured, whatever its form)::

    X-MFA-Timestamp: 1764072001
    X-MFA-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}" under the secret>

Receiving either way: check over the raw body bytes exactly as received (not a
re-serialised copy), compare in constant time, and reject a timestamp more than
``REPLAY_WINDOW_SECONDS`` away from your clock (the libraries use 5 minutes too), so a
captured request cannot be replayed later. ``verify_signature`` checks the earlier headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

__all__ = [
    "REPLAY_WINDOW_SECONDS",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "WEBHOOK_ID",
    "WEBHOOK_SIGNATURE",
    "WEBHOOK_TIMESTAMP",
    "secret_problem",
    "sign",
    "signed_headers",
    "standard_key",
    "standard_signature",
    "verify_signature",
]

REPLAY_WINDOW_SECONDS = 300
SIGNATURE_PREFIX = "sha256="
TIMESTAMP_HEADER = "X-MFA-Timestamp"
SIGNATURE_HEADER = "X-MFA-Signature"
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"
#: Standard Webhooks' form of a secret: ``whsec_`` and the base64 of the key's bytes.
SECRET_PREFIX = "whsec_"
#: The spec: "secret keys ... between 24 bytes (192 bits) and 64 bytes (512 bits)".
MIN_KEY_BYTES = 24


def secret_problem(secret: str) -> str | None:
    """Why a configured secret cannot sign, or ``None``: a ``whsec_`` secret must be the
    base64 of at least ``MIN_KEY_BYTES`` bytes; any other secret at least 16 characters."""
    if not secret.startswith(SECRET_PREFIX):
        if len(secret) < 16:
            return "must be at least 16 characters (use a random string, or whsec_<base64>)"
        return None
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return "starts with whsec_ but the rest is not base64 (Standard Webhooks' form)"
    if len(key) < MIN_KEY_BYTES:
        return f"whsec_ must carry at least {MIN_KEY_BYTES} random bytes, base64-encoded"
    return None


def standard_key(secret: str | bytes) -> bytes:
    """The Standard Webhooks key of a configured secret (see the module's docstring)."""
    if isinstance(secret, bytes):
        secret = secret.decode()
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    return secret.encode()


def standard_signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of f"{id}.{timestamp}.{body}">``: a ``webhook-signature``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(secret: str | bytes, timestamp: str | int, body: str | bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}">``: the ``X-MFA-Signature`` value."""
    key = secret.encode() if isinstance(secret, str) else secret
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signed_headers(
    secret: str | bytes, body: bytes, now: float, *, message_id: str
) -> dict[str, str]:
    """The JSON content type, the Standard Webhooks headers for message ``message_id``, and
    (for one release) the earlier ``X-MFA-*`` pair, all signed at ``now``."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        WEBHOOK_ID: message_id,
        WEBHOOK_TIMESTAMP: timestamp,
        WEBHOOK_SIGNATURE: standard_signature(standard_key(secret), message_id, timestamp, body),
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
