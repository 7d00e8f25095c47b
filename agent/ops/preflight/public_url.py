"""The public URL: this agent answers there, with this configuration's credentials, over
TLS the operator's clients trust."""

from __future__ import annotations

import json
import os
import socket
import ssl
import uuid
from urllib.parse import urlsplit

import httpx

from agent.config.settings import Settings
from agent.ops.preflight.lines import FAIL, OK, WARN, CheckLine, bad_status, unreachable


async def check_public_url(
    settings: Settings, http: httpx.AsyncClient, *, running: bool = False
) -> list[CheckLine]:
    """Whatever answers at SWML_PROXY_URL_BASE is this agent with this configuration.

    Nothing answering there is only a warning before the agent starts; once it runs
    (``running``: ``check --running``, or this agent answering ``/health`` on its own
    HOST:PORT) it is a failure: SignalWire would find nothing either."""
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
        if is_certificate_problem(exc):
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
        if _caused_by(exc, ssl.SSLError):
            return [tls_failure(base, exc)]
        local = await local_agent(settings, http)
        if running or local:
            started = f"the agent answers on {local}" if local else "the agent is started"
            return [
                CheckLine(
                    FAIL,
                    "public URL",
                    f"nothing answers at {base} ({type(exc).__name__}), and {started}",
                    "start the tunnel or reverse proxy in front of the agent, or set "
                    "SWML_PROXY_URL_BASE to the address it publishes (the same on every "
                    "replica)",
                )
            ]
        return [
            CheckLine(
                WARN,
                "public URL",
                f"nothing answers at {base} yet ({type(exc).__name__}): start the agent (and "
                "the tunnel or proxy), then run check again (check --running once it runs)",
            )
        ]
    if health.status_code >= 500:
        # The agent's /health is always 200: a 5xx there is a proxy with no agent behind it.
        return [
            CheckLine(
                FAIL,
                "public URL",
                f"{base}/health answered HTTP {health.status_code}: the proxy or tunnel there "
                "answers, but cannot reach the agent behind it",
                f"start the agent, or point the proxy's upstream at the agent's HOST:PORT "
                f"({_listening(settings)})",
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
        from agent.ops.platform import signalwire_signature

        key = settings.signing_key.get_secret_value()
        headers.update(signalwire_signature(key, f"{base}/", body))
    try:
        swml = await http.post(f"{base}/", content=body, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        return [unreachable("public URL", urlsplit(base).netloc, exc, "try again")]
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
        return [bad_status("public URL", urlsplit(base).netloc, swml.status_code)]
    return [CheckLine(OK, "public URL", f"{base} answers as this agent, with this configuration")]


def tls_failure(base: str, exc: Exception) -> CheckLine:
    """A TLS handshake that fails for another reason than trust: an alert from the server
    (no certificate for that name), or plain HTTP where https was written."""
    reason = next(
        (
            str(getattr(seen, "reason", "") or "")
            for seen in _chain(exc)
            if isinstance(seen, ssl.SSLError) and getattr(seen, "reason", None)
        ),
        "",
    )
    plain = reason == "WRONG_VERSION_NUMBER" or "record layer failure" in str(exc).lower()
    fix = (
        "the server there speaks plain HTTP: put a TLS proxy in front of it (SignalWire "
        "needs https), or write http:// in SWML_PROXY_URL_BASE for a test on this machine"
        if plain
        else "the server there has no certificate for that name: give the proxy a site "
        f"(and a certificate) for {urlsplit(base).hostname}, or set SWML_PROXY_URL_BASE to "
        "the name it serves"
    )
    detail = f"the TLS handshake with {urlsplit(base).netloc} failed ({reason or 'TLS error'})"
    return CheckLine(FAIL, "public URL", detail, fix)


async def local_agent(settings: Settings, http: httpx.AsyncClient) -> str | None:
    """``host:port`` when this agent answers ``/health`` on its own HOST:PORT here."""
    where = _listening(settings)
    try:
        health = await http.get(f"http://{where}/health", timeout=2)
        name = health.json().get("agent") if health.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return where if name == settings.file.agent_name else None


def _listening(settings: Settings) -> str:
    """Where the agent listens, as an address to reach it at from this machine."""
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(settings.host)
    if host is None:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{host}:{settings.port}"


def tls_context() -> ssl.SSLContext:
    """The system's CAs, plus ``SSL_CERT_FILE`` when set (a certificate you manage): the
    client ignores the environment otherwise (``trust_env=False``: no proxies)."""
    context = ssl.create_default_context()
    extra = os.environ.get("SSL_CERT_FILE")
    if extra and os.path.isfile(extra):
        context.load_verify_locations(cafile=extra)
    return context


def _chain(exc: BaseException) -> list[BaseException]:
    """The chain httpx raises from (httpcore's error, then the socket's or ssl's own)."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in found:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(seen, kind) for seen in _chain(exc))


def is_certificate_problem(exc: Exception) -> bool:
    return _caused_by(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)
