"""``python -m agent check``: the operator learns what is wrong before the phone rings.

Each check talks to the real dependency the configuration names and prints one line:
``ok``, ``warn`` (worth knowing, not blocking) or ``FAIL`` with what to fix. The exit
status is 0 only when nothing failed. Nothing here sends a text, and nothing prints a
secret: hosts are shown, never URLs with credentials, tokens or passwords.

What each check asks, and why that question:

- **configuration**: the settings load and the agent can be built from them (the YAML
  file, the directory file, the sandbox database), as ``python -m agent`` would.
- **space**: ``GET /api/relay/rest/phone_numbers?filter_number=MFA_FROM_NUMBER``, the
  cheapest documented authenticated read (SignalWire's REST reference, "List phone
  numbers"): it sends nothing, and it answers whether the space is reached, whether the
  project id and token are accepted, and whether the number is the project's. That
  endpoint needs the token's *Numbers* scope; the MFA API needs *Management* (the ``mfa``
  spec in signalwire/docs: ``tokenPermissions<"_Management_">`` on ``/mfa/sms`` and
  ``/mfa/{id}/verify``). So a verify of a random, unknown request id follows, whatever
  the read answered: a 404 means the token reaches the MFA API, a 401/403 means it does
  not (and, when the read was refused too, tells a wrong token from a missing scope).
  That verify changes nothing: an unknown id has no code to use up.
- **line-type lookup** (when ``channels.lookup`` is on, by default with an account):
  ``GET /api/relay/rest/lookup/phone_number/MFA_FROM_NUMBER`` without ``include=carrier``
  (free), so a token the lookup refuses is found before a caller's send falls back to a text.
- **signing key**: set wherever it is required (a real space).
- **public URL**: ``SWML_PROXY_URL_BASE/health`` names this agent and ``POST /`` there
  takes this configuration's credentials; nothing answering is a warning, since ``check``
  may run before the agent starts, but a failure once it runs (``--running``, or the agent
  answering ``/health`` on its own HOST:PORT); a name that does not resolve, a TLS
  handshake that fails and a proxy's 5xx are failures, each with its own line.
- **redis**: a write, a read and a delete of a key that expires on its own.
- **directory**: a signed lookup of an account no one has (a 404 is the right answer).
- **outcome receiver**: a signed test delivery, ``{"outcome": "test"}``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TextIO

import httpx

from agent.config.settings import Settings, SettingsError
from agent.ops.preflight.account import check_configuration, check_signing_key, check_space
from agent.ops.preflight.business import check_directory, check_outcome_receiver
from agent.ops.preflight.lines import FAIL, TIMEOUT, WARN, CheckLine
from agent.ops.preflight.lookup_check import check_lookup
from agent.ops.preflight.public_url import check_public_url, tls_context
from agent.ops.preflight.redis_check import check_redis

__all__ = ["CheckLine", "main", "run_checks"]


def main(
    argv: list[str],
    *,
    load_settings: Callable[[], Settings],
    out: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run every check for the environment's configuration; 0 only when none failed."""
    args = parse_args(argv, out)
    if args is None:
        return 2
    if args.help:
        print(PARSER.format_help(), end="", file=out)
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(CheckLine(FAIL, "configuration", str(exc)).render(), file=out, flush=True)
        return 1
    lines = asyncio.run(run_checks(settings, transport=transport, out=out, running=args.running))
    failed = sum(1 for line in lines if line.status == FAIL)
    warned = sum(1 for line in lines if line.status == WARN)
    summary = f"{len(lines)} checks: {failed} failed, {warned} warning{'' if warned == 1 else 's'}"
    print(summary if failed else f"{summary}; ready for a call", file=out, flush=True)
    return 1 if failed else 0


PARSER = argparse.ArgumentParser(
    prog="python -m agent check",
    add_help=False,
    description="Preflight: talk to every dependency the environment's configuration names, "
    "one line each (ok, warn, FAIL with the fix); exit 0 only when nothing failed. It sends "
    'no text. Its test delivery to MFA_OUTCOME_WEBHOOK_URL carries {"outcome": "test"}: '
    "a receiver should answer 2xx and record nothing.",
    epilog="Run it with the agents' environment (set -a; . /etc/mfa-agent/env; set +a).",
)
PARSER.add_argument("-h", "--help", action="store_true", help="this text")
PARSER.add_argument(
    "--running",
    action="store_true",
    help="the agents are started: nothing answering at SWML_PROXY_URL_BASE is a failure, "
    "not a warning (it is one anyway when this agent answers on its own HOST:PORT)",
)


def parse_args(argv: list[str], out: TextIO) -> argparse.Namespace | None:
    """The options, or ``None`` after one usage line on ``out`` (argparse would exit)."""
    args, unknown = PARSER.parse_known_args(argv)
    if unknown:
        print(f"usage: python -m agent check [--running] [--help] (got {unknown[0]!r})", file=out)
        return None
    return args


async def run_checks(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO | None = None,
    running: bool = False,
) -> list[CheckLine]:
    """Every check that applies to ``settings``, in the order an operator fixes them."""
    lines: list[CheckLine] = []

    def emit(line: CheckLine) -> None:
        lines.append(line)
        if out is not None:
            print(line.render(), file=out, flush=True)

    emit(check_configuration(settings))
    async with httpx.AsyncClient(
        timeout=TIMEOUT,
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        verify=tls_context(),
    ) as http:
        checks: list[Callable[[], Awaitable[list[CheckLine]]]] = [
            lambda: check_space(settings, http),
            lambda: check_lookup(settings, http),
            lambda: _one(check_signing_key(settings)),
            lambda: check_public_url(settings, http, running=running),
            lambda: check_redis(settings),
            lambda: check_directory(settings, http),
            lambda: check_outcome_receiver(settings, http),
        ]
        for check in checks:
            for line in await check():
                emit(line)
    return lines


async def _one(line: CheckLine | None) -> list[CheckLine]:
    return [line] if line is not None else []
