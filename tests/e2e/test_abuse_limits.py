"""Abuse limits, the circuit breaker, deadlines and webhook signatures, over real HTTP.

The agent is served on loopback and SignalWire is faked on loopback; calls are driven
the way the platform drives them (``agent.ops.platform.PlatformCall``). The limiter and the
breaker use the wall clock here, so the windows under test are set short in the config.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from skills.mfa.flow.tools import META_REQUEST_ID
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread
from tests.support.calls import new_call, reply_text
from tests.support.defaults import AUTH, CALLER
from tests.support.fakes import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SENT = "A code was texted to the phone number ending in"
REPLACES = "This new code replaces the earlier one, which no longer works."
NOT_IN_TIME = "did not answer in time"
NOT_CONFIRMED = "did not confirm the text"


class CountingApp:
    """ASGI wrapper that counts every request to the fake's MFA API, faults included (the
    fake itself only records requests that pass its fault knobs). Line-type lookups are not
    the provider the breaker guards: not counted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/mfa/" in scope["path"]:
            self.hits += 1
        await self.app(scope, receive, send)


@pytest.fixture
def counted_fake() -> Iterator[tuple[FakeSignalWire, str, CountingApp]]:
    fake = FakeSignalWire()
    app = CountingApp(fake.app())
    server = ServerThread(app).__enter__()
    try:
        yield fake, server.url, app
    finally:
        fake.fault = None
        fake.latency = 0.0
        server.server.should_exit = True
        server.thread.join(timeout=2)
        server.server.force_exit = True  # a "hang" request would hold a graceful shutdown
        server.__exit__(None, None, None)


@pytest.fixture
def serve_with_events(serve_agent) -> Callable[..., tuple[str, list[dict]]]:
    """Serve an agent from settings; returns its URL and the list its events land in."""

    def serve(settings) -> tuple[str, list[dict]]:
        agent = build_agent(settings)
        events: list[dict] = []
        agent.publisher.subscribe(lambda event: events.append(event.to_dict()))
        return serve_agent(agent), events

    return serve


def outcomes(events: list[dict], tool: str = "send_mfa") -> list[str]:
    return [e["outcome"] for e in events if e["tool"] == tool]


# -- per-call limits ---------------------------------------------------------------------


async def test_resend_within_the_cooldown_is_refused(
    counted_fake, make_settings, serve_with_events
):
    fake, sw_url, _ = counted_fake
    url, events = serve_with_events(make_settings(signalwire_url=sw_url))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        first = await call.invoke("send_mfa")
        assert SENT in first.response
        request_id = call.meta_data["mfa_skill"][META_REQUEST_ID]

        again = await call.invoke("send_mfa")
        assert again.status_code == 200
        assert re.search(r"can be sent in about (29|30) seconds", again.response), again.response
        assert again.actions == []  # nothing changes in meta_data
        assert call.meta_data["mfa_skill"][META_REQUEST_ID] == request_id
        assert len(fake.texts) == 1
        assert outcomes(events) == ["code_sent", "rate_limited"]
        assert events[-1]["masked_number"] == "***0001"

        # The pending code still verifies.
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        assert "caller is verified" in reply.response


async def test_resend_after_the_cooldown_replaces_the_earlier_code(
    counted_fake, make_settings, serve_with_events
):
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url, config={"limits": {"resend_cooldown_seconds": 0.5}}
    )
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        assert SENT in (await call.invoke("send_mfa")).response
        old_code = fake.last_code_for(CALLER)
        old_id = call.meta_data["mfa_skill"][META_REQUEST_ID]

        await asyncio.sleep(0.6)
        resent = await call.invoke("send_mfa")
        assert SENT in resent.response
        assert REPLACES in resent.response
        new_code = fake.last_code_for(CALLER)
        new_id = call.meta_data["mfa_skill"][META_REQUEST_ID]
        assert len(fake.texts) == 2
        assert new_id != old_id
        assert call.meta_data["mfa_skill"]["mfa_attempts_left"] == 3
        assert outcomes(events) == ["code_sent", "code_sent"]

        if new_code != old_code:  # one chance in a million that the fake repeats a code
            reply = await call.invoke("verify_mfa", token=old_code)
            assert "That code is not correct" in reply.response
            assert call.global_data["mfa_verified"] is False
            # The agent checked the old code against the new request only.
            assert fake.requests[-1]["path"] == f"/api/relay/rest/mfa/{new_id}/verify"

        reply = await call.invoke("verify_mfa", token=new_code)
        assert "caller is verified" in reply.response
        assert call.global_data["mfa_verified"] is True
        verify_paths = [r["path"] for r in fake.requests if r["path"].endswith("/verify")]
        assert f"/api/relay/rest/mfa/{old_id}/verify" not in verify_paths


