"""Final MFA outcomes POSTed, signed, to the operator's own URL.

Set ``MFA_OUTCOME_WEBHOOK_URL`` (and ``MFA_OUTCOME_WEBHOOK_SECRET``, required then) and every
final outcome (``verified``, ``exhausted``, ``expired``) is POSTed as JSON::

    {"call_id": "…", "agent_id": "mfa-agent", "masked_number": "***0001",
     "outcome": "verified", "handoff": {"kind": "transfer", "to": "***4567"},
     "at": 1764072000.123, "account": "12345678"}

(``account`` only when a directory named the number on file: the whole account number,
which the business needs; logs and the live page show it masked.)

``handoff`` says where the call went next (``handoff.on_verified``/``on_failed``):
``{"kind": "transfer", "to": "***4567"}`` (a number, masked) or ``{"kind": "transfer",
"to": "sip:desk@example.com"}``, ``"hangup"``, or ``null`` when the call stayed with the
agent. A number's destination learns the outcome here: match on ``call_id``.

with the headers of Standard Webhooks (https://www.standardwebhooks.com/; the scheme and the
secret's forms are in ``skills/mfa/delivery/signing.py``)::

    Content-Type: application/json
    webhook-id: <uuid>                  (the same on every retry of one outcome: deduplicate)
    webhook-timestamp: 1764072001       (unix seconds, when this attempt was signed)
    webhook-signature: v1,<base64 HMAC-SHA256 of f"{id}.{timestamp}.{body}">

and, for one release, the earlier ones beside them: ``X-MFA-Delivery`` (the same id),
``X-MFA-Timestamp`` and ``X-MFA-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}">``.

The body never holds a code, a request id or a full phone number.

Receiving: any Standard Webhooks library checks a delivery (``Webhook(secret).verify(raw_body,
headers)`` in Python's ``standardwebhooks``): over the raw body bytes as received, in
constant time, refusing a timestamp more than 5 minutes away. Retries are signed again
with a fresh timestamp and keep their id. ``verify_signature`` still checks the earlier
``X-MFA-Signature``.

This module makes one attempt (``WebhookSender.attempt``): sign, POST with a short
timeout through the agent's shared ``httpx.AsyncClient``, read at most
``MAX_ANSWER_BYTES`` of the answer and say whether to retry (connection errors,
timeouts, 5xx, 408 and 429) or not. The durable outbox and its workers decide when
(``outbox.py``, ``delivery.py``). The secret is never logged, nor the URL (only its host).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import httpx

from skills.mfa.delivery.signing import (
    REPLAY_WINDOW_SECONDS,
    sign,
    signed_headers,
    verify_signature,
)

__all__ = [
    "REPLAY_WINDOW_SECONDS",
    "AttemptResult",
    "WebhookSender",
    "sign",
    "verify_signature",
]

log = logging.getLogger("mfa.outcome_webhook")

DEFAULT_REQUEST_TIMEOUT = 5.0
#: What is read of the receiver's answer: its status is all that counts, and a receiver
#: (or whatever answers at its URL) must not make the agent hold a huge body.
MAX_ANSWER_BYTES = 16 * 1024


class AttemptResult(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth another try later
    REFUSED = "refused"  # the receiver said no for good (a 4xx other than 408/429)


@dataclass(frozen=True, slots=True)
class Attempt:
    result: AttemptResult
    reason: str = ""  # "HTTP 503", "ConnectError": for the log, never a body


class WebhookSender:
    """Signs and POSTs one outcome body; ``request_timeout`` is per attempt."""

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        http: httpx.AsyncClient,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the outcome webhook needs a secret")
        self.url = url
        self.host = urlsplit(url).hostname or "?"
        self._secret = secret.encode()
        self._http = http
        self.request_timeout = request_timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookSender(host={self.host!r})"

    async def attempt(self, delivery_id: str, body: bytes) -> Attempt:
        """One POST, signed now, with the delivery's id; never raises for the network."""
        headers = {
            **signed_headers(self._secret, body, self._clock(), message_id=delivery_id),
            # The earlier name of webhook-id, kept for one release (not signed: dedupe on
            # webhook-id, which is).
            "X-MFA-Delivery": delivery_id,
        }
        timeout = httpx.Timeout(self.request_timeout, connect=min(2.0, self.request_timeout))
        try:
            async with self._http.stream(
                "POST", self.url, content=body, headers=headers, timeout=timeout
            ) as response:
                await _read_at_most(response, MAX_ANSWER_BYTES)
        except httpx.TransportError as exc:  # refused, reset, timeouts
            return Attempt(AttemptResult.RETRY, type(exc).__name__)
        status = response.status_code
        if response.is_success:
            return Attempt(AttemptResult.DELIVERED)
        if status >= 500 or status in (408, 429):
            return Attempt(AttemptResult.RETRY, f"HTTP {status}")
        return Attempt(AttemptResult.REFUSED, f"HTTP {status}")


async def _read_at_most(response: httpx.Response, limit: int) -> None:
    """Read (and drop) the answer up to ``limit`` bytes; closing the stream drops the rest.
    Raw bytes, not decoded: a small compressed answer must not inflate here."""
    seen = 0
    try:
        async for chunk in response.aiter_raw():
            seen += len(chunk)
            if seen >= limit:
                return
    except httpx.StreamConsumed:  # already read whole (a transport that does not stream)
        return
