"""The outcome webhook as Standard Webhooks, judged by the PyPI ``standardwebhooks`` library.

Real deliveries (a call played to a verified end, the outbox delivering to a receiver on
loopback) are verified with ``standardwebhooks.Webhook``, a library nobody here wrote: a
good delivery verifies, and the same delivery with its body, its id or its timestamp
changed does not. A delivery signed ten minutes ago (the sender's own clock set back, as a
captured request replayed later would be) is refused as too old. Both secret forms work:
``whsec_<base64>`` and an earlier plain secret, which the library takes as
``whsec_`` + base64 of it.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from agent.config.settings import SettingsError
from agent.outcomes.webhook import AttemptResult, WebhookSender
from testkit.servers import ServerThread
from tests.agent.test_outcome_webhook import FAST_RETRIES, Receiver, eventually
from tests.support.calls import new_call
from tests.support.defaults import CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-0123").decode()
PLAIN = "plain-secret-0123456789abcdef"


def verified(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def one_real_delivery(secret, fake_signalwire, make_settings, serve_agent) -> dict:
    """A call played to a verified end; the one delivery the receiver got."""
    fake, sw_url = fake_signalwire
    receiver = Receiver(readme_ok=lambda *args: True)
    with ServerThread(receiver.app()) as hook_server:
        settings = make_settings(
            signalwire_url=sw_url,
            config={"webhook": FAST_RETRIES},
            MFA_OUTCOME_WEBHOOK_URL=hook_server.url + "/hook",
            MFA_OUTCOME_WEBHOOK_SECRET=secret,
        )
        url = serve_agent(settings)
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url)
            await call.invoke("send_mfa")
            await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        await eventually(lambda: receiver.count() >= 1)
    return receiver.received[0]


@pytest.mark.parametrize(
    ("configured", "library_secret"),
    [
        (WHSEC, WHSEC),
        # An earlier plain secret: its key is its bytes, "whsec_" + base64(secret) to a library.
        (PLAIN, "whsec_" + base64.b64encode(PLAIN.encode()).decode()),
    ],
)
async def test_a_real_delivery_verifies_with_the_library_and_a_changed_one_does_not(
    configured, library_secret, fake_signalwire, make_settings, serve_agent
):
    got = await one_real_delivery(configured, fake_signalwire, make_settings, serve_agent)
    body, headers = got["body"], got["headers"]
    assert Webhook(library_secret).verify(body, headers)["outcome"] == "verified"
    assert headers["webhook-id"] == headers["x-mfa-delivery"]

    changed = body.replace(b'"verified"', b'"exhausted"')
    assert changed != body and not verified(library_secret, changed, headers)
    # The id is signed: a receiver deduplicating on it cannot be handed another one.
    assert not verified(library_secret, body, {**headers, "webhook-id": "msg_other"})
    later = str(int(headers["webhook-timestamp"]) + 1)
    assert not verified(library_secret, body, {**headers, "webhook-timestamp": later})
    assert not verified("whsec_" + base64.b64encode(b"x" * 32).decode(), body, headers)


async def test_a_delivery_signed_ten_minutes_ago_is_refused_as_too_old():
    receiver = Receiver(readme_ok=lambda *args: True)
    with ServerThread(receiver.app()) as hook_server:
        async with httpx.AsyncClient(timeout=5) as http:
            for offset in (0, -600):
                sender = WebhookSender(
                    url=hook_server.url + "/hook",
                    secret=WHSEC,
                    http=http,
                    clock=lambda offset=offset: time.time() + offset,
                )
                body = json.dumps({"outcome": "verified", "at": time.time()}).encode()
                attempt = await sender.attempt(f"delivery-{-offset}", body)
                assert attempt.result is AttemptResult.DELIVERED
    fresh, old = receiver.received
    assert verified(WHSEC, fresh["body"], fresh["headers"])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(WHSEC).verify(old["body"], old["headers"])


@pytest.mark.parametrize(
    ("secret", "named"),
    [
        ("whsec_not*base64!", "base64"),
        ("whsec_" + base64.b64encode(b"too-short").decode(), "24"),
        ("short", "16"),
    ],
)
def test_a_secret_that_cannot_sign_stops_start_up_naming_it(make_settings, secret, named):
    with pytest.raises(SettingsError, match=f"MFA_OUTCOME_WEBHOOK_SECRET.*{named}"):
        make_settings(
            MFA_OUTCOME_WEBHOOK_URL="https://hooks.example.com/mfa",
            MFA_OUTCOME_WEBHOOK_SECRET=secret,
        )
