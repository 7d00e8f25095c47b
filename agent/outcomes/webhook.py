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

with the headers::

    Content-Type: application/json
    X-MFA-Timestamp: 1764072001                 (unix seconds, when this attempt was signed)
    X-MFA-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}" under the secret>
    X-MFA-Delivery: <uuid>                      (the same on every retry of one outcome)

The body never holds a code, a request id or a full phone number.

Receiving: compute the HMAC over the raw body bytes exactly as received (not a re-serialised
copy), compare in constant time, and reject a timestamp more than ``REPLAY_WINDOW_SECONDS``
(300 s) away from your clock, so a captured request cannot be replayed later. Retries are
signed again with a fresh timestamp and keep their ``X-MFA-Delivery`` id: deduplicate on it,
since a retry after a timeout may repeat a POST that did arrive. ``verify_signature`` does
the checks::

    from skills.mfa.signing import verify_signature   # also verifies directory lookups

    ok = verify_signature(secret, request.headers["X-MFA-Timestamp"], raw_body,
                          request.headers["X-MFA-Signature"])

Delivery never delays a tool's answer: the publisher callback only puts the outcome on a
bounded queue (``queue_size``; when full the outcome is dropped and counted), and one worker
task, started lazily on the server's event loop, POSTs through the agent's shared
``httpx.AsyncClient`` with a short per-attempt timeout. Connection errors, timeouts, 5xx and
429 are retried up to ``attempts`` times in all, waiting ``backoff`` seconds between
attempts; any other answer is final. At shutdown the queue gets a short grace period to
drain. The secret is never logged, nor the URL (only its host).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from agent.outcomes.threadsafe_queue import call_on_loop, offer, running_loop
from skills.mfa.events import FINAL_OUTCOMES, MfaEvent
from skills.mfa.signing import REPLAY_WINDOW_SECONDS, sign, signed_headers, verify_signature

__all__ = [
    "REPLAY_WINDOW_SECONDS",
    "OutcomeWebhook",
    "outcome_webhook",
    "sign",
    "verify_signature",
]

log = logging.getLogger("mfa.outcome_webhook")

DEFAULT_QUEUE_SIZE = 1000
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_SHUTDOWN_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class _Delivery:
    delivery_id: str
    body: bytes
    outcome: str


