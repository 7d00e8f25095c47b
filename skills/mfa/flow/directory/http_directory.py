"""The business's own directory server: ``MFA_DIRECTORY_URL`` + ``MFA_DIRECTORY_SECRET``.

One signed POST per lookup, over the process's one shared ``httpx.AsyncClient``::

    POST {MFA_DIRECTORY_URL}
    Content-Type: application/json
    webhook-id / webhook-timestamp / webhook-signature   (Standard Webhooks, as the outcome
                                                          webhook: skills/mfa/delivery/signing.py)
    X-MFA-Timestamp / X-MFA-Signature                    (the earlier pair, for one release)

    {"account_number": "12345678"}

Answers: 200 ``{"phone_number": "+15551230199"}`` (any format ``phonenumbers`` reads),
404 for an unknown account. The same rules as the SignalWire client: an overall deadline
(the caller is listening to silence), one retry only when the request provably never left,
and every failure a domain error from ``base.py``, never an exception text or a status
the caller would hear. The answer is read with a 16 KB limit while it streams
(``http_pool.read_bounded``). The secret, the account and the number are never logged.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import httpx

from skills.mfa.delivery.http_pool import BoundedAnswer, NoAnswer, post_retrying_unsent
from skills.mfa.delivery.signing import signed_headers
from skills.mfa.flow.directory.base import DirectoryRejected, DirectoryUnavailable
from skills.mfa.phone import to_e164

_MAX_BODY_BYTES = 16 * 1024
_CONNECT_RETRIES = 1


class HttpDirectory:
    """``Directory`` answered by the business's server."""

    name = "http"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        url: str,
        secret: str,
        default_region: str | None,
        deadline_seconds: float = 8.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the directory needs a secret")
        self._http = http
        self._url = url
        self._secret = secret.encode()
        self._region = default_region
        self._deadline = deadline_seconds
        self._clock = clock

    def __repr__(self) -> str:
        return "HttpDirectory(<url and secret hidden>)"

    async def lookup(self, account: str) -> str | None:
        body = json.dumps({"account_number": account}, separators=(",", ":")).encode()
        # A fresh webhook-id per lookup: the business may log or deduplicate on it.
        headers = signed_headers(self._secret, body, self._clock(), message_id=str(uuid.uuid4()))
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._post_retrying_unsent(body, headers)
        except TimeoutError:
            raise DirectoryUnavailable("timeout") from None
        status = response.status_code
        if status == 404:
            return None
        if status == 200:
            return self._number_in(response)
        if status >= 500 or status in (408, 429):
            raise DirectoryUnavailable("server_error", status_code=status)
        raise DirectoryRejected(status)

    async def _post_retrying_unsent(self, body: bytes, headers: dict[str, str]) -> BoundedAnswer:
        try:
            # The answer is read while it streams, at most _MAX_BODY_BYTES: a server that
            # answers with more is down as far as we are concerned (the breaker counts it).
            return await post_retrying_unsent(
                self._http,
                self._url,
                max_body=_MAX_BODY_BYTES,
                retries=_CONNECT_RETRIES,
                content=body,
                headers=headers,
            )
        except NoAnswer as exc:
            raise DirectoryUnavailable(exc.kind, status_code=exc.status_code) from None

    def _number_in(self, response: BoundedAnswer) -> str:
        try:
            payload = json.loads(response.content)
        except (ValueError, RecursionError):
            raise DirectoryUnavailable("bad_body", status_code=200) from None
        raw = payload.get("phone_number") if isinstance(payload, dict) else None
        number = to_e164(raw, self._region)
        if number is None:
            raise DirectoryUnavailable("bad_body", status_code=200)
        return number
