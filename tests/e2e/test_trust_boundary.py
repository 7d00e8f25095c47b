"""The trust boundary over HTTP, as an attacker with the credentials and as the platform.

Issue 11, findings 1-3: ``meta_data`` is the agent's own claim, sealed to its call;
a platform retry gets the answer the first request got; a send that never left costs
no budget. The agent is served on loopback against the fake SignalWire, and requests
are shaped like the platform's (``agent.ops.platform.PlatformCall``). Expected MACs are
computed here with ``hmac`` from the documented formula.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall, ToolReply
from agent.ops.simulator import first_event
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

from tests.support.defaults import SWAIG_SECRET  # noqa: E402

KEY = hmac.new(SWAIG_SECRET.encode(), b"mfa-binding-v1", hashlib.sha256).digest()
NO_CODE = "No code has been sent on this call yet."
VERIFIED = "caller is verified"


def expected_binding(call_id: str, meta: dict[str, Any]) -> str:
    fields = [
        "mfa-binding-v1",
        call_id,
        meta["mfa_request_id"],
        meta["mfa_attempts_left"],
        meta["mfa_number_last4"],
        meta["mfa_sent_at"],
        meta.get("mfa_account"),
    ]
    message = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(KEY, message, hashlib.sha256).hexdigest()


@pytest.fixture
def served(fake_signalwire, make_settings, serve_agent):
    """(fake, url, events) for an agent whose outcome events the test can read."""

    def serve(config: dict[str, Any] | None = None) -> tuple[Any, str, list]:
        fake, sw_url = fake_signalwire
        agent = build_agent(make_settings(signalwire_url=sw_url, config=config))
        events: list = []
        agent.publisher.subscribe(events.append)
        return fake, serve_agent(agent), events

    return serve


def verifies(fake) -> int:
    return sum(1 for r in fake.requests if r["path"].endswith("/verify"))


def outcomes(events: list, call_id: str | None = None) -> list[str]:
    return [str(e.outcome) for e in events if call_id is None or e.call_id == call_id]


async def again(call: PlatformCall, function: str, body: dict[str, Any]) -> ToolReply:
    """The platform sending the very same request again (its answer was lost)."""
    return await call.post_to_webhook(call.functions[function]["web_hook_url"], body)


async def post_as(call: PlatformCall, function: str, meta: dict, **arguments: Any) -> ToolReply:
    """A request of ``call`` (its own valid token) carrying ``meta`` as its meta_data."""
    body = call.request_body(function, arguments, "mfa_skill")
    body["meta_data"] = meta
    return await again(call, function, body)


# -- finding 1 ------------------------------------------------------------------------------


async def test_meta_data_and_code_of_call_a_posted_as_call_b_verify_nothing(served):
    fake, url, events = served()
    async with httpx.AsyncClient(timeout=15) as http:
        a = await new_call(http, url)
        await a.invoke("send_mfa")
        meta_a = dict(a.meta_data["mfa_skill"])
        assert meta_a["mfa_binding"] == expected_binding(a.call_id, meta_a)
        code_a = fake.last_code_for(CALLER)

        b = await new_call(http, url, caller="+15551230002")
        reply = await post_as(b, "verify_mfa", meta_a, token=code_a)
        assert reply.status_code == 200 and reply.response.startswith(NO_CODE)
        assert "set_global_data" not in json.dumps(reply.body)
        assert verifies(fake) == 0  # nothing upstream: A's code was not burnt
        assert outcomes(events, b.call_id) == ["tampered"]
        assert events[-1].masked_number == "unknown"

        # A's code still verifies on A afterwards.
        assert VERIFIED in (await a.invoke("verify_mfa", token=code_a)).response
        assert a.global_data["mfa_verified_number_last4"] == "0001"


ALTERATIONS = {
    "request_id": lambda m, other: {**m, "mfa_request_id": other["mfa_request_id"]},
    "attempts_left": lambda m, other: {**m, "mfa_attempts_left": 20},
    "last4": lambda m, other: {**m, "mfa_number_last4": "9999"},
    "sent_at": lambda m, other: {**m, "mfa_sent_at": m["mfa_sent_at"] + 1},
    "account_added": lambda m, other: {**m, "mfa_account": "ACME-1"},
    "binding": lambda m, other: {**m, "mfa_binding": other["mfa_binding"]},
    "binding_missing": lambda m, other: {k: v for k, v in m.items() if k != "mfa_binding"},
    "binding_malformed": lambda m, other: {**m, "mfa_binding": m["mfa_binding"][:-1] + "g"},
    "wrong_type": lambda m, other: {**m, "mfa_attempts_left": "3"},
}


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
async def test_every_field_altered_is_refused(served, alteration):
    fake, url, events = served()
    async with httpx.AsyncClient(timeout=15) as http:
        other = await new_call(http, url, caller="+15551230003")
        await other.invoke("send_mfa")
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        meta = dict(call.meta_data["mfa_skill"])
        altered = ALTERATIONS[alteration](meta, other.meta_data["mfa_skill"])
        reply = await post_as(call, "verify_mfa", altered, token=code)
        assert reply.response.startswith(NO_CODE)
        assert verifies(fake) == 0
        assert outcomes(events, call.call_id)[-1] == "tampered"
        # The untouched claim still verifies: the owner's code was not used.
        assert VERIFIED in (await call.invoke("verify_mfa", token=code)).response


async def test_a_megabyte_meta_data_value_is_refused_and_stored_nowhere(served):
    _, url, events = served()
    huge = "7" * 1_000_000
    async with httpx.AsyncClient(timeout=30) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        meta = {**call.meta_data["mfa_skill"], "mfa_number_last4": huge}
        for _ in range(3):
            reply = await post_as(call, "verify_mfa", meta, token="123456")
            assert reply.status_code == 200 and reply.response.startswith(NO_CODE)
        assert outcomes(events)[-3:] == ["tampered"] * 3
        assert max(len(json.dumps(e.to_dict())) for e in events) < 1000
        shown: list[dict] = []
        await first_event(http, url, DASHBOARD, lambda e: shown.append(e) and False, within=1.0)
        assert "tampered" in [e.get("outcome") for e in shown]  # /live shows the tampering
        assert max(len(json.dumps(e)) for e in shown) < 2000  # and none of the value


# -- finding 2 ------------------------------------------------------------------------------


async def test_a_verify_retried_after_success_answers_the_same(served):
    fake, url, events = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        body = call.request_body("verify_mfa", {"token": fake.last_code_for(CALLER)}, "mfa_skill")
        first = await again(call, "verify_mfa", body)
        second = await again(call, "verify_mfa", body)
        assert VERIFIED in first.response
        assert second.body == first.body  # same text, same global_data incl. mfa_verified_at
        assert verifies(fake) == 1
        assert outcomes(events, call.call_id) == ["code_sent", "verified", "replayed"]


async def test_a_send_retried_after_a_lost_answer_texts_once(served):
    fake, url, _ = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        body = call.request_body("send_mfa", {}, "mfa_skill")
        first = await again(call, "send_mfa", body)
        second = await again(call, "send_mfa", body)
        assert second.body == first.body  # the same set_meta_data: the same request id
        assert len(fake.texts) == 1
        call.apply_actions("mfa_skill", second.actions)
        code = fake.last_code_for(CALLER)
        assert VERIFIED in (await call.invoke("verify_mfa", token=code)).response


async def test_a_wrong_code_retried_gets_the_same_tries_left(served):
    fake, url, _ = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        wrong = wrong_code(fake.last_code_for(CALLER))
        body = call.request_body("verify_mfa", {"token": wrong}, "mfa_skill")
        first = await again(call, "verify_mfa", body)
        second = await again(call, "verify_mfa", body)
        assert "2 tries left" in first.response and second.body == first.body
        assert verifies(fake) == 1


@pytest.mark.parametrize("final", ["verified", "exhausted", "expired"])
async def test_a_new_send_after_a_final_outcome_is_not_swallowed(served, final):
    fake, url, _ = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        first = await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        if final == "verified":
            assert VERIFIED in (await call.invoke("verify_mfa", token=code)).response
        elif final == "exhausted":
            for _ in range(3):
                await call.invoke("verify_mfa", token=wrong_code(code))
        else:
            fake.clock_offset = 601
            assert "expired" in (await call.invoke("verify_mfa", token=code)).response
            fake.clock_offset = 0
        second = await call.invoke("send_mfa")  # seconds later, same call
        assert "was texted" in second.response
        assert len(fake.texts) == 2
        assert second.body != first.body
        assert (
            VERIFIED in (await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))).response
        )


# -- finding 3 ------------------------------------------------------------------------------


async def test_sends_refused_by_the_open_breaker_cost_nothing(served):
    fake, url, _ = served(
        {
            "breaker": {"failure_threshold": 2, "open_seconds": 0.5},
            "limits": {"per_recipient_per_hour": 1},
        }
    )
    async with httpx.AsyncClient(timeout=15) as http:
        other = await new_call(http, url, caller="+15551230004")
        await other.invoke("send_mfa")
        fake.fault = "500"  # the outage: two failed verifies open the breaker
        for _ in range(2):
            await other.invoke("verify_mfa", token="123456")
        call = await new_call(http, url)
        for _ in range(3):  # the caller keeps asking during the outage
            reply = await call.invoke("send_mfa")
            assert "did not answer in time, so nothing changed" in reply.response
        assert [t["to"] for t in fake.texts] == ["+15551230004"]

        fake.fault = None  # the outage ends
        await asyncio.sleep(0.6)
        reply = await call.invoke("send_mfa")
        assert "was texted" in reply.response  # 1 per hour, and it is the first that left
        assert fake.texts[-1]["to"] == CALLER
