"""The composition root: settings in, a ready ``MfaAgent`` out.

``build_agent`` is the only place where parts are wired: it picks the code provider
(SignalWire or sandbox) behind its circuit breaker, creates the process's one pooled
HTTP client, chooses the shared-state backend, loads the MFA skill, the prompts and
the AI parameters, and makes every event subscription, mount, readiness check and
start/stop hook in plain sight. The parts it uses return what they offer (a router,
hooks, a subscriber) and never import this module. Tests pass an ``http_transport``
(an ``httpx.MockTransport``) or point ``SIGNALWIRE_SPACE`` at a loopback fake;
nothing is patched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from signalwire.skills.registry import skill_registry

from agent.config.settings import ProviderName, Settings
from agent.http.ingress import Dashboard, install_ingress, parse_trusted_proxies
from agent.http.logging_setup import guard_sdk_loggers
from agent.http.sdk_surgery import replace_ready_route, replace_sdk_middleware, wrap_lifespan
from agent.mfa_agent import MfaAgent
from agent.outcomes.counters import DailyCounters
from agent.outcomes.dashboard import DASHBOARD_PATHS
from agent.outcomes.exit_signals import CloseOnExitSignals
from agent.outcomes.history_routes import history_router
from agent.outcomes.hub import EventHub
from agent.outcomes.live_routes import live_router
from agent.outcomes.metrics import OutcomeMetrics, metrics_router
from agent.outcomes.mfa_events import LiveFeed
from agent.state import state_backend
from agent.wiring.conversation import configure_conversation
from agent.wiring.outbox_part import outbox_for
from agent.wiring.skill_parts import (
    account_recipients,
    build_provider,
    channel_policy,
    code_policy,
    log_sandbox_text,
    next_step,
    pumping_guard,
    send_limiter,
)
from skills.mfa.delivery.http_pool import new_shared_client
from skills.mfa.delivery.providers.breaker import CircuitBreakerProvider
from skills.mfa.delivery.providers.sandbox import SandboxText
from skills.mfa.ledgers.binding import binding_key
from skills.mfa.skill import MfaSkill

__all__ = ["MfaAgent", "build_agent", "log_sandbox_text"]

SANDBOX_WITH_ACCOUNT_WARNING = (
    "MFA_SANDBOX_WITH_ACCOUNT=1: the sandbox runs beside a SignalWire account. Codes go to "
    "this page and the log, never to callers' phones."
)


def build_agent(
    settings: Settings,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    sandbox_deliver: Callable[[SandboxText], None] | None = None,
    breaker_clock: Callable[[], float] | None = None,
    outbox_clock: Callable[[], float] | None = None,
) -> MfaAgent:
    """The agent for ``settings``. Tests may pass an ``http_transport``, a
    ``sandbox_deliver`` to read the sandbox's texts, a ``breaker_clock`` so the
    breaker's open window moves when the test says so, and an ``outbox_clock`` (unix
    seconds) for the outbox's retention and delivery times."""
    # The SDK's argument check may quote what a caller said: redacted wherever it is logged.
    guard_sdk_loggers()
    agent = MfaAgent(settings)
    if settings.proxy_url_base:
        agent.manual_set_proxy_url(settings.proxy_url_base)

    # Stops run in reverse order of registration: register a part after what it uses.
    upstream = settings.file.upstream
    http = agent.http = new_shared_client(
        deadline_seconds=upstream.deadline_seconds,
        connect_timeout_seconds=upstream.connect_timeout_seconds,
        max_connections=upstream.max_connections,
        transport=http_transport,
    )
    agent.on_lifecycle(stop=http.aclose)
    state = agent.state = state_backend(settings.redis_target, settings.sandbox_db_path)
    agent.on_lifecycle(start=state.start, stop=state.aclose)
    agent.add_readiness_check(state.name if state.name == "redis" else "state", state.ready)

    # The live stream: this process's hub, fed through the replicas' shared relay if any.
    hub = agent.live_hub = EventHub(agent_id=agent.agent_id, counters=DailyCounters())
    relay = state.event_relay(show=hub.fan_out)
    if relay is not None:
        agent.on_lifecycle(start=relay.start, stop=relay.stop)
        agent.add_readiness_check("event_relay", relay.ready)
    live = agent.live_feed = LiveFeed(relay.publish if relay is not None else hub.publish)

    def log_and_show_sandbox_text(text: SandboxText) -> None:
        log_sandbox_text(text)
        live.sandbox_text(text)

    metrics = agent.metrics = OutcomeMetrics()
    breaker = agent.breaker = CircuitBreakerProvider(
        metrics.timed(
            build_provider(settings, http, state, sandbox_deliver or log_and_show_sandbox_text)
        ),
        state=state.breaker_state,
        failure_threshold=settings.file.breaker.failure_threshold,
        open_seconds=settings.file.breaker.open_seconds,
        clock=breaker_clock or time.time,
    )
    agent.on_lifecycle(stop=breaker.aclose)

    outbox = agent.outbox = outbox_for(settings, state, http, agent, metrics, outbox_clock)

    configure_conversation(agent, settings)
    if skill_registry.get_skill_class(MfaSkill.SKILL_NAME) is None:
        skill_registry.register_skill(MfaSkill)
    policy = code_policy(settings)
    pumping = pumping_guard(settings, state)
    agent.publisher.subscribe(pumping.on_event)  # a verification counts for its range
    limiter = send_limiter(settings, state, agent.agent_id, pumping)
    agent.add_skill(
        MfaSkill.SKILL_NAME,
        {
            "provider": breaker,
            "policy": policy,
            "publisher": agent.publisher,
            "agent_id": agent.agent_id,
            "limiter": limiter,
            "accounts": account_recipients(settings, http, state, limiter, policy),
            # meta_data sealed to its call; replicas share the key through the SWAIG secret.
            "binding_key": binding_key(
                settings.swaig_secret.get_secret_value() if settings.swaig_secret else None
            ),
            "replay_pending_seconds": upstream.deadline_seconds + 5.0,
            "next_step": next_step(settings, limiter),
            "channels": channel_policy(settings, http, state, policy),
            "language_code": settings.file.languages[0].code,
            "languages": {lang.code: lang.name for lang in settings.file.languages},
            # Every final outcome is in the outbox before the tool answers.
            "recorder": outbox,
        },
    )

    # Who hears an outcome: the live page and the metrics (the outbox already has it).
    agent.publisher.subscribe(live.mfa)
    agent.publisher.subscribe(metrics.on_event)
    agent.add_summary_listener(live.summary)
    agent.mount(
        live_router(
            hub,
            agent_name=agent.name,
            sandbox=settings.provider is ProviderName.SANDBOX,
            warning=SANDBOX_WITH_ACCOUNT_WARNING if settings.sandbox_with_account else "",
        )
    )
    agent.mount(history_router(outbox.history))
    agent.mount(
        metrics_router(
            metrics,
            breaker_open=breaker.is_open,
            outbox_pending=outbox.store.pending,
            outbox_oldest_age=outbox.oldest_pending_age,
        )
    )
    exit_signals = CloseOnExitSignals(hub.close)
    agent.on_lifecycle(start=exit_signals.start, stop=exit_signals.stop)

    # Last: it watches what the parts above started, and stops before any of them.
    agent.on_lifecycle(start=agent.readiness.start, stop=agent.readiness.stop)
    replace_ready_route(agent, agent.ready_checks)
    wrap_lifespan(agent.get_app(), agent.running)
    replace_sdk_middleware(agent.get_app())
    # Outermost but the headers: auth, then the body limit, before anything reads a body.
    install_ingress(
        agent,
        trusted_proxies=parse_trusted_proxies(settings.trusted_proxies),
        dashboard=Dashboard(DASHBOARD_PATHS, settings.dashboard_credentials),
    )
    return agent
