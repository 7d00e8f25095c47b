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

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from signalwire.skills.registry import skill_registry

from agent.ingress import Dashboard, install_ingress, parse_trusted_proxies
from agent.language_config import LanguageConfig
from agent.mfa_agent import MfaAgent
from agent.outcomes.counters import DailyCounters
from agent.outcomes.dashboard import DASHBOARD_PATHS
from agent.outcomes.delivery import Deliverer
from agent.outcomes.exit_signals import CloseOnExitSignals
from agent.outcomes.history_routes import history_router
from agent.outcomes.hub import EventHub
from agent.outcomes.live_routes import live_router
from agent.outcomes.metrics import OutcomeMetrics, metrics_router
from agent.outcomes.mfa_events import LiveFeed
from agent.outcomes.outbox import Outbox
from agent.outcomes.webhook import WebhookSender
from agent.prompts import load_prompt_sections
from agent.sdk_surgery import replace_ready_route, replace_sdk_middleware, wrap_lifespan
from agent.settings import ProviderName, Settings, SettingsError
from agent.state import StateBackend, state_backend
from skills.mfa.binding import binding_key
from skills.mfa.directory.base import Directory
from skills.mfa.directory.csv_directory import CsvDirectory, DirectoryFileError
from skills.mfa.directory.guarded import GuardedDirectory, directory_breaker
from skills.mfa.directory.http_directory import HttpDirectory
from skills.mfa.http_pool import new_shared_client
from skills.mfa.limits import SendLimiter, SendLimits
from skills.mfa.next_step import NextStep, Pacing
from skills.mfa.number_words import primary_subtag
from skills.mfa.phone import country_code_of, mask_number, region_of
from skills.mfa.providers.base import CodeProvider
from skills.mfa.providers.breaker import CircuitBreakerProvider
from skills.mfa.providers.sandbox import SandboxProvider, SandboxText
from skills.mfa.providers.signalwire import SignalWireProvider
from skills.mfa.pumping import ListsFile, ListsFileError, PumpingGuard, PumpingLimits
from skills.mfa.recipient import AccountPolicy, AccountRecipients
from skills.mfa.skill import MfaSkill
from skills.mfa.sms_template import render_message
from skills.mfa.tools import GLOBAL_VERIFIED, CodePolicy

__all__ = ["MfaAgent", "build_agent", "log_sandbox_text"]

sandbox_log = logging.getLogger("mfa.sandbox")