async def test_sends_per_call_cap(counted_fake, make_settings, serve_with_events):
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url,
        config={"limits": {"sends_per_call": 2, "resend_cooldown_seconds": 0}},
    )
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        assert SENT in (await call.invoke("send_mfa")).response
        assert REPLACES in (await call.invoke("send_mfa")).response
        third = await call.invoke("send_mfa")
        assert "as many codes as can be sent on one call" in third.response
        assert len(fake.texts) == 2
        assert outcomes(events) == ["code_sent", "code_sent", "rate_limited"]

        # A new call from the same phone may send again.
        other = await new_call(http, url)
        assert SENT in (await other.invoke("send_mfa")).response
        assert len(fake.texts) == 3


async def test_recipient_hour_cap_across_calls(counted_fake, make_settings, serve_with_events):
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url, config={"limits": {"per_recipient_per_hour": 2}}
    )
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        for _ in range(2):
            call = await new_call(http, url)
            assert SENT in (await call.invoke("send_mfa")).response
        third = await new_call(http, url)
        reply = await third.invoke("send_mfa")
        assert "Too many codes have gone to this phone number recently" in reply.response
        assert META_REQUEST_ID not in third.meta_data.get("mfa_skill", {})
        assert [t["to"] for t in fake.texts] == [CALLER, CALLER]

        # Another phone is not affected.
        stranger = await new_call(http, url, caller="+15551239999")
        assert SENT in (await stranger.invoke("send_mfa")).response
        assert outcomes(events) == ["code_sent", "code_sent", "rate_limited", "code_sent"]


async def test_a_resend_after_a_5xx_counts_against_the_numbers_limit(
    counted_fake, make_settings, serve_with_events
):
    """After a 5xx the agent texts once more (skills/mfa/flow/upstream.py), and that text
    counts like any other: with two sends an hour allowed to a number, a 5xx on the first
    send costs both, so the next call's send to that number is refused. When the limit is
    already reached, no second text goes at all."""
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url, config={"limits": {"per_recipient_per_hour": 2}}
    )
    url, _ = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        fake.fail_after_sending = 1
        first = await new_call(http, url)
        assert "only the code in the newest one works" in (await first.invoke("send_mfa")).response
        assert [t["to"] for t in fake.texts] == [CALLER, CALLER]
        second = await new_call(http, url)
        reply = await second.invoke("send_mfa")
        assert "Too many codes have gone to this phone number recently" in reply.response
        assert len(fake.texts) == 2

        # Another phone: one send, then a 5xx on its last allowed one: no second text.
        other = "+15551239999"
        call = await new_call(http, url, caller=other)
        assert SENT in (await call.invoke("send_mfa")).response
        fake.fail_after_sending = 1
        again = await new_call(http, url, caller=other)
        reply = await again.invoke("send_mfa")
        assert "there is no code to check on this call" in reply.response
        assert [t["to"] for t in fake.texts].count(other) == 2  # never a third


async def test_agent_cap_across_callers(counted_fake, make_settings, serve_with_events):
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url, config={"limits": {"agent_sends_per_minute": 3}}
    )
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        replies = []
        for i in range(5):
            call = await new_call(http, url, caller=f"+1555000{i:04d}")
            replies.append(await call.invoke("send_mfa"))
        assert [SENT in r.response for r in replies] == [True, True, True, False, False]
        for reply in replies[3:]:
            assert "very busy right now, so no code was sent" in reply.response
        assert len(fake.texts) == 3
        assert outcomes(events) == ["code_sent"] * 3 + ["rate_limited"] * 2


# -- who may be texted -------------------------------------------------------------------

UK_MOBILE = "+447911123456"


async def test_country_not_allowed_by_default(counted_fake, make_settings, serve_with_events):
    fake, sw_url, counter = counted_fake
    url, events = serve_with_events(make_settings(signalwire_url=sw_url))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=UK_MOBILE)
        reply = await call.invoke("send_mfa")
        assert "cannot be texted to phone numbers in that country" in reply.response
        assert fake.texts == [] and counter.hits == 0
        assert outcomes(events) == ["country_refused"]
        assert events[0]["masked_number"] == "***3456"


async def test_country_allowed_by_config(counted_fake, make_settings, serve_with_events):
    fake, sw_url, _ = counted_fake
    settings = make_settings(
        signalwire_url=sw_url, config={"limits": {"allowed_country_codes": [1, 44]}}
    )
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=UK_MOBILE)
        reply = await call.invoke("send_mfa")
        assert "ending in 3 4 5 6" in reply.response
        assert fake.texts[-1]["to"] == UK_MOBILE
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(UK_MOBILE))
        assert "caller is verified" in reply.response
        assert outcomes(events) == ["code_sent"]


