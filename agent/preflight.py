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
- **signing key**: set wherever it is required (a real space).
- **public URL**: ``SWML_PROXY_URL_BASE/health`` names this agent and ``POST /`` there
  takes this configuration's credentials; nothing answering is a warning, since ``check``
  may run before the agent starts, but a name that does not resolve is a failure.
- **redis**: a write, a read and a delete of a key that expires on its own.
- **directory**: a signed lookup of an account no one has (a 404 is the right answer).
- **outcome receiver**: a signed test delivery, ``{"outcome": "test"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from agent.settings import ProviderName, Settings, SettingsError
from skills.mfa.providers.signalwire import SPACE_FORMS
from skills.mfa.signing import signed_headers

OK, WARN, FAIL = "ok", "warn", "FAIL"
TIMEOUT = httpx.Timeout(5.0, connect=3.0)
MFA_SCOPE_HINT = (
    "the API token needs the Management scope for SignalWire's MFA API (its reference lists "
    "it on /mfa/sms and /mfa/{id}/verify): edit the token's scopes in the dashboard "
    "(API > Tokens) or create one with it"
)
UNKNOWN_ACCOUNT = "preflight-check-no-such-account"


@dataclass(frozen=True)
class CheckLine:
    status: str
    name: str
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status:<5} {self.name}: {self.detail}"
        return f"{line}. Fix: {self.fix}" if self.fix else line