CONSCIENCE = (
    "You are a verification agent. Never invent, repeat, guess or confirm a verification "
    "code, not even part of one. Only the verify_mfa tool decides whether a code is right, "
    "and a caller is verified only when verify_mfa said so on this call."
)
POST_PROMPT_TEMPERATURE = 0.1
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
    state = agent.state = state_backend(settings.redis_url, settings.sandbox_db_path)
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
            _build_provider(settings, http, state, sandbox_deliver or log_and_show_sandbox_text)
        ),
        state=state.breaker_state,
        failure_threshold=settings.file.breaker.failure_threshold,
        open_seconds=settings.file.breaker.open_seconds,
        clock=breaker_clock or time.time,
    )
    agent.on_lifecycle(stop=breaker.aclose)

    outbox = agent.outbox = _outbox(settings, state, http, agent, metrics, outbox_clock)

    _configure_conversation(agent, settings)
    if skill_registry.get_skill_class(MfaSkill.SKILL_NAME) is None:
        skill_registry.register_skill(MfaSkill)
    policy = _code_policy(settings)
    pumping = _pumping_guard(settings, state)
    agent.publisher.subscribe(pumping.on_event)  # a verification counts for its range
    limiter = _send_limiter(settings, state, agent.agent_id, pumping)
    agent.add_skill(
        MfaSkill.SKILL_NAME,
        {
            "provider": breaker,
            "policy": policy,
            "publisher": agent.publisher,
            "agent_id": agent.agent_id,
            "limiter": limiter,
            "accounts": _account_recipients(settings, http, state, limiter, policy),
            # meta_data sealed to its call; replicas share the key through the SWAIG secret.
            "binding_key": binding_key(
                settings.swaig_secret.get_secret_value() if settings.swaig_secret else None
            ),
            "replay_pending_seconds": upstream.deadline_seconds + 5.0,
            "next_step": _next_step(settings, limiter),
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
        metrics_router(metrics, breaker_open=breaker.is_open, outbox_pending=outbox.store.pending)
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


def _outbox(
    settings: Settings,
    state: StateBackend,
    http: httpx.AsyncClient,
    agent: MfaAgent,
    metrics: OutcomeMetrics,
    clock: Callable[[], float] | None,
) -> Outbox:
    """The outbox and history of final outcomes, and their delivery when a receiver is
    configured. Registered after the HTTP client and the state: it stops before them."""
    hook, outcomes = settings.file.webhook, settings.file.outcomes
    retention_seconds = outcomes.retention_days * 86400
    try:
        store = state.outbox_store(
            settings.outbox_path,
            consumer=agent.agent_id,
            retention_seconds=retention_seconds,
            claim_idle_seconds=hook.claim_idle_seconds,
        )
    except (OSError, sqlite3.Error) as exc:
        raise SettingsError(
            f"outcomes.outbox_path {settings.outbox_path}: cannot open the outbox "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})"
        ) from None
    deliverer = None
    if settings.outcome_webhook_url and settings.outcome_webhook_secret:
        sender = WebhookSender(
            url=settings.outcome_webhook_url,
            secret=settings.outcome_webhook_secret.get_secret_value(),
            http=http,
            request_timeout=hook.request_timeout_seconds,
            clock=time.time,  # signatures carry the real time: the receiver checks it
        )
        deliverer = agent.deliverer = Deliverer(
            store,
            sender,
            workers=hook.workers,
            retry_seconds=hook.retry_hours * 3600,
            base_seconds=hook.retry_base_seconds,
            max_interval_seconds=hook.retry_max_interval_seconds,
            clock=clock or time.time,
            on_result=metrics.on_delivery,
        )
        logging.getLogger("mfa.outcome_webhook").info(
            "outcome_webhook_enabled", extra={"host": sender.host}
        )
    outbox = Outbox(
        store,
        deliver=deliverer is not None,
        retention_seconds=retention_seconds,
        clock=clock or time.time,
        wake=deliverer.wake if deliverer is not None else None,
    )
    agent.on_lifecycle(start=outbox.start, stop=outbox.stop)
    if deliverer is not None:
        agent.on_lifecycle(start=deliverer.start, stop=deliverer.stop)
    return outbox


def _code_policy(settings: Settings) -> CodePolicy:
    code = settings.file.code
    from_number = settings.signalwire.from_number if settings.signalwire else None
    default_region = (region_of(from_number) if from_number else None) or "US"
    home_country = (country_code_of(from_number) if from_number else None) or 1
    company = settings.file.company_name
    messages = tuple(
        (language, render_message(template, company))
        for language, template in settings.file.message_templates.items()
    )
    return CodePolicy(
        message=messages[0][1],
        messages=messages,
        token_length=code.token_length,
        valid_for=code.valid_for,
        max_attempts=code.max_attempts,
        allow_other_numbers=code.allow_other_numbers,
        default_region=default_region,
        allowed_country_codes=frozenset(
            settings.file.limits.allowed_country_codes or [home_country]
        ),
    )


