"""``MfaAgent``: the SDK agent plus the lifecycle, readiness and summary hooks this product
needs. It holds what ``build_agent`` gives it; it wires nothing itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from agent.config.call_config import TOOL_TOKEN_EXPIRY_SECONDS
from agent.config.settings import Settings
from agent.http.readiness import Readiness
from agent.http.sdk_surgery import SDK_CONFIG_FILE, GuardedAgentBase
from agent.outcomes.delivery import Deliverer
from agent.outcomes.hub import EventHub
from agent.outcomes.metrics import OutcomeMetrics
from agent.outcomes.mfa_events import LiveFeed
from agent.outcomes.outbox import Outbox
from agent.state import StateBackend
from skills.mfa.delivery.providers.breaker import CircuitBreakerProvider
from skills.mfa.events import EventPublisher

log = logging.getLogger("mfa.agent")

Hook = Callable[[], Awaitable[None]]
SummaryListener = Callable[[Any, Any], None]


class MfaAgent(GuardedAgentBase):
    """The SDK agent plus the guards and lifecycle this product needs."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            name=settings.file.agent_name,
            agent_id=settings.file.agent_name,
            route="/",
            host=settings.host,
            port=settings.port,
            basic_auth=(
                settings.basic_auth_user,
                settings.basic_auth_password.get_secret_value(),
            ),
            config_file=str(SDK_CONFIG_FILE),
            # Explicit, because settings keep hard_stop_seconds below it.
            token_expiry_secs=TOOL_TOKEN_EXPIRY_SECONDS,
            signing_key=settings.signing_key.get_secret_value() if settings.signing_key else None,
            swaig_secret=(
                settings.swaig_secret.get_secret_value() if settings.swaig_secret else None
            ),
            # Safe: Ingress drops forwarded headers unless a named proxy sent them.
            trust_proxy_for_signature=bool(settings.trusted_proxies),
            **kwargs,
        )
        self.publisher = EventPublisher()
        # The code provider behind its circuit breaker: the provider the tools use.
        self.breaker: CircuitBreakerProvider | None = None
        self.state: StateBackend | None = None
        self.http: httpx.AsyncClient | None = None
        self.live_hub: EventHub | None = None
        self.live_feed: LiveFeed | None = None
        self.outbox: Outbox | None = None
        self.deliverer: Deliverer | None = None
        self.metrics: OutcomeMetrics | None = None
        self.readiness = Readiness()
        self._summary_listeners: list[SummaryListener] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []

    def on_summary(self, summary: Any, raw_data: Any = None) -> None:
        """The post-prompt summary is the model's account of the call: logged for the
        record, never trusted as proof of verification (``global_data`` is)."""
        call_id = raw_data.get("call_id") if isinstance(raw_data, dict) else None
        verified = summary.get("verified") if isinstance(summary, dict) else None
        log.info("call_summary", extra={"call_id": call_id, "model_says_verified": verified})
        for listener in self._summary_listeners:
            listener(call_id, summary)

    def add_summary_listener(self, listener: SummaryListener) -> None:
        """``listener(call_id, summary)`` runs for each post-prompt summary (on a worker
        thread: the SDK runs ``on_summary`` in its thread pool)."""
        self._summary_listeners.append(listener)

    def on_lifecycle(self, *, start: Hook | None = None, stop: Hook | None = None) -> None:
        """Run ``start`` when the server starts and ``stop`` when it stops.

        Starts run in the order registered, stops in the reverse order, so a part
        registered later (e.g. the outcome webhook) stops before what it uses (the
        shared HTTP client). Every stop runs even if another one fails.
        """
        if start is not None:
            self._on_start.append(start)
        if stop is not None:
            self._on_stop.append(stop)

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[bool]]) -> None:
        """``check`` answers whether the dependency ``name`` works; ``/ready`` names it."""
        self.readiness.add(name, check)

    async def ready_checks(self) -> dict[str, str]:
        """Each dependency's state for ``/ready``: ``{"redis": "ok", ...}``."""
        return await self.readiness.checks()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The server's life: the start hooks, then, when it stops, the stop hooks in
        reverse order."""
        async with AsyncExitStack() as stops:
            # Stops first: if a start fails, what was set up is still closed.
            for stop in self._on_stop:
                stops.push_async_callback(stop)
            for start in self._on_start:
                await start()
            log.info(
                "agent_started",
                extra={
                    "provider": self.breaker.name if self.breaker else None,
                    "state": self.state.name if self.state else None,
                },
            )
            yield
