"""``python -m agent``: serve the agent. ``python -m agent call``: play a call against it."""

from __future__ import annotations

import logging
import sys

from agent.logging_setup import configure_logging
from agent.settings import Settings, SettingsError, load_settings

log = logging.getLogger("mfa.agent")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["call"]:
        from agent.simulator import main as call_main

        sys.exit(call_main(args[1:], load_settings=load_or_exit))
    serve()


def load_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"mfa-agent: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


def serve() -> None:
    configure_logging()
    settings = load_or_exit()
    if settings.provider_fell_back:
        log.warning(
            "sandbox_provider",
            extra={
                "why": "SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE are not "
                "all set; codes are generated locally and 'texted' to the log, not to phones"
            },
        )
    if settings.redis_url and settings.swaig_secret is None:
        log.warning(
            "replicas_need_swaig_secret",
            extra={
                "why": "REDIS_URL is set but SIGNALWIRE_SWAIG_SECRET is not: each replica signs "
                "tool tokens with its own random secret, so a call's tool requests fail on "
                "every replica but the one that served its SWML"
            },
        )
    if settings.basic_auth_generated:
        # Printed once, on stderr, so the operator can reach the agent; never logged.
        print(
            f"mfa-agent: no SWML_BASIC_AUTH_PASSWORD set; generated credentials for this run: "
            f"{settings.basic_auth_user}:{settings.basic_auth_password.get_secret_value()}",
            file=sys.stderr,
            flush=True,
        )
    from agent.app import build_agent
    from agent.serving import serve_agent

    try:
        agent = build_agent(settings)
    except SettingsError as exc:  # a file the settings name is unusable (directory.path)
        print(f"mfa-agent: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    log.info(
        "agent_configured",
        extra={"provider": settings.provider.value, "port": settings.port, "host": settings.host},
    )
    serve_agent(agent)
