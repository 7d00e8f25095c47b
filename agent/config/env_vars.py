"""The environment variables the agent reads, and the ``Settings`` field each fills.

Secrets and deployment facts come only from the environment (the YAML file holds the
rest). ``ENV_VARS`` is the one table: the loader reads it, error messages name a field
by its variable (``env_name``), ``--help`` lists it, and a test checks the README's
configuration table against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EnvVar:
    """One environment variable and the ``Settings`` field it fills (dotted when nested)."""

    name: str
    field: str
    secret: bool = False
    # Whitespace around the value is dropped, except where ``strip=False``: secrets the
    # operator chose are taken as given, and HOST, PORT, SWML_PROXY_URL_BASE and
    # MFA_AGENT_CONFIG never were stripped (stripping them would start configurations
    # that stop today).
    strip: bool = True


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("MFA_AGENT_CONFIG", "config_path", strip=False),
    EnvVar("HOST", "host", strip=False),
    EnvVar("PORT", "port", strip=False),
    EnvVar("SWML_BASIC_AUTH_USER", "basic_auth_user"),
    EnvVar("SWML_BASIC_AUTH_PASSWORD", "basic_auth_password", secret=True, strip=False),
    EnvVar("SWML_PROXY_URL_BASE", "proxy_url_base", strip=False),
    EnvVar("MFA_TRUSTED_PROXIES", "trusted_proxies"),
    EnvVar("SIGNALWIRE_SWAIG_SECRET", "swaig_secret", secret=True, strip=False),
    EnvVar("SIGNALWIRE_SIGNING_KEY", "signing_key", secret=True, strip=False),
    EnvVar("MFA_PROVIDER", "provider"),
    EnvVar("MFA_SANDBOX_WITH_ACCOUNT", "sandbox_with_account"),
    EnvVar("SIGNALWIRE_PROJECT_ID", "signalwire.project_id"),
    EnvVar("SIGNALWIRE_API_TOKEN", "signalwire.api_token", secret=True),
    EnvVar("SIGNALWIRE_SPACE", "signalwire.base_url"),
    EnvVar("MFA_FROM_NUMBER", "signalwire.from_number"),
    EnvVar("REDIS_URL", "redis_url"),
    # Redis Sentinel instead of REDIS_URL: the sentinels and the name they monitor.
    EnvVar("REDIS_SENTINELS", "redis_sentinels"),
    EnvVar("REDIS_SENTINEL_MASTER", "redis_sentinel_master"),
    EnvVar("MFA_OUTCOME_WEBHOOK_URL", "outcome_webhook_url"),
    EnvVar("MFA_OUTCOME_WEBHOOK_SECRET", "outcome_webhook_secret", secret=True, strip=False),
    EnvVar("MFA_DIRECTORY_URL", "directory_url"),
    EnvVar("MFA_DIRECTORY_SECRET", "directory_secret", secret=True, strip=False),
    # The dashboard's own pair (/live, /events, /outcomes, /metrics): never the platform's.
    EnvVar("MFA_DASHBOARD_USER", "dashboard_user"),
    EnvVar("MFA_DASHBOARD_PASSWORD", "dashboard_password", secret=True, strip=False),
)

ENV_NAME_OF_FIELD = {var.field: var.name for var in ENV_VARS}

# The SignalWire account: all of these, or none (the sandbox). An empty value counts as
# set, so ``SIGNALWIRE_API_TOKEN=`` stops start-up instead of quietly meaning "sandbox".
ACCOUNT_FIELDS = ("project_id", "api_token", "base_url", "from_number")


def env_name(field: str) -> str:
    """The environment variable that fills ``field`` (dotted for nested fields)."""
    return ENV_NAME_OF_FIELD[field]


def read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The variables of ``ENV_VARS`` that are set and not empty, nested by field path.

    The account's variables are kept even when empty: an empty one is a mistake to report,
    not the absence of an account."""
    raw: dict[str, Any] = {}
    account = {f"signalwire.{field}" for field in ACCOUNT_FIELDS}
    for var in ENV_VARS:
        value = env.get(var.name)
        if value is not None and var.strip:
            value = value.strip()
        if not value and not (value is not None and var.field in account):
            continue
        *parents, leaf = var.field.split(".")
        target = raw
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return raw


def parse_flag(value: Any) -> Any:
    """``1/true/yes/on`` and ``0/false/no/off`` (any case); anything else is left for
    pydantic to refuse."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
    return value
