"""What an agent is started with: its YAML file and its environment variables.

Tests build ``Settings`` from these, start ``python -m agent`` with them, and the benchmark
starts its agents with them: one place that knows which variables make a sandbox agent or
one on the fake SignalWire (their names are in ``agent.config.settings.ENV_VARS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from testkit.fake_signalwire import API_TOKEN, PROJECT_ID

FROM_NUMBER = "+15559870000"


def write_config(
    directory: Path, overrides: dict[str, Any] | None = None, *, name: str = "config.yaml"
) -> Path:
    """A YAML settings file in ``directory`` with its sandbox database beside it.

    A mapping in ``overrides`` is merged into its section; anything else replaces the key.
    """
    data: dict[str, Any] = {"sandbox_db_path": str(directory / "sandbox.sqlite3")}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = directory / name
    path.write_text(yaml.safe_dump(data))
    return path


def agent_env(
    config: Path,
    *,
    auth: tuple[str, str],
    swaig_secret: str,
    signalwire_url: str | None = None,
    redis_url: str | None = None,
    dashboard: tuple[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """``base`` plus the variables of an agent on ``config``.

    With ``signalwire_url`` the agent texts through the fake SignalWire there (with the
    fake's credentials); without it, through the sandbox. ``dashboard``: the dashboard's own
    pair (``MFA_DASHBOARD_*``). ``extra`` comes last, so a test
    can override or blank any variable (``SWML_BASIC_AUTH_PASSWORD=""``).
    """
    env = dict(base or {})
    env.update(
        {
            "MFA_AGENT_CONFIG": str(config),
            "SWML_BASIC_AUTH_USER": auth[0],
            "SWML_BASIC_AUTH_PASSWORD": auth[1],
            "SIGNALWIRE_SWAIG_SECRET": swaig_secret,
        }
    )
    if signalwire_url:
        env.update(
            {
                "MFA_PROVIDER": "signalwire",
                "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
                "SIGNALWIRE_API_TOKEN": API_TOKEN,
                "SIGNALWIRE_SPACE": signalwire_url,
                "MFA_FROM_NUMBER": FROM_NUMBER,
                # An account needs a public URL or a named proxy. Tests reach the agent
                # directly, so the webhook URLs must follow the loopback Host they send:
                # the test client stands where the reverse proxy would.
                "MFA_TRUSTED_PROXIES": "127.0.0.1",
            }
        )
    else:
        env["MFA_PROVIDER"] = "sandbox"
    if redis_url:
        env["REDIS_URL"] = redis_url
    if dashboard:
        env.update({"MFA_DASHBOARD_USER": dashboard[0], "MFA_DASHBOARD_PASSWORD": dashboard[1]})
    env.update(extra)
    return env
