"""One typed settings object, validated once at start-up.

Non-secret behaviour comes from a YAML file (``agent/config.yaml`` by default,
another via ``MFA_AGENT_CONFIG``); secrets and deployment facts come only from
the environment. Anything wrong stops start-up with a message that names the
key, because a voice agent that starts half-configured fails on a live call.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from agent.config.config_file import FileConfig, Strict
from agent.config.env_vars import (
    ACCOUNT_FIELDS,
    ENV_NAME_OF_FIELD,
    ENV_VARS,
    control_character_problem,
    env_name,
    parse_flag,
    read_environment,
)
from agent.config.loading import SettingsError, load_file_config, validated
from agent.config.settings_rules import (
    ProviderName,
    absolute_http_url,
    check_sentinel_master,
    parse_sentinels,
    refuse_sandbox_beside_an_account,
    require_e164,
    require_one_redis,
    require_signing_key_off_loopback,
)
from agent.http.ingress import parse_trusted_proxies
from skills.mfa.delivery.providers.signalwire import is_loopback_host, normalize_space_url
from skills.mfa.delivery.signing import secret_problem

if TYPE_CHECKING:
    from skills.mfa.redis_client import RedisTarget

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_VARS",
    "ProviderName",
    "Settings",
    "SettingsError",
    "load_settings",
]

# The shipped YAML file stays beside the package (agent/config.yaml), where operators find it.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[1] / "config.yaml"

_PLACEHOLDERS = {"changeme", "change-me", "your-token", "xxx", "todo", "secret", "password"}


# With an account the password guards webhooks that text real phones.
MIN_PASSWORD_WITH_ACCOUNT = 16


class SignalWireCredentials(Strict):
    project_id: str
    api_token: SecretStr
    base_url: str
    from_number: str

    @field_validator("base_url")
    @classmethod
    def _normalise_space(cls, value: str) -> str:
        return normalize_space_url(value)

    @field_validator("from_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        return require_e164(value)

    @field_validator("api_token")
    @classmethod
    def _not_placeholder(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().strip().lower() in _PLACEHOLDERS:
            raise ValueError("is a placeholder, not a real API token")
        return value


class Settings(Strict):
    """Everything the process needs, from the file and the environment."""

    file: FileConfig
    config_path: Path
    host: str = "0.0.0.0"
    port: int = Field(3000, ge=1, le=65535)
    basic_auth_user: str = "mfa"
    basic_auth_password: SecretStr
    basic_auth_generated: bool = False
    proxy_url_base: str | None = None
    trusted_proxies: str | None = None
    swaig_secret: SecretStr | None = None
    signing_key: SecretStr | None = None
    provider: ProviderName
    provider_fell_back: bool = False
    # MFA_SANDBOX_WITH_ACCOUNT=1: the sandbox on purpose beside account variables.
    sandbox_with_account: bool = False
    signalwire: SignalWireCredentials | None = None
    redis_url: str | None = None
    # Redis Sentinel (exclusive with redis_url): the sentinels, and the monitored name.
    redis_sentinels: tuple[tuple[str, int], ...] | None = None
    redis_sentinel_master: str | None = None
    outcome_webhook_url: str | None = None
    outcome_webhook_secret: SecretStr | None = None
    directory_url: str | None = None
    directory_secret: SecretStr | None = None
    # The dashboard's pair; no password with an account: its routes stay closed.
    dashboard_user: str = "admin"
    dashboard_password: SecretStr | None = None
    dashboard_password_generated: bool = False

    @model_validator(mode="after")
    def _dashboard_apart_from_the_platform(self) -> Settings:
        """The platform's pair sits in every URL the SWML names; it must not open the
        dashboard, so the dashboard's password is another one (and long with an account)."""
        if self.dashboard_password is None:
            return self
        password = self.dashboard_password.get_secret_value()
        if password == self.basic_auth_password.get_secret_value():
            raise ValueError(
                f"{env_name('dashboard_password')} must differ from "
                f"{env_name('basic_auth_password')}: the platform's credentials sit in the "
                "webhook URLs and must not open the dashboard"
            )
        if self.provider is ProviderName.SIGNALWIRE and len(password) < MIN_PASSWORD_WITH_ACCOUNT:
            raise ValueError(
                f"{env_name('dashboard_password')} must be at least "
                f"{MIN_PASSWORD_WITH_ACCOUNT} characters with a SignalWire account"
            )
        return self

    @property
    def dashboard_credentials(self) -> tuple[str, str] | None:
        """The pair that opens the dashboard; ``None``: it stays closed."""
        if self.dashboard_password is None:
            return None
        return self.dashboard_user, self.dashboard_password.get_secret_value()

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        example = "redis://127.0.0.1:6379/0"
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - a bad port raises here, not as a traceback at start-up
        except ValueError:
            raise ValueError(f"is not a valid URL; use one such as {example}") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis:// or rediss:// URL such as {example}")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _redis_sentinels(cls, value: Any) -> Any:
        return parse_sentinels(value) if isinstance(value, str) else value

    @field_validator("redis_sentinel_master")
    @classmethod
    def _redis_sentinel_master(cls, value: str | None) -> str | None:
        return None if value is None else check_sentinel_master(value)

    @property
    def redis_target(self) -> RedisTarget | None:
        """Where the shared state lives: ``REDIS_URL``, the primary the sentinels name,
        or ``None`` (this process alone)."""
        if self.redis_sentinels and self.redis_sentinel_master:
            from skills.mfa.redis_client import SentinelTarget

            return SentinelTarget(self.redis_sentinels, self.redis_sentinel_master)
        return self.redis_url

    @field_validator("outcome_webhook_url", "directory_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return absolute_http_url(value, "https://hooks.example.com/mfa")

    @field_validator("outcome_webhook_secret", "directory_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else secret_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("proxy_url_base")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        url = absolute_http_url(value, "https://agent.example.com")
        if url and "@" in urlsplit(url).netloc:
            # The agent puts the basic-auth pair into the URLs it publishes itself; a pair
            # here would be doubled there and printed by check (the value is not quoted).
            raise ValueError(
                "must not carry credentials (user:password@): the agent adds its basic-auth "
                "pair to the URLs it gives SignalWire"
            )
        return url.rstrip("/") if url else None

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str | None) -> str | None:
        parse_trusted_proxies(value)  # its ValueError names the bad entry
        return value

    @model_validator(mode="before")
    @classmethod
    def _cross_field_rules(cls, data: Any) -> Any:
        """Rules across fields, checked on the raw values before each field's own checks.

        They run first because they decide what the fields mean: without a chosen
        provider, the SignalWire credentials are not validated at all (the sandbox ignores
        them). Messages name environment variables, as an operator sets them.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        account = data.get("signalwire") or {}
        if isinstance(account, SignalWireCredentials):
            account = account.model_dump()
        mentioned = [field for field in ACCOUNT_FIELDS if field in account]
        unusable = [
            f"{env_name(f'signalwire.{field}')} (set but empty)"
            if field in account
            else env_name(f"signalwire.{field}")
            for field in ACCOUNT_FIELDS
            if not account.get(field)
        ]

        requested = data.get("provider")
        if requested is None:
            if mentioned and unusable:
                every = ", ".join(env_name(f"signalwire.{field}") for field in ACCOUNT_FIELDS)
                raise ValueError(
                    "incomplete SignalWire account: it needs "
                    + ", ".join(unusable)
                    + f" (an account needs all of {every}; for the sandbox set none of them)"
                )
            data["provider"] = ProviderName.SIGNALWIRE if mentioned else ProviderName.SANDBOX
            data["provider_fell_back"] = not mentioned
        elif str(requested).lower() in ProviderName.__members__.values():
            data["provider"] = ProviderName(str(requested).lower())
        else:
            raise ValueError(f"{env_name('provider')} must be 'signalwire' or 'sandbox'")
        refuse_sandbox_beside_an_account(data, mentioned)

        require_one_redis(data)

        if data.get("outcome_webhook_url") and not data.get("outcome_webhook_secret"):
            raise ValueError(
                f"{env_name('outcome_webhook_secret')} is required when "
                f"{env_name('outcome_webhook_url')} is set (outcomes are signed with it)"
            )

        on_file = getattr(data.get("file"), "directory", None)
        if bool(data.get("directory_url")) != bool(data.get("directory_secret")):
            raise ValueError("MFA_DIRECTORY_URL and MFA_DIRECTORY_SECRET are set together")
        if data.get("directory_url") and on_file is not None and on_file.path:
            raise ValueError("directory.path and MFA_DIRECTORY_URL: set one directory, not both")
        if data["provider"] is not ProviderName.SIGNALWIRE:
            data.pop("signalwire", None)
            return data
        if unusable:
            raise ValueError(f"{env_name('provider')}=signalwire needs " + ", ".join(unusable))
        if data.get("basic_auth_generated"):
            # A generated password would change at every restart and differ between
            # replicas; and an unquoted value with spaces in an env file the shell loads
            # leaves it unset without a word. With an account it is the operator's.
            raise ValueError(
                f"{env_name('basic_auth_password')} is required with a SignalWire account "
                f"(at least {MIN_PASSWORD_WITH_ACCOUNT} characters, the same on every "
                "replica and in the number's SWML URL): it is not generated. In an env file, "
                "write it in single quotes: an unquoted value with spaces is never set"
            )
        password = data.get("basic_auth_password")
        if isinstance(password, SecretStr):
            password = password.get_secret_value()
        if isinstance(password, str) and len(password) < MIN_PASSWORD_WITH_ACCOUNT:
            raise ValueError(
                f"{env_name('basic_auth_password')} must be at least "
                f"{MIN_PASSWORD_WITH_ACCOUNT} characters with a SignalWire account (it guards "
                "webhooks that text real phones): use a long random string, such as the "
                "output of openssl rand -hex 16"
            )
        require_signing_key_off_loopback(data, account)
        if not data.get("proxy_url_base") and not data.get("trusted_proxies"):
            raise ValueError(
                f"{env_name('proxy_url_base')} is required with a SignalWire account: the "
                "public https URL SignalWire reaches (e.g. https://agent.example.com), or "
                f"name your reverse proxy in {env_name('trusted_proxies')} to take the host "
                "from it"
            )
        return data

    @field_validator("sandbox_with_account", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return parse_flag(value)

    @property
    def signing_key_optional(self) -> bool:
        """An account whose space is a loopback fake may run unsigned (with a warning)."""
        return (
            self.signalwire is not None
            and self.signing_key is None
            and is_loopback_host(urlsplit(self.signalwire.base_url).hostname)
        )

    @property
    def sandbox_db_path(self) -> Path:
        path = Path(self.file.sandbox_db_path)
        return path if path.is_absolute() else Path.cwd() / path

    @property
    def outbox_path(self) -> Path:
        """The outbox's SQLite file: ``outcomes.outbox_path``, else beside the sandbox's,
        one file per provider: sandbox outcomes (nobody's phone verified) must never land
        in an account's history, and both default to the same directory."""
        configured = self.file.outcomes.outbox_path
        if configured is None:
            name = (
                "outcomes.sqlite3"
                if self.provider is ProviderName.SIGNALWIRE
                else "outcomes-sandbox.sqlite3"
            )
            return self.sandbox_db_path.with_name(name)
        path = Path(configured)
        return path if path.is_absolute() else Path.cwd() / path


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file and the environment into one validated ``Settings``.

    Raises ``SettingsError`` naming the key at fault.
    """
    env = os.environ if environ is None else environ
    problem = control_character_problem(env)
    if problem:
        raise SettingsError(problem)
    raw = read_environment(env)
    config_path = Path(raw.pop("config_path", DEFAULT_CONFIG_PATH))
    raw["file"] = load_file_config(config_path)
    raw["config_path"] = config_path
    if "basic_auth_password" not in raw:
        raw["basic_auth_password"] = secrets.token_urlsafe(18)
        raw["basic_auth_generated"] = True
    settings = validated(Settings, raw, ENV_NAME_OF_FIELD)
    if settings.dashboard_password is None and settings.provider is ProviderName.SANDBOX:
        # The sandbox opens its dashboard with a generated password, printed once (cli).
        generated = SecretStr(secrets.token_urlsafe(18))
        settings = settings.model_copy(
            update={"dashboard_password": generated, "dashboard_password_generated": True}
        )
    return settings
