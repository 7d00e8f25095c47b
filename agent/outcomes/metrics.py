"""``GET /metrics``: the agent's numbers in the Prometheus text format (``prometheus_client``).

One ``CollectorRegistry`` per agent, never the library's global one, so two agents in
one process (tests, the benchmark) keep their own counts; each replica exposes its own
and Prometheus sums them. Names follow Prometheus's conventions (a ``_total`` counter,
``_seconds`` for durations, base units, labels with few values):

- ``mfa_sends_total{outcome}``, ``mfa_verifications_total{outcome}``: each tool answer;
- ``mfa_upstream_seconds{operation}``: the code provider's time per send / verify
  (real calls only: the breaker's fast refusals are not upstream time);
- ``mfa_breaker_open``: 1 while the provider's circuit breaker is open;
- ``mfa_outbox_pending``: final outcomes not yet delivered (the whole outbox's, read at
  scrape time);
- ``mfa_outbox_deliveries_total{result}``: attempts, ``delivered``/``retry``/``dead``;
- ``mfa_directory_lookups_total{result}``: what the account directory said;
- ``mfa_limit_refusals_total{kind}``: sends refused by a limit, by the answer's outcome;
- ``mfa_line_type_lookups_total{result,line_type}``: the line type before a send
  (``result``: ``looked_up``, ``cached``, ``failed``; a failed one is texted as unknown);
- ``mfa_codes_sent_total{channel}``: codes that went out, ``sms`` or ``call`` (a voice code
  read to a landline on file).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from skills.mfa.delivery.providers.base import CodeProvider, SendRequest, SentCode, VerifyOutcome
from skills.mfa.events import MfaEvent, Outcome

#: Outcomes that are a limit's refusal; their value is the ``kind`` label.
LIMIT_REFUSALS = frozenset(
    {
        Outcome.RATE_LIMITED,
        Outcome.COUNTRY_REFUSED,
        Outcome.NUMBER_TYPE_REFUSED,
        Outcome.ACCOUNT_LOCKED,
        Outcome.LANDLINE,
        Outcome.LINE_TYPE_REFUSED,
    }
)
# The provider answers in tens of milliseconds to a few seconds; the deadline is under 10 s.
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)


class OutcomeMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.sends = Counter(
            "mfa_sends", "send_mfa answers by outcome", ["outcome"], registry=registry
        )
        self.verifications = Counter(
            "mfa_verifications", "verify_mfa answers by outcome", ["outcome"], registry=registry
        )
        self.upstream = Histogram(
            "mfa_upstream_seconds",
            "Time the code provider took, by operation (send, verify)",
            ["operation"],
            buckets=UPSTREAM_BUCKETS,
            registry=registry,
        )
        self.breaker_open = Gauge(
            "mfa_breaker_open", "1 while the provider's circuit breaker is open", registry=registry
        )
        self.outbox_pending = Gauge(
            "mfa_outbox_pending", "Final outcomes waiting for delivery", registry=registry
        )
        self.deliveries = Counter(
            "mfa_outbox_deliveries",
            "Outcome webhook attempts by result (delivered, retry, dead)",
            ["result"],
            registry=registry,
        )
        self.directory_lookups = Counter(
            "mfa_directory_lookups",
            "Account directory lookups by result",
            ["result"],
            registry=registry,
        )
        self.limit_refusals = Counter(
            "mfa_limit_refusals", "Sends refused by a limit, by kind", ["kind"], registry=registry
        )
        self.line_lookups = Counter(
            "mfa_line_type_lookups",
            "Line types before a send, by where the answer came from and what it was",
            ["result", "line_type"],
            registry=registry,
        )
        self.codes_sent = Counter(
            "mfa_codes_sent",
            "Codes that went out, by channel (sms, call)",
            ["channel"],
            registry=registry,
        )

    def on_event(self, event: MfaEvent) -> None:
        """``EventPublisher`` subscriber: count one tool answer."""
        outcome = str(event.outcome)
        if event.tool == "send_mfa":
            self.sends.labels(outcome=outcome).inc()
        elif event.tool == "verify_mfa":
            self.verifications.labels(outcome=outcome).inc()
        if event.lookup:
            self.directory_lookups.labels(result=event.lookup).inc()
        if event.outcome in LIMIT_REFUSALS:
            self.limit_refusals.labels(kind=outcome).inc()
        if event.line_lookup:
            self.line_lookups.labels(result=event.line_lookup, line_type=event.line_type).inc()
        if event.outcome is Outcome.CODE_SENT and event.channel:
            self.codes_sent.labels(channel=event.channel).inc()

    def on_delivery(self, result: str) -> None:
        self.deliveries.labels(result=result).inc()

    def timed(self, provider: CodeProvider) -> CodeProvider:
        """``provider`` with each call's time observed (wrap it inside the breaker)."""
        return TimedProvider(provider, self.upstream)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedProvider:
    """A ``CodeProvider`` that times the one it wraps; answers and errors pass unchanged."""

    def __init__(self, inner: CodeProvider, histogram: Histogram) -> None:
        self._inner = inner
        self._histogram = histogram
        self.name = inner.name

    async def send(self, request: SendRequest) -> SentCode:
        started = time.perf_counter()
        try:
            return await self._inner.send(request)
        finally:
            self._histogram.labels(operation="send").observe(time.perf_counter() - started)

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        started = time.perf_counter()
        try:
            return await self._inner.verify(request_id, code)
        finally:
            self._histogram.labels(operation="verify").observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._inner.aclose()


def metrics_router(
    metrics: OutcomeMetrics,
    *,
    breaker_open: Callable[[], Awaitable[bool]],
    outbox_pending: Callable[[], Awaitable[int]] | None,
) -> APIRouter:
    """``/metrics``; the gauges that live elsewhere are read when scraped."""
    router = APIRouter()

    @router.get("/metrics")
    async def scrape() -> Response:
        try:
            metrics.breaker_open.set(1 if await breaker_open() else 0)
        except Exception:
            metrics.breaker_open.set(1)  # the breaker's state store is down: as bad as open
        if outbox_pending is not None:
            # The store is down: keep the last value; /ready says so.
            with contextlib.suppress(Exception):
                metrics.outbox_pending.set(await outbox_pending())
        return Response(
            metrics.render(),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

    return router
