"""The business's own servers: the account directory and the outcome receiver, each sent
one signed request."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import httpx

from agent.config.settings import Settings
from agent.ops.preflight.lines import FAIL, OK, CheckLine, bad_status, unreachable
from skills.mfa.delivery.signing import signed_headers

UNKNOWN_ACCOUNT = "preflight-check-no-such-account"


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
        return [unreachable("directory", host, exc, "start it, or fix MFA_DIRECTORY_URL")]
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
    return [bad_status("directory", host, answer.status_code)]


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
            unreachable("outcome receiver", host, exc, "start it, or fix MFA_OUTCOME_WEBHOOK_URL")
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
    return [bad_status("outcome receiver", host, answer.status_code)]
