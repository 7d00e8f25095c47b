"""What the YAML settings file may hold (non-secret settings), validated at start-up.

``agent/config/settings.py`` reads the file into ``FileConfig`` beside the secrets from the
environment; unknown keys are refused so typos surface, and a bad value stops start-up
naming its key. The call's bounds and handoff live in ``agent/config/call_config.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.config.call_config import CallConfig, HandoffConfig
from agent.config.channels_config import ChannelsConfig
from agent.config.language_config import (
    LanguageConfig,
    check_languages,
    check_templates,
    templates_by_language,
)

# NIST SP 800-63B, out-of-band authenticators (5.1.3): at least 6 digits, valid at most
# 10 minutes. A weaker policy is the operator's call, so it is a warning, not an error.
NIST_MIN_DIGITS = 6
NIST_MAX_VALID_FOR = 600


class Strict(BaseModel):
    """Unknown keys refused, values frozen: the base of every settings model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeConfig(Strict):
    """The one-time code's rules, sent to SignalWire and obeyed by the sandbox alike."""

    # The text before the code, per language code ({en: ..., es: ...}; a plain string is
    # the English one); {company} is company_name. Each is checked at start-up to fit one
    # SMS segment with the code (agent/config/language_config.py).
    message: str | dict[str, str] = Field(
        "From {company}: only say this code on the call you made to us. We never call to ask "
        "for it. Your code:",
        min_length=1,
    )
    token_length: int = Field(6, ge=4, le=20)
    valid_for: int = Field(600, ge=30, le=604800)
    max_attempts: int = Field(3, ge=1, le=20)
    allow_other_numbers: bool = False


class UpstreamConfig(Strict):
    """Bounds on every call to the code provider: the caller is waiting in silence."""

    deadline_seconds: float = Field(8.0, gt=0, le=9.5)
    connect_timeout_seconds: float = Field(2.0, gt=0, le=9.5)
    max_connections: int = Field(100, ge=1, le=10000)


class DtmfConfig(Strict):
    digit_terminators: str = Field("#", min_length=1, max_length=4)
    digit_timeout_ms: int = Field(4000, ge=500, le=30000)


class LimitsConfig(Strict):
    """Abuse limits; see skills/mfa/limits/send_limits.py for what each one defends against."""

    sends_per_call: int = Field(3, ge=1, le=20)
    resend_cooldown_seconds: float = Field(30.0, ge=0, le=3600)
    per_recipient_per_hour: int = Field(5, ge=1, le=1000)
    per_recipient_per_day: int = Field(10, ge=1, le=10000)
    agent_sends_per_minute: int = Field(120, ge=1, le=100000)
    # Country calling codes recipients may have; empty: the country of MFA_FROM_NUMBER
    # (or 1 in the sandbox).
    allowed_country_codes: list[int] = Field(default_factory=list)

    @field_validator("allowed_country_codes")
    @classmethod
    def _calling_codes(cls, value: list[int]) -> list[int]:
        if any(not 1 <= code <= 999 for code in value):
            raise ValueError("country calling codes are 1 to 999, e.g. [1, 44]")
        return value


class PumpingConfig(Strict):
    """SMS pumping protection (skills/mfa/limits/pumping.py); the defaults never trouble a real
    caller: ten texts an hour to one range of 10,000 numbers, 200 an hour to one country."""

    per_prefix_per_hour: int = Field(10, ge=1, le=100000)
    per_country_per_hour: int = Field(200, ge=1, le=10000000)
    # Below this share of codes verified in a country or prefix over the last hour (once
    # conversion_min_sent codes went there), further texts there wait.
    conversion_floor: float = Field(0.2, ge=0, le=1)
    conversion_min_sent: int = Field(20, ge=1, le=1000000)
    # Codes younger than this are not yet counted as unverified (time to read one back).
    conversion_grace_seconds: float = Field(300.0, ge=0, le=3000)
    # "allow +PREFIX" / "block +PREFIX" lines, reloaded when the file changes.
    lists_path: str | None = Field(None, min_length=1)


