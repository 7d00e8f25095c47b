"""What every request passes before the SDK sees it: credentials, then a body limit.

The SDK checks a webhook's signature by reading the whole body first, before
basic auth and before any size limit, so with ``SIGNALWIRE_SIGNING_KEY`` set an
unauthenticated chunked POST of any size is buffered in memory (four 300 MB
bodies took the process to 3 GB). Authenticated chunked bodies also passed the
1 MB limit until fully read. ``Ingress`` is a plain ASGI middleware that runs
before the routes and their dependencies, in this order, without reading a byte
of the body:

1. headers that name the public host (``X-Forwarded-*``, ``Forwarded``,
   ``X-Original-Host``, ``X-Real-IP``) are dropped unless the peer is a proxy the
   operator named in ``MFA_TRUSTED_PROXIES``: the SDK builds the webhook URLs
   (credentials included) from them and keeps what it saw on the agent for
   later renders. From a trusted proxy the ``X-Forwarded-*`` headers pass, but
   ``X-Forwarded-Host`` and ``X-Forwarded-Proto`` only when well-formed;
2. basic auth from the ``Authorization`` header, compared in constant time
   (``/health`` and ``/ready`` are open, as the contract says); a failure gets
   the SDK's own 401. This is the ONE place credentials are compared: the request
   goes on with the name of the ``Principal`` it proved to be in its scope
   (``authenticated_as``), and the SDK's own checks and our routes read that
   verdict (``sdk_surgery.GuardedAgentBase._check_basic_auth``). The dashboard's
   routes (``Dashboard.paths``) admit the dashboard's pair and only it: the
   platform's pair sits in every URL the SWML names, so it opens none of them; with
   no dashboard pair they stay closed;
3. a ``Content-Length`` above ``MAX_BODY`` gets a 413 at once; otherwise the body
   is counted as it arrives and the 413 goes out as soon as the count passes the
   limit. The app then sees the client as gone and whatever it sends is dropped.
   The connection stays open: uvicorn discards the rest of the body as it comes
   (no memory held), so the client can read the answer instead of a reset, and
   ``agent.http.serving`` closes it within its header deadline.

Only then do the SDK's signature check and our request guard read the body.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skills.mfa.log_throttle import RateLimitedLog

if TYPE_CHECKING:
    from signalwire import AgentBase

log = logging.getLogger("mfa.ingress")
log.addFilter(RateLimitedLog(60, suffix=False))

OPEN_PATHS = frozenset({"/health", "/ready"})

# A SWAIG request holds the call's data, not its history: 1 MB is ample. This is the one
# place the limit lives (the SDK's own read and the request guard leave it to us).
MAX_BODY = 1024 * 1024
TOO_LARGE = "request body too large"

# Where ``Ingress`` records who a request authenticated as (``authenticated_as``).
PRINCIPAL_KEY = "mfa.principal"

# Headers through which a client can claim a public host or address.
_PROXY_HEADERS = frozenset({b"forwarded", b"x-original-host", b"x-real-ip"})
_VALID_HOST = re.compile(rb"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_VALID_PROTO = frozenset({b"http", b"https"})

_UNAUTHORIZED = (
    401,
    [(b"www-authenticate", b"Basic")],
    json.dumps({"error": "Unauthorized"}).encode(),
)
_TOO_LARGE = (413, [], json.dumps({"error": TOO_LARGE}).encode())


class TrustedProxyError(ValueError):
    """``MFA_TRUSTED_PROXIES`` holds something that is not an IP address or network."""


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_trusted_proxies(value: str | None) -> Networks:
    """``"127.0.0.1, 10.0.0.0/24"`` -> networks; empty or unset -> none (trust no one)."""
    networks = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise TrustedProxyError(
                f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/24)"
            ) from None
    return tuple(networks)


def _is_trusted(client: tuple[str, int] | None, networks: Networks) -> bool:
    if not networks or not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(address in network for network in networks)


def clean_proxy_headers(
    headers: Iterable[tuple[bytes, bytes]], *, trusted: bool
) -> list[tuple[bytes, bytes]]:
    """Drop the headers that name a public host, except sane ones from a trusted proxy."""
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _PROXY_HEADERS:
            continue
        if lowered.startswith(b"x-forwarded-"):
            if not trusted:
                continue
            if lowered == b"x-forwarded-host" and not _VALID_HOST.match(value):
                continue
            if lowered == b"x-forwarded-proto" and value.lower() not in _VALID_PROTO:
                continue
        kept.append((name, value))
    return kept


def basic_auth_matches(
    headers: Iterable[tuple[bytes, bytes]], user: bytes, password: bytes
) -> bool:
    """The SDK's rule (``Basic`` scheme, base64 of ``user:password``), in constant time."""
    header = next((value for name, value in headers if name.lower() == b"authorization"), None)
    if header is None:
        return False
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != b"basic":
        return False
    try:
        decoded = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    if b":" not in decoded:
        return False
    given_user, _, given_password = decoded.partition(b":")
    return credentials_match(given_user, given_password, user, password)


