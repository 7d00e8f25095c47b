"""The composition root: settings in, a ready ``MfaAgent`` out.

``build_agent`` picks the code provider (SignalWire or sandbox), creates the
process's one pooled HTTP client, loads the MFA skill, the prompts and the AI
parameters, and hooks start-up and shutdown into the web app's lifespan. Tests
pass an ``http_transport`` (an ``httpx.MockTransport``) or point
``SIGNALWIRE_SPACE`` at a loopback fake; nothing is patched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from signalwire import AgentBase
from signalwire.skills.registry import skill_registry

from agent.live import EventHub, install_live_features
from agent.outcome_webhook import OutcomeWebhook, install_outcome_webhook
from agent.prompts import load_prompt_sections
from agent.request_guard import TOO_LARGE, body_problem
from agent.security_headers import replace_sdk_middleware
from agent.settings import ProviderName, Settings
from agent.state import StateBackend, state_backend
from skills.mfa.binding import binding_key
from skills.mfa.events import EventPublisher
from skills.mfa.http_pool import new_shared_client
from skills.mfa.limits import SendLimiter, SendLimits
from skills.mfa.phone import country_code_of, mask_number, region_of
from skills.mfa.providers.base import CodeProvider
from skills.mfa.providers.breaker import CircuitBreakerProvider
from skills.mfa.providers.sandbox import SandboxProvider, SandboxText
from skills.mfa.providers.signalwire import SignalWireProvider
from skills.mfa.skill import MfaSkill
from skills.mfa.tools import GLOBAL_VERIFIED, CodePolicy

log = logging.getLogger("mfa.agent")
sandbox_log = logging.getLogger("mfa.sandbox")

# An empty SDK config file: passing it stops the SDK from searching the working
# directory (config.json, agent_config.json, ...) for settings of its own.
SDK_CONFIG_FILE = Path(__file__).with_name("sdk_config.json")


class MfaAgent(AgentBase):
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
            signing_key=settings.signing_key.get_secret_value() if settings.signing_key else None,
            swaig_secret=(
                settings.swaig_secret.get_secret_value() if settings.swaig_secret else None
            ),
            **kwargs,
        )
        self.settings = settings
        self.publisher = EventPublisher()
        self.provider: CodeProvider | None = None
        self.state: StateBackend | None = None
        self.http: httpx.AsyncClient | None = None
        self.live_hub: EventHub | None = None
        self.outcome_webhook: OutcomeWebhook | None = None
        self._readiness_checks: list[Callable[[], Awaitable[bool]]] = []
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    async def _handle_swaig_request(
        self, request: Request, response: Response
    ) -> Response | dict[str, Any]:
        """Malformed bodies get a 4xx here instead of the SDK's 500 (agent/request_guard.py)."""
        rejected = await self._reject_malformed(request, swaig=True)
        return rejected or await super()._handle_swaig_request(request, response)

    async def _handle_root_request(self, request: Request) -> Response:
        rejected = await self._reject_malformed(request, swaig=False)
        return rejected or await super()._handle_root_request(request)

    async def _handle_post_prompt_request(self, request: Request) -> Any:
        rejected = await self._reject_malformed(request, swaig=False)
        return rejected or await super()._handle_post_prompt_request(request)

    async def _reject_malformed(self, request: Request, *, swaig: bool) -> Response | None:
        if request.method != "POST" or not self._check_basic_auth(request):
            return None  # the SDK answers GETs and unauthenticated requests itself
        problem = await body_problem(request, swaig=swaig)
        if problem is None:
            return None
        status = 413 if problem == TOO_LARGE else 400
        return JSONResponse({"error": problem}, status_code=status)

    def on_summary(self, summary: Any, raw_data: Any = None) -> None:
        """The post-prompt summary is the model's account of the call: logged for the
        record, never trusted as proof of verification (``global_data`` is)."""
        call_id = raw_data.get("call_id") if isinstance(raw_data, dict) else None
        verified = summary.get("verified") if isinstance(summary, dict) else None
        log.info("call_summary", extra={"call_id": call_id, "model_says_verified": verified})
        if self.live_hub is not None:
            self.live_hub.publish_summary(call_id, summary)

    def on_lifecycle(
        self,
        *,
        start: Callable[[], Awaitable[None]] | None = None,
        stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``start`` when the server starts and ``stop`` when it stops.

        Starts run in the order registered, stops in the reverse order, so a part
        registered later (e.g. the outcome webhook) stops before what it uses (the
        shared HTTP client). Every stop runs even if another one fails.
        """
        if start is not None:
            self._on_start.append(start)
        if stop is not None:
            self._on_stop.append(stop)

    def add_readiness_check(self, check: Callable[[], Awaitable[bool]]) -> None:
        self._readiness_checks.append(check)

    async def is_ready(self) -> bool:
        if self.provider is None:
            return False
        for check in self._readiness_checks:
            if not await check():
                return False
        return True


def build_agent(
    settings: Settings,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    sandbox_deliver: Callable[[SandboxText], None] | None = None,
) -> MfaAgent:
    agent = MfaAgent(settings)
    if settings.proxy_url_base:
        agent.manual_set_proxy_url(settings.proxy_url_base)

    upstream = settings.file.upstream
    agent.http = new_shared_client(
        deadline_seconds=upstream.deadline_seconds,
        connect_timeout_seconds=upstream.connect_timeout_seconds,
        max_connections=upstream.max_connections,
        transport=http_transport,
    )
    agent.on_lifecycle(stop=agent.http.aclose)
    state = agent.state = state_backend(settings.redis_url, settings.sandbox_db_path)
    agent.on_lifecycle(start=state.start, stop=state.aclose)
    agent.add_readiness_check(state.ready)
    hub = agent.live_hub = EventHub(agent_id=agent.agent_id)
    state.attach_hub(hub)

    def log_and_show_sandbox_text(text: SandboxText) -> None:
        log_sandbox_text(text)
        hub.publish_sandbox_text(text)

    agent.provider = CircuitBreakerProvider(
        _build_provider(settings, agent.http, state, sandbox_deliver or log_and_show_sandbox_text),
        state=state.breaker_state,
        failure_threshold=settings.file.breaker.failure_threshold,
        open_seconds=settings.file.breaker.open_seconds,
    )
    agent.on_lifecycle(stop=agent.provider.aclose)

    code = settings.file.code
    from_number = settings.signalwire.from_number if settings.signalwire else None
    default_region = (region_of(from_number) if from_number else None) or "US"
    home_country = (country_code_of(from_number) if from_number else None) or 1
    limits = settings.file.limits
    policy = CodePolicy(
        message=code.message,
        token_length=code.token_length,
        valid_for=code.valid_for,
        max_attempts=code.max_attempts,
        allow_other_numbers=code.allow_other_numbers,
        default_region=default_region,
        allowed_country_codes=frozenset(limits.allowed_country_codes or [home_country]),
    )
    limiter = SendLimiter(
        state.counters,
        SendLimits(
            sends_per_call=limits.sends_per_call,
            resend_cooldown_seconds=limits.resend_cooldown_seconds,
            per_recipient_per_hour=limits.per_recipient_per_hour,
            per_recipient_per_day=limits.per_recipient_per_day,
            agent_sends_per_minute=limits.agent_sends_per_minute,
        ),
        agent_id=agent.agent_id,
    )

    _configure_conversation(agent, settings)
    if skill_registry.get_skill_class(MfaSkill.SKILL_NAME) is None:
        skill_registry.register_skill(MfaSkill)
    agent.add_skill(
        MfaSkill.SKILL_NAME,
        {
            "provider": agent.provider,
            "policy": policy,
            "publisher": agent.publisher,
            "agent_id": agent.agent_id,
            "limiter": limiter,
            # meta_data sealed to its call; replicas share the key through the SWAIG secret.
            "binding_key": binding_key(
                settings.swaig_secret.get_secret_value() if settings.swaig_secret else None
            ),
            "replay_pending_seconds": upstream.deadline_seconds + 5.0,
            "language_code": settings.file.language.code,
        },
    )
    install_live_features(agent, settings)
    install_outcome_webhook(agent, settings)
    _mount_operational_routes(agent)
    _install_lifespan(agent)
    replace_sdk_middleware(agent.get_app())
    return agent


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
    return SandboxProvider(state.pending_codes(), deliver=sandbox_deliver)


def log_sandbox_text(text: SandboxText) -> None:
    """Sandbox only: the "text message" goes to the log, code included, so the flow can be
    tried without a phone. The real provider never sees this function."""
    sandbox_log.warning(
        "sandbox_text",
        extra={"sandbox": True, "to": mask_number(text.to), "body": text.body},
    )


def _configure_conversation(agent: MfaAgent, settings: Settings) -> None:
    file = settings.file
    agent.add_language(name=file.language.name, code=file.language.code, voice=file.language.voice)
    for section in load_prompt_sections(settings):
        agent.prompt_add_section(**section)
    agent.set_params(
        {
            "digit_terminators": file.dtmf.digit_terminators,
            "digit_timeout": file.dtmf.digit_timeout_ms,
            "end_of_speech_timeout": 700,
            "inactivity_timeout": 120000,
            "local_tz": "UTC",
        }
    )
    agent.set_global_data({GLOBAL_VERIFIED: False, "persona": file.persona_name})
    agent.set_post_prompt(
        "Summarize the call as JSON with keys: caller_wanted (short text), "
        "code_sent (true/false), verified (true only if verify_mfa said so), "
        "outcome (one short sentence). Never include a code or a phone number."
    )


def _mount_operational_routes(agent: MfaAgent) -> None:
    """Replace the SDK's always-green ``/ready`` with one that reflects our dependencies."""
    app = agent.get_app()
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) != "/ready"
    ]
    router = APIRouter()

    @router.get("/ready")
    async def ready() -> JSONResponse:
        ok = await agent.is_ready()
        return JSONResponse(
            {"status": "ready" if ok else "not_ready"}, status_code=200 if ok else 503
        )

    agent.mount(router)


def _install_lifespan(agent: MfaAgent) -> None:
    """The one lifespan: runs the start hooks registered with ``agent.on_lifecycle``, then,
    when the server stops, the stop hooks in reverse order."""
    app = agent.get_app()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as app_state, AsyncExitStack() as stops:
            # Stops first: if a start fails, what was set up is still closed.
            for stop in agent._on_stop:
                stops.push_async_callback(stop)
            for start in agent._on_start:
                await start()
            log.info(
                "agent_started",
                extra={
                    "provider": agent.provider.name if agent.provider else None,
                    "state": agent.state.name if agent.state else None,
                },
            )
            yield app_state

    app.router.lifespan_context = lifespan
