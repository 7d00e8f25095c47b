"""Whole calls over real HTTP: the agent served on loopback, SignalWire faked on loopback.

Requests are shaped like the platform's and ``meta_data``/``global_data`` are kept between
them the way the platform keeps them (``agent.ops.platform.PlatformCall``).
"""

from __future__ import annotations

import json

import httpx
import pytest

from skills.mfa.flow.tools import META_REQUEST_ID
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import AUTH, CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def agent_url(fake_signalwire, make_settings, serve_agent):
    _, sw_url = fake_signalwire
    return serve_agent(make_settings(signalwire_url=sw_url))


def assert_no_secret(reply_body: dict, *secrets: str) -> None:
    # Security rule: the model never sees the code or the request id.
    text = json.dumps(reply_body)
    for secret in secrets:
        assert secret not in text


async def test_send_wrong_then_right_verifies(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        assert call.global_data["mfa_verified"] is False

        sent = await call.invoke("send_mfa")
        assert sent.status_code == 200
        assert "0 0 0 1" in sent.response  # last four digits of the caller, spoken
        code = fake.last_code_for(CALLER)
        request_id = call.meta_data["mfa_skill"][META_REQUEST_ID]
        assert_no_secret(sent.body["response"], code, request_id)
        assert fake.requests[-1]["body"] == {
            "to": CALLER,
            "from": "+15559870000",
            # The shipped template with the default company_name, as SignalWire gets it.
            "message": "From our company: only say this code on the call you made to us. "
            "We never call to ask for it. Your code:",
            "token_length": 6,
            "valid_for": 600,
            "max_attempts": 3,
            "allow_alphas": False,
        }

        wrong = wrong_code(code)
        reply = await call.invoke("verify_mfa", token=wrong)
        assert "2 tries left" in reply.response
        assert call.global_data["mfa_verified"] is False
        assert call.meta_data["mfa_skill"]["mfa_attempts_left"] == 2

        spoken = " ".join(code)
        reply = await call.invoke("verify_mfa", token=f"um my code is {spoken}")
        assert "caller is verified" in reply.response
        assert call.global_data["mfa_verified"] is True
        assert call.global_data["mfa_verified_number_last4"] == "0001"
        assert META_REQUEST_ID not in call.meta_data["mfa_skill"]
        assert_no_secret(reply.body, code, request_id)


async def test_code_cannot_be_reused(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        kept = dict(call.meta_data["mfa_skill"])
        assert "caller is verified" in (await call.invoke("verify_mfa", token=code)).response

        again = await call.invoke("verify_mfa", token=code)
        assert "No code has been sent" in again.response

        # The old meta_data with another code: the code is finished, so the agent answers
        # "no code pending" itself and nothing reaches SignalWire again.
        checks = sum(1 for r in fake.requests if r["path"].endswith("/verify"))
        call.meta_data["mfa_skill"] = kept
        call.global_data["mfa_verified"] = False
        reuse = await call.invoke("verify_mfa", token=wrong_code(code))
        assert "No code is waiting to be checked" in reuse.response
        assert call.global_data["mfa_verified"] is False
        assert sum(1 for r in fake.requests if r["path"].endswith("/verify")) == checks == 1
        # (The very same request again is a platform retry and gets the same answer:
        # tests/e2e/test_trust_boundary.py::test_a_verify_retried_after_success_answers_the_same.)


async def test_exhaustion_then_a_new_code_works(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        wrong = wrong_code(code)
        replies = [await call.invoke("verify_mfa", token=wrong) for _ in range(3)]
        assert "2 tries left" in replies[0].response
        assert "1 try left" in replies[1].response
        assert "no tries left" in replies[2].response
        assert META_REQUEST_ID not in call.meta_data["mfa_skill"]

        # Even the right code is refused now: the agent holds no request id any more.
        assert "No code has been sent" in (await call.invoke("verify_mfa", token=code)).response

        await call.invoke("send_mfa")
        new_code = fake.last_code_for(CALLER)
        assert "caller is verified" in (await call.invoke("verify_mfa", token=new_code)).response
        assert call.global_data["mfa_verified"] is True


async def test_expired_code_offers_a_new_one(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        fake.clock_offset = 601
        reply = await call.invoke("verify_mfa", token=code)
        assert "expired" in reply.response and "new code" in reply.response
        assert call.global_data["mfa_verified"] is False
        assert META_REQUEST_ID not in call.meta_data["mfa_skill"]


async def test_verify_before_any_send_calls_nothing_upstream(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        reply = await call.invoke("verify_mfa", token="123456")
        assert "No code has been sent" in reply.response
        assert fake.requests == []


async def test_malformed_code_uses_no_attempt(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        before = len(fake.requests)
        for said in ("one two three", "1234567", "banana", "x" * 100_000):
            reply = await call.invoke("verify_mfa", token=said)
            assert reply.status_code == 200
            assert "no try" in reply.response
        assert len(fake.requests) == before
        assert call.meta_data["mfa_skill"]["mfa_attempts_left"] == 3
        code = fake.last_code_for(CALLER)
        assert "caller is verified" in (await call.invoke("verify_mfa", token=code)).response


async def test_texting_another_number_is_refused(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        reply = await call.invoke("send_mfa", phone_number="+15557654321")
        assert "only be texted to the phone number the caller is calling from" in reply.response
        assert fake.texts == []
        # Naming one's own number is fine.
        reply = await call.invoke("send_mfa", phone_number="(555) 123-0001")
        assert "ending in 0 0 0 1" in reply.response


async def test_another_number_when_the_operator_allows_it(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    url = serve_agent(
        make_settings(signalwire_url=sw_url, config={"code": {"allow_other_numbers": True}})
    )
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        reply = await call.invoke("send_mfa", phone_number="+1 (555) 765-4321")
        assert "ending in 4 3 2 1" in reply.response
        assert fake.texts[-1]["to"] == "+15557654321"
        bad = await call.invoke("send_mfa", phone_number="12")
        assert "does not look like a phone number" in bad.response


async def test_caller_without_a_number_gets_no_text(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url, caller="anonymous")
        reply = await call.invoke("send_mfa")
        assert "cannot see a phone number" in reply.response
        assert fake.texts == []


async def test_tool_token_is_required_and_bound_to_its_call(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        other = await new_call(http, agent_url)
        body = call.request_body("send_mfa", {}, "mfa_skill")

        no_token = await http.post(agent_url + "/swaig/", json=body, auth=AUTH)
        assert no_token.status_code == 200
        assert "security token" in no_token.json()["response"]

        # The other call's token, presented for this call's id.
        reply = await call.post_to_webhook(other.functions["send_mfa"]["web_hook_url"], body)
        assert "security token" in reply.response
        # verify_mfa's token does not open send_mfa.
        reply = await call.post_to_webhook(call.functions["verify_mfa"]["web_hook_url"], body)
        assert "security token" in reply.response
        assert fake.texts == []


async def test_unauthenticated_requests_get_401(agent_url):
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(agent_url + "/")).status_code == 401
        assert (await http.post(agent_url + "/swaig/", json={"function": "x"})).status_code == 401
        wrong = await http.post(agent_url + "/", json={}, auth=("operator", "nope"))
        assert wrong.status_code == 401
        assert (await http.get(agent_url + "/health")).status_code == 200
        assert (await http.get(agent_url + "/ready")).status_code == 200


async def test_wrong_api_token_is_reported_as_a_setup_problem(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    url = serve_agent(make_settings(signalwire_url=sw_url, SIGNALWIRE_API_TOKEN="PTwrong0000"))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        reply = await call.invoke("send_mfa")
        assert reply.status_code == 200
        assert "setup problem on our side" in reply.response
        assert fake.texts == []
        assert META_REQUEST_ID not in call.meta_data.get("mfa_skill", {})


async def test_invalid_attribute_422_sends_nothing(fake_signalwire, agent_url):
    fake, _ = fake_signalwire
    fake.fault = "422"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        reply = await call.invoke("send_mfa")
        assert "could not be sent to that number" in reply.response
        assert META_REQUEST_ID not in call.meta_data.get("mfa_skill", {})


@pytest.mark.parametrize("fault", ["500", "garbage"])
async def test_upstream_fault_on_verify_keeps_the_code_usable(fake_signalwire, agent_url, fault):
    fake, _ = fake_signalwire
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        fake.fault = fault
        reply = await call.invoke("verify_mfa", token=code)
        assert reply.status_code == 200
        assert "did not answer in time, so nothing changed" in reply.response
        assert call.global_data["mfa_verified"] is False
        assert call.meta_data["mfa_skill"][META_REQUEST_ID]  # kept: the code may still be good
        fake.fault = None
        assert "caller is verified" in (await call.invoke("verify_mfa", token=code)).response


async def test_unreadable_answer_to_a_send_promises_no_code(fake_signalwire, agent_url):
    """A 200 that cannot be read may have texted a code, but without its id that code can
    never be checked: the answer says so instead of "a code may still arrive" (only a 5xx
    is sent again; ``test_bounded_answers`` counts that a huge answer is not)."""
    fake, _ = fake_signalwire
    fake.fault = "garbage"
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        reply = await call.invoke("send_mfa")
        assert "there is no code to check on this call" in reply.response
        assert "may still arrive" not in reply.response
        assert META_REQUEST_ID not in call.meta_data.get("mfa_skill", {})
        fake.fault = None
        verify = await call.invoke("verify_mfa", token="123456")
    assert "no code has been sent" in verify.response.lower(), verify.response


async def test_a_5xx_after_the_code_was_texted_leaves_a_code_that_verifies(
    fake_signalwire, agent_url
):
    """The space texts a code, then answers 500 (its answer lost): the agent sends once
    more at once and keeps that request's id, so the code the caller now holds, the newest
    the space texted, verifies on this call; the model is told two texts may come."""
    fake, _ = fake_signalwire
    fake.fail_after_sending = 1
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        sent = await call.invoke("send_mfa")
        assert "A code was texted to the phone number ending in" in sent.response
        assert "only the code in the newest one works" in sent.response
        assert [text["to"] for text in fake.texts] == [CALLER, CALLER]
        first, newest = (text["code"] for text in fake.texts)
        assert first not in sent.response and newest not in sent.response
        request_id = call.meta_data["mfa_skill"][META_REQUEST_ID]
        assert request_id not in sent.response
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    assert "caller is verified" in reply.response, reply.body
    assert call.global_data["mfa_verified"] is True


async def test_a_slow_5xx_still_leaves_time_for_the_second_text(fake_signalwire, agent_url):
    """The resend window from below: a 5xx that took 2.5 s still leaves the 8 s window
    (RESEND_WITHIN_SECONDS) room for a second try, which also takes 2.5 s; a window cut
    under 5 s would send no second text and leave nothing to verify."""
    fake, _ = fake_signalwire
    fake.fail_after_sending = 1
    fake.latency = 2.5
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            call = await new_call(http, agent_url)
            sent = await call.invoke("send_mfa")
            assert "only the code in the newest one works" in sent.response, sent.response
            assert len(fake.texts) == 2
            reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    finally:
        fake.latency = 0.0
    assert "caller is verified" in reply.response, reply.body


async def test_two_5xx_in_a_row_promise_no_code(fake_signalwire, agent_url):
    """Both tries texted and answered 500: no id is known, so nothing can be verified and
    the answer promises nothing; a verify says no code was sent, and a new send works."""
    fake, _ = fake_signalwire
    fake.fail_after_sending = 2
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        sent = await call.invoke("send_mfa")
        assert "there is no code to check on this call" in sent.response
        assert "may still arrive" not in sent.response
        assert len(fake.texts) == 2  # two tries, never a third
        assert META_REQUEST_ID not in call.meta_data.get("mfa_skill", {})
        verify = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        assert "no code has been sent" in verify.response.lower(), verify.response
        again = await call.invoke("send_mfa")
        assert "A code was texted" in again.response, again.response
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    assert "caller is verified" in reply.response