class OutcomeWebhook:
    """Signs and POSTs final outcomes in the background; counts what happened to each.

    ``attempts``, ``backoff`` and ``request_timeout`` are plain attributes so that tests
    (and operators embedding the agent) can shorten them.
    """

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        http: httpx.AsyncClient,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the outcome webhook needs a secret")
        self.url = url
        self.host = urlsplit(url).hostname or "?"
        self._secret = secret.encode()
        self._http = http
        self.queue_size = queue_size
        self.attempts = attempts
        self.backoff = tuple(backoff)
        self.request_timeout = request_timeout
        self.shutdown_grace = shutdown_grace
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.retried = 0

    def __repr__(self) -> str:
        return f"OutcomeWebhook(host={self.host!r})"

    def stats(self) -> dict[str, int]:
        pending = self._queue.qsize() if self._queue is not None else 0
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "retried": self.retried,
            "pending": pending,
        }

    # -- the publisher side: never blocks, never raises ---------------------------------

    def on_event(self, event: MfaEvent) -> None:
        """``EventPublisher`` subscriber: queue a final outcome for delivery."""
        if event.outcome not in FINAL_OUTCOMES:
            return
        payload = {
            "call_id": event.call_id,
            "agent_id": event.agent_id,
            "masked_number": event.masked_number,
            "outcome": str(event.outcome),
            "handoff": event.handoff,
            "at": event.at,
        }
        if event.account:  # the account the code went to the number on file of
            payload["account"] = event.account
        delivery = _Delivery(
            delivery_id=str(uuid.uuid4()),
            body=json.dumps(payload, separators=(",", ":")).encode(),
            outcome=str(event.outcome),
        )
        # On a loop (an async tool): the worker lives there. On a worker thread: hand it
        # to the loop the worker already runs on, if any.
        loop = running_loop() or self._loop
        if loop is None or not call_on_loop(loop, self._enqueue, delivery):
            self.dropped += 1
            log.warning("outcome_webhook_dropped", extra={"why": "no event loop"})

    def _enqueue(self, delivery: _Delivery) -> None:
        """On the running loop: start the worker if this loop has none, then queue."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._worker is None:
            self._loop = loop
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._worker = loop.create_task(self._work(self._queue), name="mfa-outcome-webhook")
        if not offer(self._queue, delivery):
            self.dropped += 1
            log.warning("outcome_webhook_dropped", extra={"why": "queue full"})

    # -- the worker ---------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[_Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(delivery)
            except Exception as exc:  # keep the worker alive whatever happens
                self.failed += 1
                log.error("outcome_webhook_failed", extra={"exc_type": type(exc).__name__})
            finally:
                queue.task_done()

    async def _deliver(self, delivery: _Delivery) -> None:
        reason = ""
        attempt = 0
        while attempt < max(1, self.attempts):
            attempt += 1
            headers = {
                **signed_headers(self._secret, delivery.body, self._clock()),
                "X-MFA-Delivery": delivery.delivery_id,
            }
            try:
                response = await self._http.post(
                    self.url,
                    content=delivery.body,
                    headers=headers,
                    timeout=httpx.Timeout(
                        self.request_timeout, connect=min(2.0, self.request_timeout)
                    ),
                )
            except httpx.TransportError as exc:  # connection refused, reset, timeouts
                retryable, reason = True, type(exc).__name__
            else:
                if response.is_success:
                    self.delivered += 1
                    log.info(
                        "outcome_webhook_delivered",
                        extra={
                            "host": self.host,
                            "outcome": delivery.outcome,
                            "attempts": attempt,
                        },
                    )
                    return
                status = response.status_code
                retryable, reason = status >= 500 or status == 429, f"HTTP {status}"
            if not retryable or attempt >= self.attempts:
                break
            self.retried += 1
            await asyncio.sleep(self._pause(attempt))
        self.failed += 1
        log.warning(
            "outcome_webhook_failed",
            extra={
                "host": self.host,
                "outcome": delivery.outcome,
                "attempts": attempt,
                "reason": reason,
            },
        )

    def _pause(self, attempt: int) -> float:
        if not self.backoff:
            return 0.0
        return self.backoff[min(attempt - 1, len(self.backoff) - 1)]

    # -- shutdown -----------------------------------------------------------------------

    async def aclose(self, grace: float | None = None) -> None:
        """Give queued outcomes ``grace`` seconds to go out, then stop the worker."""
        worker, queue = self._worker, self._queue
        if worker is None or queue is None or self._loop is not asyncio.get_running_loop():
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(self.shutdown_grace if grace is None else grace):
                await queue.join()
        worker.cancel()
        with suppress(asyncio.CancelledError):
            await worker
        self._worker = self._queue = None
        if queue.qsize():
            self.dropped += queue.qsize()
            log.warning("outcome_webhook_dropped", extra={"why": "shutdown"})


def outcome_webhook(
    url: str | None, secret: str | None, http: httpx.AsyncClient
) -> OutcomeWebhook | None:
    """An ``OutcomeWebhook`` when a URL (and its secret) is configured, else ``None``.

    It offers ``on_event`` (an ``EventPublisher`` subscriber) and ``aclose`` (a stop hook,
    to run before ``http`` closes); ``build_agent`` wires both.
    """
    if not url or secret is None:
        return None
    webhook = OutcomeWebhook(url=url, secret=secret, http=http)
    log.info("outcome_webhook_enabled", extra={"host": webhook.host})
    return webhook