class BreakerConfig(Strict):
    """After ``failure_threshold`` upstream outages in a row, fail fast for ``open_seconds``."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    open_seconds: float = Field(30.0, gt=0, le=3600)


class DirectoryConfig(Strict):
    """The number on file per account: a CSV file, or MFA_DIRECTORY_URL (README)."""

    path: str | None = Field(None, min_length=1)
    caller_number_allowed: bool = False  # with a directory, may callers skip the account?
    unknown_accounts_per_call: int = Field(3, ge=1, le=20)
    neutral_answer_seconds: float = Field(1.0, ge=0, le=5)


class WebhookConfig(Strict):
    """Delivery of final outcomes to MFA_OUTCOME_WEBHOOK_URL (agent/outcomes/delivery.py)."""

    retry_hours: float = Field(24.0, gt=0, le=168)  # then the outcome is marked dead
    workers: int = Field(4, ge=1, le=64)  # attempts at once, per replica
    retry_base_seconds: float = Field(2.0, gt=0, le=600)  # doubles on each retry
    retry_max_interval_seconds: float = Field(900.0, gt=0, le=86400)
    request_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # With replicas: how long a replica's outcomes sit unclaimed before another takes them.
    claim_idle_seconds: float = Field(60.0, ge=0.1, le=3600)


class OutcomesConfig(Strict):
    """The outbox and history of final outcomes (agent/outcomes/outbox.py)."""

    retention_days: float = Field(30.0, gt=0, le=3650)
    # The SQLite file without REDIS_URL; unset: beside sandbox_db_path, outcomes.sqlite3
    # with an account and outcomes-sandbox.sqlite3 in the sandbox (never the same history).
    outbox_path: str | None = Field(None, min_length=1)


class FileConfig(Strict):
    """What the YAML file may hold. Unknown keys are refused so typos surface."""

    agent_name: str = Field("mfa-agent", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    persona_name: str = Field("Jim", min_length=1, max_length=40)
    company_name: str = Field("our company", min_length=1, max_length=80)
    # The languages Jim speaks, the first one first (README "Languages"). ``language`` (one
    # entry) is the key of earlier releases, read as a list of one.
    languages: list[LanguageConfig] = Field(
        default_factory=lambda: [LanguageConfig()], min_length=1, max_length=10
    )
    language: LanguageConfig | None = None
    code: CodeConfig = CodeConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    dtmf: DtmfConfig = DtmfConfig()
    limits: LimitsConfig = LimitsConfig()
    pumping: PumpingConfig = PumpingConfig()
    breaker: BreakerConfig = BreakerConfig()
    call: CallConfig = CallConfig()
    handoff: HandoffConfig = HandoffConfig()
    directory: DirectoryConfig = DirectoryConfig()
    webhook: WebhookConfig = WebhookConfig()
    outcomes: OutcomesConfig = OutcomesConfig()
    channels: ChannelsConfig = ChannelsConfig()
    sandbox_db_path: str = "var/sandbox.sqlite3"
    prompts_dir: str | None = None

    @field_validator("sandbox_db_path")
    @classmethod
    def _non_empty_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a file path")
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_language_of_earlier_releases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "language" in data and "languages" not in data:
            data = {**data, "languages": [data["language"]]}
        return data

    @model_validator(mode="after")
    def _every_language_served_whole(self) -> FileConfig:
        check_languages(self.languages)
        check_templates(
            self.code.message, self.languages, self.company_name, self.code.token_length
        )
        return self

    @property
    def message_templates(self) -> dict[str, str]:
        """``{language code: template}``, one for each of ``languages``."""
        return templates_by_language(self.code.message, self.languages)


def code_policy_warnings(code: CodeConfig) -> list[tuple[str, str]]:
    """``(key, rule)`` for each part of the code policy weaker than NIST SP 800-63B's rules
    for out-of-band codes (5.1.3.2: at least 6 digits, valid at most 10 minutes)."""
    warnings = []
    if code.token_length < NIST_MIN_DIGITS:
        warnings.append(
            (
                "code.token_length",
                f"{code.token_length} digits is fewer than the {NIST_MIN_DIGITS} NIST SP "
                "800-63B requires for an out-of-band code",
            )
        )
    if code.valid_for > NIST_MAX_VALID_FOR:
        warnings.append(
            (
                "code.valid_for",
                f"{code.valid_for} s is longer than the {NIST_MAX_VALID_FOR} s (10 minutes) "
                "NIST SP 800-63B allows for an out-of-band code",
            )
        )
    return warnings
