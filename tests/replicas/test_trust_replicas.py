"""The trust boundary across two replicas sharing one Redis (issue 11, findings 1-2).

The binding key comes from the shared ``SIGNALWIRE_SWAIG_SECRET`` and the replay
records live in Redis, so a claim sealed on one replica opens on the other, a claim
copied to another call is refused on either, and a retry that lands on the other
replica gets the first answer.
"""

from __future__ import annotations

import httpx
import pytest

from agent.ops.platform import PlatformCall, ToolReply
from agent.ops.simulator import first_event
from tests.replicas.test_replicas import code_of, next_event, replicas, sandbox_text_to
from tests.support.defaults import AUTH, DASHBOARD

__all__ = ["replicas"]  # the fixture, shared with test_replicas.py

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

VERIFIED = "caller is verified"


async def start(http: httpx.AsyncClient, url: str, caller: str) -> PlatformCall:
    call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=caller)
    await call.start()
    return call


async def post(call: PlatformCall, function: str, body: dict) -> ToolReply:
    return await call.post_to_webhook(call.functions[function]["web_hook_url"], body)


async def outcomes_of(http: httpx.AsyncClient, url: str, call_id: str) -> list[str]:
    seen: list[dict] = []
    await first_event(
        http,
        url,
        DASHBOARD,
        lambda e: e.get("call_id") == call_id and seen.append(e) and False,
        1.5,
    )
    return [e["outcome"] for e in seen]


async def test_meta_data_copied_to_another_call_is_refused_on_the_other_replica(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        owner = await start(http, a.url, "+15551110021")
        await owner.invoke("send_mfa")  # sealed on replica a
        code = code_of(await next_event(http, a.url, sandbox_text_to("0021")))
        thief = await start(http, b.url, "+15551110022")
        body = thief.request_body("verify_mfa", {"token": code}, "mfa_skill")
        body["meta_data"] = dict(owner.meta_data["mfa_skill"])
        reply = await post(thief, "verify_mfa", body)  # on replica b, thief's own token
        assert reply.response.startswith("No code has been sent")
        assert "tampered" in await outcomes_of(http, a.url, thief.call_id)
        owner.base_url = b.url  # the owner's claim opens on the other replica
        assert VERIFIED in (await owner.invoke("verify_mfa", token=code)).response


async def test_a_verify_retried_on_the_other_replica_answers_the_same(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await start(http, a.url, "+15551110023")
        await call.invoke("send_mfa")
        code = code_of(await next_event(http, a.url, sandbox_text_to("0023")))
        body = call.request_body("verify_mfa", {"token": code}, "mfa_skill")
        first = await post(call, "verify_mfa", body)
        call.base_url = b.url
        second = await post(call, "verify_mfa", body)
        assert VERIFIED in first.response
        assert second.body == first.body  # the same global_data, mfa_verified_at included
        outcomes = await outcomes_of(http, b.url, call.call_id)
        assert sorted(o for o in outcomes if o in ("verified", "replayed")) == [
            "replayed",
            "verified",
        ]


async def test_a_send_retried_on_the_other_replica_texts_once(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await start(http, a.url, "+15551110024")
        body = call.request_body("send_mfa", {}, "mfa_skill")
        first = await post(call, "send_mfa", body)
        call.base_url = b.url
        second = await post(call, "send_mfa", body)
        assert "was texted" in first.response
        assert second.body == first.body  # the same request id: one text
        outcomes = await outcomes_of(http, a.url, call.call_id)
        assert outcomes.count("code_sent") == 1 and "replayed" in outcomes
        call.apply_actions("mfa_skill", second.actions)
        code = code_of(await next_event(http, b.url, sandbox_text_to("0024")))
        assert VERIFIED in (await call.invoke("verify_mfa", token=code)).response