async def test_premium_rate_number_is_refused(counted_fake, make_settings, serve_with_events):
    fake, sw_url, counter = counted_fake
    url, events = serve_with_events(make_settings(signalwire_url=sw_url))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller="+19005551234")
        reply = await call.invoke("send_mfa")
        assert "cannot receive text messages, so no code was sent" in reply.response
        assert fake.texts == [] and counter.hits == 0
        assert outcomes(events) == ["number_type_refused"]


# -- the circuit breaker and the deadline -----------------------------------------------


async def test_circuit_breaker_fails_fast_then_recovers(counted_fake, make_settings, serve_agent):
    fake, sw_url, counter = counted_fake
    settings = make_settings(
        signalwire_url=sw_url,
        config={
            "breaker": {"failure_threshold": 2, "open_seconds": 0.5},
            "limits": {"sends_per_call": 20, "resend_cooldown_seconds": 0},
        },
    )
    # The breaker's window moves when the test says so, not when a busy machine stalls.
    clock = FakeClock()
    agent = build_agent(settings, breaker_clock=clock)
    events: list[dict] = []
    agent.publisher.subscribe(lambda event: events.append(event.to_dict()))
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        fake.fault = "500"
        # A 5xx may still have sent the text: it is tried once more at once (that
        # code's id would verify); both fail, which is the breaker's two failures.
        reply = await call.invoke("send_mfa")
        assert NOT_CONFIRMED in reply.response
        assert counter.hits == 2

        # Open: the next answer comes back at once, the fake is not asked.
        fake.latency = 6.0  # the fake would take this long: a fast answer did not ask it
        started = time.perf_counter()
        reply = await call.invoke("send_mfa")
        elapsed = time.perf_counter() - started
        assert NOT_IN_TIME in reply.response
        assert elapsed < 4, elapsed
        assert counter.hits == 2
        assert fake.texts == []
        assert outcomes(events) == ["send_failed"] * 2

        # After open_seconds, with the upstream healthy again, the trial closes it.
        fake.fault = None
        fake.latency = 0.0
        clock.advance(0.6)
        reply = await call.invoke("send_mfa")
        assert SENT in reply.response
        assert counter.hits == 3
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        assert "caller is verified" in reply.response


async def test_verify_that_hangs_is_answered_within_the_deadline(
    counted_fake, make_settings, serve_with_events
):
    fake, sw_url, _ = counted_fake
    settings = make_settings(signalwire_url=sw_url, config={"upstream": {"deadline_seconds": 1.0}})
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        assert SENT in (await call.invoke("send_mfa")).response
        code = fake.last_code_for(CALLER)
        request_id = call.meta_data["mfa_skill"][META_REQUEST_ID]

        fake.fault = "hang"
        started = time.perf_counter()
        reply = await call.invoke("verify_mfa", token=code)
        elapsed = time.perf_counter() - started
        assert reply.status_code == 200
        assert elapsed < 5, elapsed
        assert NOT_IN_TIME in reply.response
        assert call.global_data["mfa_verified"] is False
        assert call.meta_data["mfa_skill"][META_REQUEST_ID] == request_id  # kept for a retry
        assert outcomes(events, "verify_mfa") == ["provider_unavailable"]

        fake.fault = None
        reply = await call.invoke("verify_mfa", token=code)
        assert "caller is verified" in reply.response


