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


_CHARACTER_NAMES = {
    "\r": "a carriage return (\\r)",
    "\n": "a line break (\\n)",
    "\t": "a tab (\\t)",
}


def control_character_problem(env: Mapping[str, str]) -> str | None:
    """A sentence naming the variables of ``ENV_VARS`` whose value holds a control
    character (never the value), or ``None``.

    An env file saved with Windows line endings gives every value a trailing carriage
    return: the agent would run on the account and answer 401 to the right password. No
    value the agent reads has a use for a control character, so one stops start-up. Values
    judged as the agent takes them: whitespace around a stripped one is dropped first."""
    names: list[str] = []
    first = ""
    for var in ENV_VARS:
        value = env.get(var.name) or ""
        taken = value.strip() if var.strip else value
        found = next((c for c in taken if _is_control(c)), None)
        if found is not None:
            names.append(var.name)
            first = first or found
    if not names:
        return None
    what = _CHARACTER_NAMES.get(first, f"a control character (U+{ord(first):04X})")
    hint = (
        "the env file has Windows (CRLF) line endings; convert it with "
        "sed -i 's/\\r$//' FILE (or dos2unix FILE)"
        if first == "\r"
        else "write each value on one line, without control characters"
    )
    held = "the value holds" if len(names) == 1 else "the values hold"
    return f"{', '.join(names)}: {held} {what}: {hint}"


def _is_control(character: str) -> bool:
    return ord(character) < 32 or 127 <= ord(character) < 160


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