def main(
    argv: list[str],
    *,
    load_settings: Callable[[], Settings],
    out: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run every check for the environment's configuration; 0 only when none failed."""
    if argv:
        print(f"usage: python -m agent check (no options; got {argv[0]!r})", file=out)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(CheckLine(FAIL, "configuration", str(exc)).render(), file=out, flush=True)
        return 1
    lines = asyncio.run(run_checks(settings, transport=transport, out=out))
    failed = sum(1 for line in lines if line.status == FAIL)
    warned = sum(1 for line in lines if line.status == WARN)
    summary = f"{len(lines)} checks: {failed} failed, {warned} warning{'' if warned == 1 else 's'}"
    print(summary if failed else f"{summary}; ready for a call", file=out, flush=True)
    return 1 if failed else 0


async def run_checks(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO | None = None,
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
        verify=_tls_context(),
    ) as http:
        checks: list[Callable[[], Awaitable[list[CheckLine]]]] = [
            lambda: check_space(settings, http),
            lambda: _one(check_signing_key(settings)),
            lambda: check_public_url(settings, http),
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


def check_configuration(settings: Settings) -> CheckLine:
    from agent.app import build_agent  # the composition root: only what the agent needs

    try:
        build_agent(settings)
    except SettingsError as exc:
        return CheckLine(FAIL, "configuration", str(exc))
    if settings.provider is ProviderName.SANDBOX:
        why = (
            " beside an account (MFA_SANDBOX_WITH_ACCOUNT=1)"
            if settings.sandbox_with_account
            else ""
        )
        return CheckLine(
            OK, "configuration", f"valid; sandbox provider{why}: codes are not texted to phones"
        )
    assert settings.signalwire is not None
    host = urlsplit(settings.signalwire.base_url).netloc
    return CheckLine(OK, "configuration", f"valid; SignalWire provider on {host}")


async def check_space(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    """The space answers, takes the credentials, and owns MFA_FROM_NUMBER."""
    account = settings.signalwire
    if account is None:
        return []
    base = account.base_url.rstrip("/")
    host = urlsplit(base).netloc
    auth = (account.project_id, account.api_token.get_secret_value())
    number = account.from_number
    try:
        listed = await http.get(
            f"{base}/api/relay/rest/phone_numbers",
            params={"filter_number": number, "page_size": 20},
            auth=auth,
        )
    except httpx.HTTPError as exc:
        return [_unreachable("space", host, exc, f"is SIGNALWIRE_SPACE {SPACE_FORMS}?")]
    if listed.status_code == 200:
        space = CheckLine(OK, "space", f"{host} answers and accepts the project id and API token")
        return [space, await _mfa_scope(http, base, host, auth), _number_owned(listed, number)]
    if listed.status_code in (401, 403):
        scope = await _mfa_scope(http, base, host, auth)
        if scope.status == FAIL:
            return [scope]
        unknown = CheckLine(
            WARN,
            "from number",
            f"cannot check that {number} is this project's: the token may not read phone "
            f"numbers (HTTP {listed.status_code}; that needs the Numbers scope, which "
            "texting does not)",
        )
        return [scope, unknown]
    return [_bad_status("space", host, listed.status_code)]


async def _mfa_scope(
    http: httpx.AsyncClient, base: str, host: str, auth: tuple[str, str]
) -> CheckLine:
    """A verify of a random, unknown request id: 404 when the token reaches the MFA API."""
    try:
        answer = await http.post(
            f"{base}/api/relay/rest/mfa/{uuid.uuid4()}/verify",
            json={"token": "000000"},
            auth=auth,
        )
    except httpx.HTTPError as exc:
        return _unreachable("MFA API", host, exc, "try again; check SIGNALWIRE_SPACE")
    if answer.status_code in (404, 422):
        return CheckLine(OK, "MFA API", "the token is accepted by the MFA API (scope Management)")
    if answer.status_code in (401, 403):
        return CheckLine(
            FAIL,
            "MFA API",
            f"{host} refused the project id and API token (HTTP {answer.status_code})",
            "check SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (Dashboard > API); "
            + MFA_SCOPE_HINT,
        )
    return _bad_status("MFA API", host, answer.status_code)


def _number_owned(listed: httpx.Response, number: str) -> CheckLine:
    try:
        data = listed.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        return CheckLine(WARN, "from number", "the space's number list could not be read")
    numbers = {item.get("number") for item in data if isinstance(item, dict)}
    if number in numbers:
        return CheckLine(OK, "from number", f"{number} is a number of this project")
    return CheckLine(
        FAIL,
        "from number",
        f"{number} is not a number of this project",
        "set MFA_FROM_NUMBER to a number you bought or ported into this project (Dashboard > "
        "Phone Numbers): a custom text needs your own number",
    )


def check_signing_key(settings: Settings) -> CheckLine | None:
    if settings.signing_key is not None:
        return CheckLine(OK, "signing key", "set: unsigned webhooks are refused")
    if settings.signing_key_optional:
        return CheckLine(
            WARN,
            "signing key",
            "not set: allowed only because the space is on this machine; a real space "
            "requires SIGNALWIRE_SIGNING_KEY",
        )
    if settings.provider is ProviderName.SANDBOX:
        return CheckLine(WARN, "signing key", "not set: unsigned webhooks are accepted (sandbox)")
    return None  # an account without the key does not load: the configuration line said so


async def check_public_url(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    """Whatever answers at SWML_PROXY_URL_BASE is this agent with this configuration."""
    base = settings.proxy_url_base
    if not base:
        if settings.trusted_proxies:
            return [
                CheckLine(
                    WARN,
                    "public URL",
                    "SWML_PROXY_URL_BASE is not set: the host comes from the proxy named in "
                    "MFA_TRUSTED_PROXIES, so it cannot be checked from here",
                )
            ]
        return []
    try:
        health = await http.get(f"{base}/health")
    except httpx.HTTPError as exc:
        if _is_certificate_problem(exc):
            return [
                CheckLine(
                    FAIL,
                    "public URL",
                    f"{base} answers, but its TLS certificate is not trusted here",
                    "SignalWire needs a certificate a public CA issued; for a certificate you "
                    "manage, point SSL_CERT_FILE at its CA (PEM) when you run check",
                )
            ]
        if _caused_by(exc, socket.gaierror):
            # Not "not started yet": SignalWire cannot find the host either.
            host = urlsplit(base).hostname
            return [
                CheckLine(
                    FAIL,
                    "public URL",
                    f"the name {host} does not resolve here (DNS)",
                    "point SWML_PROXY_URL_BASE at the name your DNS, tunnel or proxy "
                    "publishes, or create its DNS record",
                )
            ]
        return [
            CheckLine(
                WARN,
                "public URL",
                f"nothing answers at {base} yet ({type(exc).__name__}): start the agent (and "
                "the tunnel or proxy), then run check again",
            )
        ]
    try:
        agent_name = health.json().get("agent") if health.status_code == 200 else None
    except (ValueError, AttributeError):
        agent_name = None
    if agent_name != settings.file.agent_name:
        return [
            CheckLine(
                FAIL,
                "public URL",
                f"{base}/health does not answer as agent {settings.file.agent_name!r} "
                f"(HTTP {health.status_code})",
                "point SWML_PROXY_URL_BASE at this agent (the proxy or tunnel forwarding to "
                "its HOST:PORT)",
            )
        ]
    auth = (settings.basic_auth_user, settings.basic_auth_password.get_secret_value())
    body = json.dumps({"call": {"call_id": f"preflight-{uuid.uuid4()}"}, "vars": {}}).encode()
    headers = {"content-type": "application/json"}
    if settings.signing_key is not None:
        from agent.platform import signalwire_signature

        key = settings.signing_key.get_secret_value()
        headers.update(signalwire_signature(key, f"{base}/", body))
    try:
        swml = await http.post(f"{base}/", content=body, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        return [_unreachable("public URL", urlsplit(base).netloc, exc, "try again")]
    if swml.status_code in (401, 403):
        return [
            CheckLine(
                FAIL,
                "public URL",
                f"the agent at {base} refuses this configuration's credentials "
                f"(HTTP {swml.status_code}): it runs with another configuration",
                "give every replica the same SWML_BASIC_AUTH_USER/PASSWORD, "
                "SIGNALWIRE_SIGNING_KEY and SWML_PROXY_URL_BASE as this shell (a signature "
                "covers the URL: check through the public URL the agents were started with)",
            )
        ]
    if swml.status_code != 200:
        return [_bad_status("public URL", urlsplit(base).netloc, swml.status_code)]
    return [CheckLine(OK, "public URL", f"{base} answers as this agent, with this configuration")]


async def check_redis(settings: Settings) -> list[CheckLine]:
    if not settings.redis_url:
        return []
    from skills.mfa.redis_state import REDIS_ERRORS, connect

    parts = urlsplit(settings.redis_url)
    where = parts.hostname or parts.path or "redis"
    if parts.port:
        where += f":{parts.port}"
    redis = connect(settings.redis_url, timeout=3.0)
    key = f"mfa:preflight:{uuid.uuid4()}"
    try:
        await redis.set(key, b"1", px=30_000)
        read = await redis.get(key)
        await redis.delete(key)
    except REDIS_ERRORS as exc:
        return [
            CheckLine(
                FAIL,
                "redis",
                f"{where} did not take a write and a read ({type(exc).__name__})",
                "start redis-server there, or fix REDIS_URL (redis://host:6379/0)",
            )
        ]
    finally:
        await redis.aclose()
    if read != b"1":
        return [CheckLine(FAIL, "redis", f"{where} did not give back what was written")]
    return [CheckLine(OK, "redis", f"{where} takes a write and a read")]


async def check_directory(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    if settings.file.directory.path:
        return [CheckLine(OK, "directory", f"file {settings.file.directory.path} loads")]
    if not (settings.directory_url and settings.directory_secret):
        return []
    host = urlsplit(settings.directory_url).netloc
    body = json.dumps({"account_number": UNKNOWN_ACCOUNT}, separators=(",", ":")).encode()
    headers = signed_headers(
        settings.directory_secret.get_secret_value(),
        body,
        time.time(),
        message_id=f"preflight-{uuid.uuid4()}",
    )
    try:
        answer = await http.post(settings.directory_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return [_unreachable("directory", host, exc, "start it, or fix MFA_DIRECTORY_URL")]
    if answer.status_code in (200, 404):
        return [
            CheckLine(
                OK, "directory", f"{host} answers a signed lookup (HTTP {answer.status_code})"
            )
        ]
    if answer.status_code in (401, 403):
        return [
            CheckLine(
                FAIL,
                "directory",
                f"{host} refused the signed lookup (HTTP {answer.status_code})",
                "MFA_DIRECTORY_SECRET must be the secret the directory server checks",
            )
        ]
    return [_bad_status("directory", host, answer.status_code)]


async def check_outcome_receiver(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    if not (settings.outcome_webhook_url and settings.outcome_webhook_secret):
        return []
    host = urlsplit(settings.outcome_webhook_url).netloc
    payload = {
        "outcome": "test",
        "call_id": f"preflight-{uuid.uuid4()}",
        "agent_id": settings.file.agent_name,
        "at": time.time(),
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    secret = settings.outcome_webhook_secret.get_secret_value()
    delivery = str(uuid.uuid4())
    headers = {
        **signed_headers(secret, body, time.time(), message_id=delivery),
        "X-MFA-Delivery": delivery,
    }
    try:
        answer = await http.post(settings.outcome_webhook_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return [
            _unreachable("outcome receiver", host, exc, "start it, or fix MFA_OUTCOME_WEBHOOK_URL")
        ]
    if 200 <= answer.status_code < 300:
        return [
            CheckLine(
                OK,
                "outcome receiver",
                f"{host} accepted a signed test delivery (HTTP {answer.status_code})",
            )
        ]
    if answer.status_code in (401, 403):
        return [
            CheckLine(
                FAIL,
                "outcome receiver",
                f"{host} refused the signed test delivery (HTTP {answer.status_code})",
                "MFA_OUTCOME_WEBHOOK_SECRET must be the secret the receiver checks",
            )
        ]
    return [_bad_status("outcome receiver", host, answer.status_code)]


def _tls_context() -> ssl.SSLContext:
    """The system's CAs, plus ``SSL_CERT_FILE`` when set (a certificate you manage): the
    client ignores the environment otherwise (``trust_env=False``: no proxies)."""
    context = ssl.create_default_context()
    extra = os.environ.get("SSL_CERT_FILE")
    if extra and os.path.isfile(extra):
        context.load_verify_locations(cafile=extra)
    return context


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is in the chain httpx raises from (httpcore's error, then the
    socket's or ssl's own)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_certificate_problem(exc: Exception) -> bool:
    return _caused_by(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _unreachable(name: str, host: str, exc: Exception, fix: str) -> CheckLine:
    return CheckLine(FAIL, name, f"cannot reach {host} ({type(exc).__name__})", fix)


def _bad_status(name: str, host: str, status: int) -> CheckLine:
    return CheckLine(FAIL, name, f"{host} answered HTTP {status}", "look at that service's own log")
