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
- ``mfa_outbox_oldest_pending_seconds``: how long the oldest of them has waited (0 when none):
  a backlog that is stuck but flat keeps growing older, so an alert on it fires where one on
  the count's change stays silent;
- ``mfa_outbox_deliveries_total{result}``: attempts, ``delivered``/``retry``/``dead``;
- ``mfa_directory_lookups_total{result}``: what the account directory said;
- ``mfa_limit_refusals_total{kind}``: sends refused by a limit, by the answer's outcome;
- ``mfa_line_type_lookups_total{result,line_type}``: the line type before a send
  (``result``: ``looked_up``, ``cached``, ``failed``; a failed one is texted as unknown);
- ``mfa_codes_sent_total{channel}``: codes that went out, ``sms`` or ``call`` (a voice code
  read to a landline on file).

Every labelled series a known label value names is exposed at 0 from start-up: a rate or a
ratio over a series that does not exist yet is empty, not 0, so an alert such as "few
callers verify" could never fire on an agent that has verified nobody since it started
(Prometheus's instrumentation guide: "avoid missing metrics").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from skills.mfa.delivery.line_type import LineType, LookupSource
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
# What each tool can answer (skills/mfa/flow/: the send path with the recipient and the
# channel, the verify path, the upstream and the boundary's refusals and errors).
_EITHER_TOOL = (Outcome.ERROR, Outcome.META_REFUSED, Outcome.REPLAYED)
SEND_OUTCOMES = (
    Outcome.CODE_SENT,
    Outcome.SEND_FAILED,
    Outcome.PROVIDER_REJECTED,
    Outcome.OTHER_NUMBER_REFUSED,
    Outcome.NO_CALLER_NUMBER,
    Outcome.INVALID_NUMBER,
    Outcome.ACCOUNT_REQUIRED,
    Outcome.ACCOUNT_UNCLEAR,
    Outcome.ACCOUNT_UNKNOWN,
    Outcome.DIRECTORY_UNAVAILABLE,
    *LIMIT_REFUSALS,
    *_EITHER_TOOL,
)
VERIFY_OUTCOMES = (
    Outcome.VERIFIED,
    Outcome.WRONG_CODE,
    Outcome.EXHAUSTED,
    Outcome.EXPIRED,
    Outcome.MALFORMED_CODE,
    Outcome.NO_CODE_SENT,
    Outcome.SUPERSEDED,
    Outcome.PROVIDER_UNAVAILABLE,
    Outcome.PROVIDER_REJECTED,
    *_EITHER_TOOL,
)
DELIVERY_RESULTS = ("delivered", "retry", "dead")
# skills/mfa/flow/recipient.py: what the account directory said.
DIRECTORY_RESULTS = ("found", "unknown", "locked", "refused", "rejected", "unavailable")
# A lookup or the cache names a line type; a failed lookup is texted as unknown.
LINE_LOOKUPS = (
    *(
        (str(source), str(line))
        for source in (LookupSource.LOOKED_UP, LookupSource.CACHED)
        for line in LineType
    ),
    (str(LookupSource.FAILED), str(LineType.UNKNOWN)),
)
CHANNELS = ("sms", "call")
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
        self.outbox_oldest = Gauge(
            "mfa_outbox_oldest_pending_seconds",
            "How long the oldest final outcome waiting for delivery has waited (0: none)",
            registry=registry,
        )
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Every series of a known label value, at 0 (see the module's docstring)."""
        for outcome in SEND_OUTCOMES:
            self.sends.labels(outcome=str(outcome))
        for outcome in VERIFY_OUTCOMES:
            self.verifications.labels(outcome=str(outcome))
        for operation in ("send", "verify"):
            self.upstream.labels(operation=operation)
        for result in DELIVERY_RESULTS:
            self.deliveries.labels(result=result)
        for result in DIRECTORY_RESULTS:
            self.directory_lookups.labels(result=result)
        for kind in LIMIT_REFUSALS:
            self.limit_refusals.labels(kind=str(kind))
        for result, line_type in LINE_LOOKUPS:
            self.line_lookups.labels(result=result, line_type=line_type)
        for channel in CHANNELS:
            self.codes_sent.labels(channel=channel)

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
    outbox_oldest_age: Callable[[], Awaitable[float]] | None,
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
        if outbox_oldest_age is not None:
            with contextlib.suppress(Exception):
                metrics.outbox_oldest.set(await outbox_oldest_age())
        return Response(
            metrics.render(),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

    return router
