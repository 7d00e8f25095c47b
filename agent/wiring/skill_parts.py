"""What the MFA skill is given: its code policy, provider, limits, pumping guard, account
directory and next step, each built from the settings."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx

from agent.config.language_config import templates_by_language
from agent.config.settings import ProviderName, Settings, SettingsError
from agent.state import StateBackend
from skills.mfa.delivery.line_type import (
    CachedLineTypes,
    LineTypeLookup,
    SignalWireLineTypes,
    StaticLineTypes,
)
from skills.mfa.delivery.providers.base import CodeProvider
from skills.mfa.delivery.providers.sandbox import SandboxProvider, SandboxText
from skills.mfa.delivery.providers.signalwire import SignalWireProvider
from skills.mfa.flow.channels import ChannelPolicy, LinePolicy
from skills.mfa.flow.directory.base import Directory
from skills.mfa.flow.directory.csv_directory import CsvDirectory, DirectoryFileError
from skills.mfa.flow.directory.guarded import GuardedDirectory, directory_breaker
from skills.mfa.flow.directory.http_directory import HttpDirectory
from skills.mfa.flow.next_step import NextStep, Pacing
from skills.mfa.flow.recipient import AccountPolicy, AccountRecipients
from skills.mfa.flow.sms_template import render_message
from skills.mfa.flow.tools import CodePolicy
from skills.mfa.limits.pumping import PumpingGuard, PumpingLimits
from skills.mfa.limits.pumping_lists import ListsFile, ListsFileError
from skills.mfa.limits.send_limits import SendLimiter, SendLimits
from skills.mfa.phone import country_code_of, mask_number, region_of

sandbox_log = logging.getLogger("mfa.sandbox")


def code_policy(settings: Settings) -> CodePolicy:
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


def account_recipients(
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


def pumping_guard(settings: Settings, state: StateBackend) -> PumpingGuard:
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


def send_limiter(
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


def next_step(settings: Settings, limiter: SendLimiter) -> NextStep:
    call, handoff = settings.file.call, settings.file.handoff
    return NextStep(
        on_verified=handoff.verified,
        on_failed=handoff.failed,
        pacing=Pacing(normal_ms=call.end_of_speech_ms, pending_ms=call.end_of_speech_pending_ms),
        sends_left=limiter.sends_left,
    )


def build_provider(
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
        extra={
            "sandbox": True,
            "to": mask_number(text.to),
            "body": text.body,
            "channel": text.channel,
        },
    )


def channel_policy(
    settings: Settings, http: httpx.AsyncClient, state: StateBackend, policy: CodePolicy
) -> ChannelPolicy:
    """The ``channels`` section: a line-type lookup before each send (SignalWire's, or the
    sandbox's table), cached where the state lives, and the voice call's words per language."""
    config = settings.file.channels
    # The voice message per language as code.message's templates are: the same matching of
    # codes and subtags, the same {company} filling.
    templates = templates_by_language(config.voice_message, settings.file.languages)
    voice = tuple(
        (language, render_message(template, settings.file.company_name))
        for language, template in templates.items()
    )
    with_account = settings.provider is ProviderName.SIGNALWIRE
    lookup: LineTypeLookup | None = None
    if not config.looks_up(with_account=with_account):
        pass  # no lookup: every code is texted, as before
    elif with_account:
        assert settings.signalwire is not None  # guaranteed by Settings validation
        creds = settings.signalwire
        lookup = SignalWireLineTypes(
            http=http,
            base_url=creds.base_url,
            project_id=creds.project_id,
            api_token=creds.api_token.get_secret_value(),
            deadline_seconds=config.lookup_timeout_seconds,
        )
    else:
        lookup = StaticLineTypes(config.sandbox_line_types)
    return ChannelPolicy(
        None
        if lookup is None
        else CachedLineTypes(lookup, state.line_type_cache(), config.cache_days * 86400),
        voice_to_number_on_file=config.voice_to_number_on_file,
        voice_messages=voice,
        voip=LinePolicy(config.voip),
        other=LinePolicy(config.other),
    )
