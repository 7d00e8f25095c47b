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