def credentials_match(
    given_user: bytes, given_password: bytes, user: bytes, password: bytes
) -> bool:
    """The pair as configured, or as it appears percent-encoded in the SWML's URLs.

    The webhook URLs carry the credentials as RFC 3986 userinfo, percent-encoded
    (``agent.http.sdk_surgery``), so a password of any characters survives the URL. A client
    that builds the ``Authorization`` header from such a URL may decode the userinfo
    first (curl, httpx, browsers) or not: both forms of the same secret are accepted.
    Each form is compared in constant time, always both, so the time taken does not
    say which part was wrong.
    """
    user_ok = _same_secret(given_user, user)
    password_ok = _same_secret(given_password, password)
    return user_ok and password_ok


def _same_secret(given: bytes, expected: bytes) -> bool:
    as_given = hmac.compare_digest(given, expected)
    decoded = hmac.compare_digest(unquote_to_bytes(given), expected)
    return as_given or decoded


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The dashboard's routes and the one pair that opens them (``None``: closed)."""

    paths: frozenset[str]
    credentials: tuple[str, str] | None

    def covers(self, path: str) -> bool:
        return (path.rstrip("/") or "/") in self.paths


@dataclass(frozen=True, slots=True)
class Principal:
    """A pair of credentials, named, and the paths it opens (every path by default)."""

    name: str
    user: str
    password: str
    admits: Callable[[str], bool] = field(default=lambda path: True)


def authenticated_as(scope: Scope) -> str | None:
    """The ``Principal.name`` that ``Ingress`` let this request in as, or None."""
    name = scope.get(PRINCIPAL_KEY)
    return name if isinstance(name, str) else None


class _BodyTooLarge(Exception):
    pass


class Ingress:
    def __init__(
        self,
        app: ASGIApp,
        *,
        principals: Sequence[Principal],
        trusted_proxies: Networks = (),
        max_body: int = MAX_BODY,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.principals = tuple(principals)
        self.trusted_proxies = trusted_proxies
        self.max_body = max_body
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        trusted = _is_trusted(scope.get("client"), self.trusted_proxies)
        headers = clean_proxy_headers(scope["headers"], trusted=trusted)
        scope = {**scope, "headers": headers}

        if scope["path"] not in self.open_paths:
            principal = self._principal(headers, scope["path"])
            if principal is None:
                log.warning("ingress_unauthorized", extra={"path": scope["path"][:100]})
                await _answer(send, scope, *_UNAUTHORIZED)
                return
            scope[PRINCIPAL_KEY] = principal
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        length = next((v for n, v in headers if n.lower() == b"content-length"), b"")
        if length.isdigit() and int(length) > self.max_body:
            log.warning("ingress_body_too_large", extra={"path": scope["path"][:100]})
            await _answer(send, scope, *_TOO_LARGE)
            return
        await self._limited(scope, receive, send)

    def _principal(self, headers: list[tuple[bytes, bytes]], path: str) -> str | None:
        """The first principal that admits ``path`` and whose credentials match."""
        for principal in self.principals:
            if principal.admits(path) and basic_auth_matches(
                headers, principal.user.encode(), principal.password.encode()
            ):
                return principal.name
        return None

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        response_started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # our 413 went out; what the app says after it is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            # The app may fail in any way once its body read was cut short
            # (ClientDisconnect, the SDK's own handlers): that is our doing, not a fault.
            if not refused:
                raise
        if refused:
            log.warning("ingress_body_too_large", extra={"path": scope["path"][:100]})
            if not response_started:
                await _answer(send, scope, *_TOO_LARGE)


async def _answer(
    send: Send, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


PLATFORM = "platform"
DASHBOARD = "dashboard"


def install_ingress(
    agent: AgentBase,
    *,
    trusted_proxies: Networks | None = None,
    dashboard: Dashboard | None = None,
) -> None:
    """Put ``Ingress`` in front of the agent's routes; call after ``replace_sdk_middleware``.

    It goes just inside the security headers (its 401 and 413 carry them too) and
    outside everything that could read a body. ``trusted_proxies``: the
    peers whose forwarded headers count (``MFA_TRUSTED_PROXIES``); none by default.
    The platform's pair (the agent's basic auth) is the ``PLATFORM`` principal, for
    every path but the dashboard's; ``dashboard``: its routes and the pair that opens
    them (``MFA_DASHBOARD_*``), the ``DASHBOARD`` principal.
    """

    from starlette.middleware import Middleware

    if trusted_proxies is None:
        trusted_proxies = ()
    user, password = agent.get_basic_auth_credentials()  # type: ignore[misc]
    app = agent.get_app()
    app.user_middleware.append(
        Middleware(
            Ingress,  # type: ignore[arg-type]
            principals=principals_for(user, password, dashboard),
            trusted_proxies=trusted_proxies,
        )
    )


def principals_for(user: str, password: str, dashboard: Dashboard | None) -> tuple[Principal, ...]:
    """The platform's pair for everything but the dashboard; the dashboard's for it alone."""
    board = dashboard or Dashboard(frozenset(), None)
    platform = Principal(PLATFORM, user, password, admits=lambda path: not board.covers(path))
    if board.credentials is None:
        return (platform,)
    board_user, board_password = board.credentials
    return (platform, Principal(DASHBOARD, board_user, board_password, admits=board.covers))
