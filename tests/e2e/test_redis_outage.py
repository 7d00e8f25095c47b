"""A Redis outage with the SignalWire provider: the send limits fail closed.

In sandbox mode the pending codes live in Redis too, so a send fails during an outage
whatever the limiter does. With SignalWire (the loopback fake) only the limiter stands
between the caller and a text: with the counters unreachable, no text may go out.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.calls import new_call
from tests.support.defaults import CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SENT = "A code was texted to the phone number ending in"
POLITE_REFUSAL = "did not answer in time, so nothing changed"


def sms_requests(fake) -> int:
    return sum(1 for request in fake.requests if request["path"].endswith("/mfa/sms"))


async def test_no_text_goes_out_while_the_limit_counters_are_down(
    own_redis_server, fake_signalwire, make_settings, serve_agent
):
    fake, signalwire_url = fake_signalwire
    settings = make_settings(
        signalwire_url=signalwire_url,
        REDIS_URL=own_redis_server.url,
        config={"limits": {"per_recipient_per_hour": 1}},
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        first = await new_call(http, url)
        assert SENT in (await first.invoke("send_mfa")).response
        assert (len(fake.texts), sms_requests(fake)) == (1, 1)

        own_redis_server.stop()  # the hour's one text is spent, and the counter is gone
        for _ in range(3):
            call = await new_call(http, url)
            reply = await call.invoke("send_mfa")
            assert reply.status_code == 200
            assert POLITE_REFUSAL in reply.response
            assert SENT not in reply.response
            assert not call.global_data.get("mfa_verified")

    assert len(fake.texts) == 1, "a text went out while the limit could not be checked"
    assert sms_requests(fake) == 1
    assert [text["to"] for text in fake.texts] == [CALLER]


async def _ready(http: httpx.AsyncClient, url: str) -> tuple[int, dict]:
    answer = await http.get(url + "/ready")
    return answer.status_code, answer.json()


async def test_ready_names_the_dependency_that_is_down_and_the_log_says_when_it_is_back(
    own_redis_server, fake_signalwire, make_settings, serve_agent, caplog
):
    import asyncio
    import time

    caplog.set_level("INFO", logger="mfa.readiness")
    _, signalwire_url = fake_signalwire
    settings = make_settings(signalwire_url=signalwire_url, REDIS_URL=own_redis_server.url)
    url = serve_agent(settings)

    def transitions() -> list[tuple[str, str]]:
        return [
            (r.getMessage(), r.dependency)
            for r in caplog.records
            if r.getMessage() in ("dependency_down", "dependency_back")
        ]

    async with httpx.AsyncClient(timeout=15) as http:
        assert await _ready(http, url) == (
            200,
            {"ready": True, "status": "ready", "checks": {"redis": "ok", "event_relay": "ok"}},
        )
        assert transitions() == []

        own_redis_server.stop()
        status, body = await _ready(http, url)
        assert status == 503
        assert body["ready"] is False and body["checks"]["redis"] == "down"
        await _ready(http, url)  # still down: said once, not per poll
        assert transitions().count(("dependency_down", "redis")) == 1

        own_redis_server.start()
        deadline = time.monotonic() + 15
        while (await _ready(http, url))[0] != 200:
            assert time.monotonic() < deadline, "/ready did not recover"
            await asyncio.sleep(0.2)
    assert ("dependency_back", "redis") in transitions()
    down_at = transitions().index(("dependency_down", "redis"))
    assert transitions().index(("dependency_back", "redis")) > down_at
