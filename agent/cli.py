"""``python -m agent``: serve the agent. ``python -m agent call``: play a call against it."""

from __future__ import annotations

import errno
import logging
import socket
import sys
from typing import NoReturn

from agent.config.config_file import code_policy_warnings
from agent.config.settings import Settings, SettingsError, load_settings
from agent.http.logging_setup import configure_logging, print_json_line

# Imported here, not in serve(): it must see AgentBase.serve before swaig-test replaces it.
from agent.http.sdk_surgery import serve_is_intercepted

log = logging.getLogger("mfa.agent")

USAGE = """\
usage: python -m agent [serve]             serve the agent (the default)
       python -m agent check [--running]   preflight: talk to every configured dependency,
                                           one line each (ok, warn, FAIL with the fix);
                                           exit 0 only when nothing failed (--running:
                                           after start, nothing at the public URL fails)
       python -m agent call [options]      play one verification call, no phone needed
                                           (python -m agent call --help for its options)
       python -m agent --help              this text

Serves SWML at /, the SWAIG webhooks, /health, /ready and the dashboard (/live, /events,
/outcomes, /outcomes.csv, /metrics) on HOST:PORT.

Environment (secrets and deployment facts; README "Configuration" lists them all):
  HOST, PORT                      where to listen (default 0.0.0.0:3000)
  SWML_BASIC_AUTH_USER            basic-auth user (default mfa)
  SWML_BASIC_AUTH_PASSWORD        basic-auth password; required (16+ characters) with a
                                  SignalWire account; unset in the sandbox: generated and
                                  printed once
  SWML_PROXY_URL_BASE             the public https URL SignalWire reaches (needed with an
                                  account, unless MFA_TRUSTED_PROXIES names your proxy)
  MFA_TRUSTED_PROXIES             IPs/networks of your reverse proxy (host from its headers)
  SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE, MFA_FROM_NUMBER
                                  the SignalWire account: all four, or none for the sandbox
  SIGNALWIRE_SIGNING_KEY          refuse webhooks SignalWire did not sign
  SIGNALWIRE_SWAIG_SECRET         signs per-call tool tokens (same on every replica)
  MFA_PROVIDER                    signalwire or sandbox (default: from the account)
  MFA_SANDBOX_WITH_ACCOUNT=1      run the sandbox beside account variables on purpose
  REDIS_URL                       state shared by replicas
  REDIS_SENTINELS, REDIS_SENTINEL_MASTER
                                  the same through Redis Sentinel (host:port,... and the
                                  monitored name; instead of REDIS_URL)
  MFA_OUTCOME_WEBHOOK_URL, MFA_OUTCOME_WEBHOOK_SECRET
                                  signed POST of each final outcome
  MFA_DIRECTORY_URL, MFA_DIRECTORY_SECRET
                                  the business's account directory (signed lookups)
  MFA_DASHBOARD_USER, MFA_DASHBOARD_PASSWORD
                                  the dashboard's own pair (default user admin); unset
                                  password: generated in the sandbox, closed with an account
  MFA_AGENT_CONFIG                the YAML settings file

Config file (non-secret settings): agent/config.yaml, or the path in MFA_AGENT_CONFIG.
A bad value, a partial account or a port in use stops start-up with one line on stderr.
"""

HELP_ARGS = ("-h", "--help", "help")


