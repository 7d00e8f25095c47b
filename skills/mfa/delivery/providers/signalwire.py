"""SignalWire's MFA REST API over the process's one shared ``httpx.AsyncClient``.

The SDK ships a synchronous client on ``requests`` with no timeout: it would
block the event loop and could hang a caller forever. This one is async, has an
overall deadline per call (the caller is listening to silence), and turns every
failure into a domain error from ``base.py``. It retries only when the request
provably never left (the connection could not be opened), because a send that
reached SignalWire may have texted the caller and a verify may have used an
attempt. (A text answered with a 5xx is sent once more by the caller of this
class, ``flow/upstream.py``, which decides that a code it can verify is worth a
second text.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from skills.mfa.delivery.http_pool import BoundedAnswer, NoAnswer, post_retrying_unsent
from skills.mfa.delivery.providers.base import (
    CodeNotFound,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)

log = logging.getLogger("mfa.signalwire")

_API_PREFIX = "/api/relay/rest/mfa"
_MAX_BODY_BYTES = 64 * 1024
_CONNECT_RETRIES = 1


class SignalWireProvider:
    """``CodeProvider`` backed by ``POST /mfa/sms`` or ``/mfa/call`` and
    ``POST /mfa/{id}/verify``."""

    name = "signalwire"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        project_id: str,
        api_token: str,
        from_number: str,
        deadline_seconds: float = 8.0,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + _API_PREFIX
        self._host = urlsplit(base_url).netloc
        self._auth = httpx.BasicAuth(project_id, api_token)
        self._from = from_number
        self._deadline = deadline_seconds

    async def send(self, request: SendRequest) -> SentCode:
        body = {
            "to": request.to,
            "from": self._from,
            "message": request.message,
            "token_length": request.token_length,
            "valid_for": request.valid_for,
            "max_attempts": request.max_attempts,
            "allow_alphas": False,
        }
        # The same body for both channels (signalwire/docs openapi.yaml: /mfa/sms and
        # /mfa/call both take MfaRequest).
        response = await self._post(f"/{request.channel}", body)
        if response.status_code != 200:
            raise _error_for_status(response.status_code, _error_reason(response))
        payload = _json_object(response)
        request_id = payload.get("id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
            raise ProviderUnavailable("bad_body", may_have_arrived=True, status_code=200)
        if payload.get("success") is False:
            raise ProviderUnavailable("not_queued", may_have_arrived=False, status_code=200)
        return SentCode(request_id=request_id)

    async def verify(self, request_id: str, code: str) -> VerifyOutcome:
        response = await self._post(f"/{_path_segment(request_id)}/verify", {"token": code})
        if response.status_code == 404:
            raise CodeNotFound("request expired, used, exhausted or unknown")
        if response.status_code != 200:
            raise _error_for_status(response.status_code, _error_reason(response))
        success = _json_object(response).get("success")
        if not isinstance(success, bool):
            raise ProviderUnavailable("bad_body", may_have_arrived=True, status_code=200)
        return VerifyOutcome(verified=success)

    async def aclose(self) -> None:
        """The shared client belongs to the process, which closes it at shutdown."""

    async def _post(self, path: str, body: dict[str, Any]) -> BoundedAnswer:
        try:
            async with asyncio.timeout(self._deadline):
                return await self._post_retrying_unsent(self._base + path, body)
        except TimeoutError:
            self._log_unreachable("timeout")
            raise ProviderUnavailable("timeout", may_have_arrived=True) from None
        except ProviderUnavailable as exc:
            self._log_unreachable(exc.kind)
            raise

    def _log_unreachable(self, kind: str) -> None:
        """Name the host: ``SIGNALWIRE_SPACE=example`` that does not answer says where."""
        log.warning("signalwire_unreachable", extra={"host": self._host, "kind": kind})

    async def _post_retrying_unsent(self, url: str, body: dict[str, Any]) -> BoundedAnswer:
        try:
            # Read while it streams, at most _MAX_BODY_BYTES: past it the request is
            # abandoned and counts as an outage (ProviderUnavailable, which the breaker counts).
            return await post_retrying_unsent(
                self._http,
                url,
                max_body=_MAX_BODY_BYTES,
                retries=_CONNECT_RETRIES,
                json=body,
                auth=self._auth,
            )
        except NoAnswer as exc:
            raise ProviderUnavailable(
                exc.kind, may_have_arrived=exc.may_have_arrived, status_code=exc.status_code
            ) from None


def _path_segment(request_id: str) -> str:
    """The id goes into a URL path: refuse anything that could change the path."""
    if (
        not request_id
        or len(request_id) > 128
        or not all(ch.isalnum() or ch in "-_" for ch in request_id)
    ):
        raise CodeNotFound("request id is not a SignalWire id")
    return request_id


def _json_object(response: BoundedAnswer) -> dict[str, Any]:
    try:
        payload = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise ProviderUnavailable("bad_body", may_have_arrived=True, status_code=200) from None
    if not isinstance(payload, dict):
        raise ProviderUnavailable("bad_body", may_have_arrived=True, status_code=200)
    return payload


def _error_reason(response: BoundedAnswer) -> str:
    """A short, credential-free description of a 4xx/5xx for the logs."""
    try:
        payload = json.loads(response.content)
    except (ValueError, RecursionError):
        return ""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("title") or "")[:200]
        return str(payload.get("error") or "")[:200]
    return ""


def _error_for_status(status: int, reason: str) -> Exception:
    if status >= 500:
        return ProviderUnavailable("server_error", may_have_arrived=True, status_code=status)
    if status in (408, 429):
        return ProviderUnavailable("throttled", may_have_arrived=False, status_code=status)
    return ProviderRejected(status, reason)


SPACE_FORMS = (
    "your space's name or URL: example, example.signalwire.com or "
    "https://example.signalwire.com (http://127.0.0.1:PORT only for a test server on "
    "this machine)"
)
_SPACE_DOMAIN = ".signalwire.com"
_SPACE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_space_url(value: str) -> str:
    """The API base URL for ``SIGNALWIRE_SPACE``, from the forms people write.

    ``example`` (the name the dashboard shows), ``example.signalwire.com`` and
    ``https://example.signalwire.com`` with or without a trailing ``/`` all mean
    ``https://example.signalwire.com``. For a local fake only: ``http://`` or
    ``https://`` to a loopback address with a port. Anything else (a path, a query,
    credentials, another scheme or domain, spaces) raises ``ValueError`` naming the
    accepted forms: a space that does not answer is found at start-up, not by a caller.
    """
    text = value.strip()
    if text.endswith("/"):
        text = text[:-1]
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"must be {SPACE_FORMS}")
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"must be {SPACE_FORMS}") from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme not in ("http", "https")
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or not host
    ):
        raise ValueError(f"must be {SPACE_FORMS}")
    if is_loopback_host(host):
        if port is None:
            raise ValueError(f"must be {SPACE_FORMS}")
        return f"{parts.scheme}://{parts.netloc.lower()}"
    if parts.scheme == "http":
        raise ValueError(
            "http:// is only for a test server on this machine (127.0.0.1, ::1, localhost): "
            f"the API token would cross the network in clear; use {SPACE_FORMS}"
        )
    name = host[: -len(_SPACE_DOMAIN)] if host.endswith(_SPACE_DOMAIN) else host
    if port is not None or not _SPACE_NAME.match(name):
        raise ValueError(f"must be {SPACE_FORMS}")
    return f"https://{name}{_SPACE_DOMAIN}"


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP address (the only hosts a local fake may use)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