def _account_recipients(
    settings: Settings,
    http: httpx.AsyncClient,
    state: StateBackend,
    limiter: SendLimiter,
    policy: CodePolicy,
) -> AccountRecipients | None:
    """The account path of ``send_mfa`` when a directory is configured (CSV or HTTP)."""
    config = settings.file.directory
    inner: Directory
    if settings.directory_url and settings.directory_secret:
        inner = HttpDirectory(
            http=http,
            url=settings.directory_url,
            secret=settings.directory_secret.get_secret_value(),
            default_region=policy.default_region,
            deadline_seconds=settings.file.upstream.deadline_seconds,
        )
    elif config.path:
        try:
            inner = CsvDirectory(Path(config.path), default_region=policy.default_region)
        except DirectoryFileError as exc:
            raise SettingsError(f"directory.path {config.path}: {exc}") from None
    else:
        return None
    breaker = directory_breaker(
        state=state.directory_breaker_state,
        failure_threshold=settings.file.breaker.failure_threshold,
        open_seconds=settings.file.breaker.open_seconds,
    )
    return AccountRecipients(
        GuardedDirectory(inner, breaker),
        state.account_misses,
        AccountPolicy(
            caller_number_allowed=config.caller_number_allowed,
            unknown_accounts_per_call=config.unknown_accounts_per_call,
            neutral_answer_seconds=config.neutral_answer_seconds,
            languages=policy.languages,
        ),
        try_lookup=limiter.try_lookup,
    )


def _pumping_guard(settings: Settings, state: StateBackend) -> PumpingGuard:
    config = settings.file.pumping
    lists = None
    if config.lists_path:
        try:
            lists = ListsFile(Path(config.lists_path))
        except ListsFileError as exc:
            raise SettingsError(f"pumping.lists_path {config.lists_path}: {exc}") from None
    return PumpingGuard(
        state.counters,
        PumpingLimits(
            per_prefix_per_hour=config.per_prefix_per_hour,
            per_country_per_hour=config.per_country_per_hour,
            conversion_floor=config.conversion_floor,
            conversion_min_sent=config.conversion_min_sent,
            conversion_grace_seconds=config.conversion_grace_seconds,
        ),
        state.pumping_destinations,
        lists=lists,
    )


def _send_limiter(
    settings: Settings, state: StateBackend, agent_id: str, pumping: PumpingGuard
) -> SendLimiter:
    limits = settings.file.limits
    return SendLimiter(
        state.counters,
        SendLimits(
            sends_per_call=limits.sends_per_call,
            resend_cooldown_seconds=limits.resend_cooldown_seconds,
            per_recipient_per_hour=limits.per_recipient_per_hour,
            per_recipient_per_day=limits.per_recipient_per_day,
            agent_sends_per_minute=limits.agent_sends_per_minute,
        ),
        agent_id=agent_id,
        guard=pumping,
    )


def _next_step(settings: Settings, limiter: SendLimiter) -> NextStep:
    call, handoff = settings.file.call, settings.file.handoff
    return NextStep(
        on_verified=handoff.verified,
        on_failed=handoff.failed,
        pacing=Pacing(normal_ms=call.end_of_speech_ms, pending_ms=call.end_of_speech_pending_ms),
        sends_left=limiter.sends_left,
    )


def _build_provider(
    settings: Settings,
    http: httpx.AsyncClient,
    state: StateBackend,
    sandbox_deliver: Callable[[SandboxText], None],
) -> CodeProvider:
    if settings.provider is ProviderName.SIGNALWIRE:
        assert settings.signalwire is not None  # guaranteed by Settings validation
        creds = settings.signalwire
        return SignalWireProvider(
            http=http,
            base_url=creds.base_url,
            project_id=creds.project_id,
            api_token=creds.api_token.get_secret_value(),
            from_number=creds.from_number,
            deadline_seconds=settings.file.upstream.deadline_seconds,
        )
    try:
        store = state.pending_codes()
    except (OSError, sqlite3.Error) as exc:
        # Said in one line at start-up (agent/cli.py), not as a traceback.
        raise SettingsError(
            f"sandbox_db_path {settings.sandbox_db_path}: cannot open the sandbox's database "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})"
        ) from None
    return SandboxProvider(store, deliver=sandbox_deliver)