def main(argv: list[str] | None = None) -> None:
    """``argv`` without the program name; ``None``: ``sys.argv`` (the ``mfa-agent`` script)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["call"]:
        from agent.ops.simulator import main as call_main

        sys.exit(call_main(args[1:], load_settings=load_or_exit))
    if args[:1] == ["check"]:
        from agent.ops.preflight import main as check_main

        configure_logging("WARNING")
        sys.exit(check_main(args[1:], load_settings=load_settings, out=sys.stdout))
    if args[:1] == ["serve"]:
        args = args[1:]
    if args and args[0] in HELP_ARGS:
        print(USAGE, end="")
        sys.exit(0)
    if args:
        print(f"python -m agent: unknown argument {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        sys.exit(2)
    serve()


def stop_start_up(message: str) -> NoReturn:
    """End start-up with one line on stderr naming what to fix; nothing on stdout."""
    print(f"mfa-agent: configuration error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def load_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        stop_start_up(str(exc))


def check_port_free(host: str, port: int) -> None:
    """Bind HOST:PORT the way uvicorn will, then let it go, so a port in use stops
    start-up before anything says the agent is starting. uvicorn still binds for real;
    in the moment between, another process could take the port (then uvicorn's own
    error ends the run)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        stop_start_up(f"HOST {host!r} is not an address this machine can listen on")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                stop_start_up(f"PORT {port} is already in use (HOST {host}); set another PORT")
            stop_start_up(f"cannot listen on HOST {host} PORT {port}: {exc.strerror}")


def serve() -> None:
    configure_logging()
    settings = load_or_exit()
    if not serve_is_intercepted():  # swaig-test runs the tools in-process: no port
        check_port_free(settings.host, settings.port)
    from agent.app import build_agent
    from agent.http.serving import serve_agent

    try:
        agent = build_agent(settings)
    except SettingsError as exc:  # a file the settings name is unusable (directory, sandbox db)
        stop_start_up(str(exc))
    for key, rule in code_policy_warnings(settings.file.code):
        log.warning("weak_code_policy", extra={"key": key, "rule": rule})
    if settings.provider_fell_back:
        log.warning(
            "sandbox_provider",
            extra={
                "why": "no SignalWire account variable is set; codes are generated locally "
                "and 'texted' to the log, not to phones"
            },
        )
    if settings.sandbox_with_account:
        log.warning(
            "sandbox_with_account",
            extra={
                "why": "MFA_SANDBOX_WITH_ACCOUNT=1: the sandbox runs beside SignalWire account "
                "variables; codes go to the log and the live page, never to callers' phones"
            },
        )
    if settings.signing_key is None:
        log.warning(
            "unsigned_webhooks_accepted",
            extra={
                "why": "no SIGNALWIRE_SIGNING_KEY: webhooks are not checked for SignalWire's "
                "signature; allowed only in the sandbox or with a space on this machine (a "
                "test server): a real space requires it"
            },
        )
    if settings.redis_target and settings.swaig_secret is None:
        shared = "REDIS_URL" if settings.redis_url else "REDIS_SENTINELS"
        log.warning(
            "replicas_need_swaig_secret",
            extra={
                "why": f"{shared} is set but SIGNALWIRE_SWAIG_SECRET is not: each replica signs "
                "tool tokens with its own random secret, so a call's tool requests fail on "
                "every replica but the one that served its SWML"
            },
        )
    if settings.basic_auth_generated:
        # Printed once, on stderr, so the operator can reach the agent; never logged.
        print_json_line(
            "mfa.agent",
            "generated_credentials",
            why="no SWML_BASIC_AUTH_PASSWORD set; these work for this run only",
            user=settings.basic_auth_user,
            password=settings.basic_auth_password.get_secret_value(),
        )
    if settings.dashboard_password_generated and settings.dashboard_password is not None:
        # The same one-time JSON line as the platform's generated pair: never logged.
        print_json_line(
            "mfa.agent",
            "generated_dashboard_credentials",
            why="no MFA_DASHBOARD_PASSWORD set; these open /live, /events, /outcomes and "
            "/metrics for this run only",
            user=settings.dashboard_user,
            password=settings.dashboard_password.get_secret_value(),
        )
    elif settings.dashboard_credentials is None:
        log.warning(
            "dashboard_closed",
            extra={
                "why": "MFA_DASHBOARD_PASSWORD is not set: /live, /events, /outcomes, "
                "/outcomes.csv and /metrics answer 401; set MFA_DASHBOARD_PASSWORD (and "
                "MFA_DASHBOARD_USER, default admin) to open them"
            },
        )
    log.info(
        "agent_configured",
        extra={"provider": settings.provider.value, "port": settings.port, "host": settings.host},
    )
    serve_agent(agent)
