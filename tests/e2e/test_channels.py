"""The right channel for the number: the line type looked up before a send, over HTTP.

The fake space answers SignalWire's phone-number lookup (``carrier.linetype`` per number,
``FakeSignalWire.line_types``; unlisted numbers are ``wireless``) and ``/mfa/call``, so the
whole path runs as on a real account, where the lookup is on by default:

- a landline on file that is not the caller's line gets a voice code, which verifies;
- the caller's own landline gets no text, a plain sentence, and ``handoff.on_failed``;
- a lookup that fails or hangs still texts;
- VoIP follows the operator's policy; each number is looked up once (cached), on Redis
  shared by replicas;
- every lookup and every code sent is in ``/metrics``, and the channel is in the outcome's
  history, webhook body and event.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.agent.test_outbox import metric
from tests.support.calls import new_call
from tests.support.defaults import AUTH, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CALLER = "+15557770001"
ON_FILE = "+12025550199"
ACCOUNT = "12345678"
CALLING = "I'll call you on the number on file ending in 0 1 9 9 and read you the code"


def directory(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    path = tmp_path / "accounts.csv"
    path.write_text(f"account_number,phone_number\n{ACCOUNT},{ON_FILE}\n")
    return {"directory": {"path": str(path), "neutral_answer_seconds": 0}, **extra}


@pytest.fixture
def served(fake_signalwire, make_settings, serve_agent):
    """``served(config)``: an agent on the fake space; returns (fake, url, events)."""

    def serve(config: dict[str, Any]) -> tuple[Any, str, list[dict[str, Any]]]:
        fake, sw_url = fake_signalwire
        agent = build_agent(make_settings(signalwire_url=sw_url, config=config))
        events: list[dict[str, Any]] = []
        agent.publisher.subscribe(lambda event: events.append(event.to_dict()))
        return fake, serve_agent(agent), events

    return serve


async def dashboard(url: str, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url + path, params=params, auth=DASHBOARD)


async def test_a_landline_on_file_gets_a_voice_code_that_verifies(served, tmp_path):
    fake, url, events = served(directory(tmp_path))
    fake.line_types[ON_FILE] = "landline"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa", account_number=ACCOUNT)
        assert CALLING in sent.response, sent.body
        (voice,) = fake.texts
        assert voice["channel"] == "call" and voice["to"] == ON_FILE
        # The words read before the code: the shipped English voice message.
        assert voice["body"].startswith("Hello, this is our company with the verification code")
        assert fake.requests[-1]["path"] == "/api/relay/rest/mfa/call"
        verified = await call.invoke("verify_mfa", token=voice["code"])
    assert "caller is verified" in verified.response, verified.body
    assert call.global_data["mfa_verified"] is True
    assert call.global_data["mfa_verified_account"] == ACCOUNT
    send_event, verify_event = events
    assert send_event["channel"] == "call"
    assert (send_event["line_type"], send_event["line_lookup"]) == ("landline", "looked_up")
    assert verify_event["outcome"] == "verified" and verify_event["channel"] == "call"
    (row,) = (await dashboard(url, "/outcomes", call_id=call.call_id)).json()["outcomes"]
    assert row["channel"] == "call" and row["outcome"] == "verified"
    metrics = (await dashboard(url, "/metrics")).text
    assert metric(metrics, "mfa_codes_sent_total", channel="call") == 1
    assert metric(metrics, "mfa_codes_sent_total", channel="sms") == 0
    assert (
        metric(metrics, "mfa_line_type_lookups_total", line_type="landline", result="looked_up")
        == 1
    )


async def test_the_callers_own_landline_gets_no_text_and_the_failed_handoff(served):
    fake, url, events = served({"handoff": {"on_failed": "hangup"}})
    fake.line_types[CALLER] = "landline"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa")
    assert "landline" in sent.response and "no code was sent" in sent.response
    assert fake.texts == []
    assert not any("/mfa/" in request["path"] for request in fake.requests)
    assert call.ending is not None and call.ending.kind == "hangup"
    assert events[-1]["outcome"] == "landline" and events[-1]["handoff"] == "hangup"


async def test_a_landline_on_file_that_is_the_callers_own_line_gets_no_voice_call(served, tmp_path):
    """A voice code to the line the caller is on would ring a busy line."""
    fake, url, events = served(directory(tmp_path))
    fake.line_types[ON_FILE] = "landline"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=ON_FILE)
        sent = await call.invoke("send_mfa", account_number=ACCOUNT)
    assert fake.texts == [] and not any("/mfa/" in r["path"] for r in fake.requests)
    # The account path answers a refused send as it answers an unknown account (neutral).
    assert sent.response.startswith("No code was sent for that account number.")
    assert events[-1]["line_type"] == "landline"


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_a_lookup_that_fails_or_hangs_still_texts(served, fault):
    fake, url, events = served({"channels": {"lookup_timeout_seconds": 0.5}})
    fake.lookup_fault = fault
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        started = time.monotonic()
        sent = await call.invoke("send_mfa")
        took = time.monotonic() - started
    assert "A code was texted" in sent.response, sent.body
    assert fake.texts[-1]["channel"] == "sms"
    assert took < 5  # bounded by the lookup's deadline, never the caller's silence
    assert (events[-1]["line_type"], events[-1]["line_lookup"]) == ("unknown", "failed")
    metrics = (await dashboard(url, "/metrics")).text
    assert metric(metrics, "mfa_line_type_lookups_total", line_type="unknown", result="failed") == 1
    assert metric(metrics, "mfa_codes_sent_total", channel="sms") == 1


@pytest.mark.parametrize(("rule", "texted"), [("allow", True), ("refuse", False)])
async def test_voip_follows_the_operators_policy(served, rule, texted):
    fake, url, events = served({"channels": {"voip": rule}})
    fake.line_types[CALLER] = "non-fixed VoIP"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa")
    assert bool(fake.texts) is texted
    if not texted:
        assert "that kind of phone line" in sent.response
        assert events[-1]["outcome"] == "line_type_refused"
    assert events[-1]["line_type"] == "voip"


async def test_each_number_is_looked_up_once_then_cached(served):
    fake, url, events = served({})
    async with httpx.AsyncClient(timeout=15) as http:
        for _ in range(2):  # two calls from the same phone
            call = await new_call(http, url, caller=CALLER)
            await call.invoke("send_mfa")
    assert fake.lookups == [CALLER]
    assert [e["line_lookup"] for e in events] == ["looked_up", "cached"]


async def test_replicas_share_the_lookups_cache_on_redis(
    fake_signalwire, make_settings, serve_agent, redis_url
):
    fake, sw_url = fake_signalwire
    urls = [
        serve_agent(build_agent(make_settings(signalwire_url=sw_url, REDIS_URL=redis_url)))
        for _ in range(2)
    ]
    async with httpx.AsyncClient(timeout=15) as http:
        for url in urls:
            call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=CALLER)
            await call.start()
            await call.invoke("send_mfa")
    assert fake.lookups == [CALLER]  # the second replica found it in Redis
    assert len(fake.texts) == 2
    # Kept channels.cache_days (30 by default), measured from below on Redis's own clock:
    # the key is the number's salted hash, worked out here without the product's helper.
    digest = hashlib.sha256(b"mfa-line-type:" + CALLER.encode()).hexdigest()[:32]
    redis = Redis.from_url(redis_url)
    try:
        pttl = await redis.pttl(f"mfa:linetype:{digest}")
    finally:
        await redis.aclose()
    thirty_days_ms = 30 * 86_400_000
    assert thirty_days_ms - 60_000 < pttl <= thirty_days_ms


async def test_the_sandbox_looks_nothing_up_unless_asked(make_settings, serve_agent):
    outbox: list[Any] = []
    url = serve_agent(build_agent(make_settings(), sandbox_deliver=outbox.append))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        await call.invoke("send_mfa")
    assert outbox and outbox[-1].channel == "sms"

    config = {"channels": {"lookup": True, "sandbox_line_types": {CALLER: "landline"}}}
    outbox.clear()
    url = serve_agent(build_agent(make_settings(config=config), sandbox_deliver=outbox.append))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa")
    assert outbox == [] and "landline" in sent.response


async def test_a_retried_send_gets_the_first_answer_even_if_the_line_type_changed(served, tmp_path):
    """The lookup failed (a text went out), the platform retries the same request and the
    lookup now says landline: the retry replays the text's answer, no voice code follows."""
    fake, url, _ = served(directory(tmp_path))
    fake.lookup_fault = "500"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        spec = call.functions["send_mfa"]
        token = spec.get("meta_data_token") or spec["web_hook_url"]
        body = call.request_body("send_mfa", {"account_number": ACCOUNT}, token)
        first = await call.post_to_webhook(spec["web_hook_url"], body)
        fake.lookup_fault = None
        fake.line_types[ON_FILE] = "landline"
        again = await call.post_to_webhook(spec["web_hook_url"], body)
    assert [text["channel"] for text in fake.texts] == ["sms"]
    assert again.response == first.response and again.actions == first.actions


async def test_the_sandbox_reads_a_voice_code_to_a_landline_on_file(
    make_settings, serve_agent, tmp_path
):
    """Without an account the whole voice path runs: the sandbox's table says landline,
    the code is "called" (a SandboxText on the call channel, with the voice message) and
    verifies."""
    config = {
        **directory(tmp_path),
        "channels": {"lookup": True, "sandbox_line_types": {ON_FILE: "landline"}},
    }
    outbox: list[Any] = []
    agent = build_agent(make_settings(config=config), sandbox_deliver=outbox.append)
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa", account_number=ACCOUNT)
        (voice,) = outbox
        verified = await call.invoke("verify_mfa", token=voice.code)
    assert CALLING in sent.response
    assert voice.channel == "call" and voice.to == ON_FILE
    assert voice.body.startswith("Hello, this is our company")
    assert "caller is verified" in verified.response