def log_sandbox_text(text: SandboxText) -> None:
    """Sandbox only: the "text message" goes to the log, code included, so the flow can be
    tried without a phone. The real provider never sees this function."""
    sandbox_log.warning(
        "sandbox_text",
        extra={"sandbox": True, "to": mask_number(text.to), "body": text.body},
    )


def _configure_languages(agent: MfaAgent, languages: list[LanguageConfig]) -> None:
    """The SWML of the languages Jim speaks, as SignalWire's SWML reference describes it.

    One language: one ``ai.languages`` entry. Several: ``ai.multilingual``, which the
    reference (``swml/.../ai/multilingual``) names for a call that follows the caller's
    language turn by turn (``ai.languages`` picks one per call; the two are mutually
    exclusive): speech recognition in code-switching mode, a voice per language, the
    first one opening the call, and the agent kept to the configured languages
    (``allowed``). Entries are built here rather than with the SDK's ``add_language``,
    which splits ``engine.voice:model`` into the deprecated ``engine`` key and writes a
    lone filler list as the deprecated ``fillers``, which is never used for speech fillers.
    """
    if len(languages) == 1:
        (only,) = languages
        entry: dict[str, Any] = {"name": only.name, "code": only.code, "voice": only.voice}
        if only.speech_fillers:
            entry["speech_fillers"] = list(only.speech_fillers)
        if only.function_fillers:
            entry["function_fillers"] = list(only.function_fillers)
        agent.set_languages([entry])
        return
    first = languages[0]
    multilingual: dict[str, Any] = {
        "start_language": primary_subtag(first.code),
        "allowed": [primary_subtag(lang.code) for lang in languages],
        "languages": [
            {"language": "default", "voice": first.voice},
            *({"language": primary_subtag(lang.code), "voice": lang.voice} for lang in languages),
        ],
    }
    for key, attribute in (("fillers", "speech_fillers"), ("function_fillers", "function_fillers")):
        per_language = {
            primary_subtag(lang.code): list(getattr(lang, attribute))
            for lang in languages
            if getattr(lang, attribute)
        }
        if per_language:
            multilingual[key] = per_language
    agent.set_multilingual(multilingual)


def _configure_conversation(agent: MfaAgent, settings: Settings) -> None:
    """Language, prompt, AI parameters, global data and post-prompt: what the SWML says."""
    file = settings.file
    _configure_languages(agent, file.languages)
    for section in load_prompt_sections(settings):
        agent.prompt_add_section(**section)
    call = file.call
    agent.set_params(
        {
            "digit_terminators": file.dtmf.digit_terminators,
            "digit_timeout": file.dtmf.digit_timeout_ms,
            # The normal value; while a code is pending send_mfa's answer lengthens it for
            # the turn (skills/mfa/next_step.py).
            "end_of_speech_timeout": call.end_of_speech_ms,
            # Quiet while the caller opens their texts: prompt after attention_timeout
            # (schema range 10000..600000 or 0), leave after inactivity_timeout.
            "attention_timeout": call.attention_timeout_ms,
            "inactivity_timeout": call.inactivity_timeout_ms,
            # No call outlives its tool tokens (agent/call_config.py).
            "hard_stop_time": call.hard_stop_time,
            "hard_stop_prompt": call.hard_stop_prompt,
            # SWML from a tool only when a handoff transfers (connect is a SWML verb).
            "swaig_allow_swml": file.handoff.needs_swml,
            "swaig_set_global_data": True,
            "conscience": CONSCIENCE,
            "local_tz": "UTC",
        }
    )
    agent.set_global_data({GLOBAL_VERIFIED: False, "persona": file.persona_name})
    agent.set_post_prompt(
        "Summarize the call as JSON with keys: caller_wanted (short text), "
        "code_sent (true/false), verified (true only if verify_mfa said so), "
        "outcome (one short sentence). Never include a code or a phone number."
    )
    # A summary is a record, not a conversation: as deterministic as the model allows.
    agent.set_post_prompt_llm_params(temperature=POST_PROMPT_TEMPERATURE)