async def test_send_that_hangs_is_answered_within_the_deadline(
    counted_fake, make_settings, serve_with_events
):
    fake, sw_url, _ = counted_fake
    settings = make_settings(signalwire_url=sw_url, config={"upstream": {"deadline_seconds": 1.0}})
    url, events = serve_with_events(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        fake.fault = "hang"
        started = time.perf_counter()
        reply = await call.invoke("send_mfa")
        assert time.perf_counter() - started < 5
        # The request reached SignalWire: the text may still arrive.
        assert NOT_CONFIRMED in reply.response
        assert META_REQUEST_ID not in call.meta_data.get("mfa_skill", {})
        assert call.global_data["mfa_verified"] is False
        assert outcomes(events) == ["send_failed"]


# -- webhook signatures ------------------------------------------------------------------

SIGNING_KEY = "PSKtest0123456789abcdef"


def signatures(url: str, body: bytes, key: str = SIGNING_KEY) -> dict[str, str]:
    """The headers SignalWire adds: hex HMAC over the full URL plus the raw body."""
    message = url.encode() + body
    return {
        "X-SignalWire-Signature": hmac.new(key.encode(), message, hashlib.sha1).hexdigest(),
        "X-SignalWire-Sha256-Signature": hmac.new(
            key.encode(), message, hashlib.sha256
        ).hexdigest(),
    }


async def post_signed(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    sign: str = "both",
    key: str = SIGNING_KEY,
) -> httpx.Response:
    """POST ``payload`` as raw bytes, signed over exactly the URL requested and those bytes."""
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    all_headers = signatures(url, body, key)
    if sign == "both":
        headers.update(all_headers)
    elif sign == "sha1":
        headers["X-SignalWire-Signature"] = all_headers["X-SignalWire-Signature"]
    elif sign == "sha256":
        headers["X-SignalWire-Sha256-Signature"] = all_headers["X-SignalWire-Sha256-Signature"]
    return await http.post(url, content=body, headers=headers, auth=AUTH)


def local(base_url: str, hook: str) -> str:
    parts = urlsplit(hook)
    return base_url + parts.path + (f"?{parts.query}" if parts.query else "")


def ai_section(swml: dict[str, Any]) -> dict[str, Any]:
    return next(v["ai"] for v in swml["sections"]["main"] if isinstance(v, dict) and "ai" in v)


async def test_webhooks_need_a_valid_signature(make_settings, serve_agent, monkeypatch):
    monkeypatch.delenv("SWML_PROXY_URL_BASE", raising=False)
    outbox: list[Any] = []
    agent = build_agent(
        make_settings(SIGNALWIRE_SIGNING_KEY=SIGNING_KEY), sandbox_deliver=outbox.append
    )
    url = serve_agent(agent)
    call_id = "signed-call-1"
    start = {
        "call": {"call_id": call_id, "from": CALLER, "to": "+15559870000", "type": "phone"},
        "vars": {},
    }
    async with httpx.AsyncClient(timeout=15) as http:
        # The SWML fetch.
        unsigned = await http.post(url + "/", json=start, auth=AUTH)
        assert unsigned.status_code == 403
        wrong = await post_signed(http, url + "/", start, key="not-the-key")
        assert wrong.status_code == 403
        signed = await post_signed(http, url + "/", start)
        assert signed.status_code == 200
        ai = ai_section(signed.json())
        hooks = {f["function"]: f["web_hook_url"] for f in ai["SWAIG"]["functions"]}

        # A SWAIG function, with its per-call token in the query string.
        send_url = local(url, hooks["send_mfa"])
        assert "?" in send_url
        helper = PlatformCall(http=http, base_url=url, auth=AUTH, call_id=call_id)
        helper.functions = {f["function"]: f for f in ai["SWAIG"]["functions"]}
        body = helper.request_body("send_mfa", {}, "mfa_skill")
        assert (await http.post(send_url, json=body, auth=AUTH)).status_code == 403
        assert (await post_signed(http, send_url, body, key="not-the-key")).status_code == 403
        # Signed for another URL (the query string dropped): refused.
        bare = send_url.split("?", 1)[0]
        forged = signatures(bare, json.dumps(body).encode())
        response = await http.post(
            send_url,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", **forged},
            auth=AUTH,
        )
        assert response.status_code == 403
        assert outbox == []

        response = await post_signed(http, send_url, body, sign="sha1")
        assert response.status_code == 200
        assert SENT in reply_text(response.json())
        assert len(outbox) == 1

        # The body signed is the body sent: a changed byte is refused.
        verify_url = local(url, hooks["verify_mfa"])
        verify = helper.request_body("verify_mfa", {"token": outbox[0].code}, "mfa_skill")
        for action in response.json().get("action", []):
            if "set_meta_data" in action:
                verify["meta_data"] = action["set_meta_data"]
        raw = json.dumps(verify).encode()
        tampered = raw.replace(b'"version": "2.0"', b'"version": "2.1"')
        assert tampered != raw
        response = await http.post(
            verify_url,
            content=tampered,
            headers={"content-type": "application/json", **signatures(verify_url, raw)},
            auth=AUTH,
        )
        assert response.status_code == 403

        response = await post_signed(http, verify_url, verify, sign="sha256")
        assert response.status_code == 200
        assert "caller is verified" in reply_text(response.json())

        # The post-prompt summary.
        post_url = local(url, ai["post_prompt_url"])
        summary = {
            "call_id": call_id,
            "post_prompt_data": {"raw": "{}", "parsed": [{"verified": True}]},
        }
        assert (await http.post(post_url, json=summary, auth=AUTH)).status_code == 403
        assert (await post_signed(http, post_url, summary, key="nope")).status_code == 403
        assert (await post_signed(http, post_url, summary)).status_code == 200

        # GETs and the probes need no signature.
        assert (await http.get(url + "/", auth=AUTH)).status_code == 200
        assert (await http.get(url + "/health")).status_code == 200
