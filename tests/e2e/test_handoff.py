"""Handoffs over HTTP: SignalWire-shaped requests in, the platform playing transfers and hang-ups.

The agent talks to the fake SignalWire on loopback; ``PlatformCall`` applies each reply's
actions as the platform does (a ``connect`` in SWML moves the call only in the documented
shape ``{"transfer": true, "SWML": ...}``, ``hangup`` ends it, SWML is refused when the
SWML says ``swaig_allow_swml: false``).
Every expected action and sentence is written out here, not taken from the product.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from testkit.servers import ServerThread
from tests.agent.test_outcome_webhook import SECRET, Receiver
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DESK_NUMBER = "+14155550199"
NEXT_NUMBER = "+14155550123"
SIP_DESK = "sip:desk@example.sip.signalwire.com"

VERIFIED_TRANSFER = (
    "The code is correct: the caller is verified. In one short sentence, tell them so and "
    "that you are transferring them now. The transfer follows your sentence."
)
GOODBYE = (
    "That code can no longer be used and no new code can be sent on this call, so the caller "
    "cannot be verified now. Apologise briefly and say a polite goodbye in one short sentence. "
    "The call ends after your sentence."
)
TO_DESK = (
    "That code can no longer be used and no new code can be sent on this call, so the caller "
    "cannot be verified here. In one short sentence, tell them you are transferring them to a "
    "colleague who can help. The transfer follows your sentence."
)


@pytest.fixture
def play(fake_signalwire, make_settings, serve_agent):
    """``play(config)`` serves an agent with that YAML config; returns (fake, url, events)."""

    def make(config: dict[str, Any]) -> tuple[Any, str, list[dict[str, Any]]]:
        fake, sw_url = fake_signalwire
        agent = build_agent(make_settings(signalwire_url=sw_url, config=config))
        events: list[dict[str, Any]] = []
        agent.publisher.subscribe(lambda event: events.append(event.to_dict()))
        return fake, serve_agent(agent), events

    return make


def ai_params(call: PlatformCall) -> dict[str, Any]:
    ai = next(v["ai"] for v in call.swml["sections"]["main"] if "ai" in v)
    return ai["params"]


def connect_action(to: str, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    connect: dict[str, Any] = {"to": to}
    if headers is not None:
        connect["headers"] = headers
    # SignalWire's guide "Executing SWML from a SWAIG function": transfer first, a boolean.
    return {
        "transfer": True,
        "SWML": {"version": "1.0.0", "sections": {"main": [{"connect": connect}]}},
    }


async def verified_call(http: httpx.AsyncClient, fake: Any, url: str) -> PlatformCall:
    call = await new_call(http, url)
    await call.invoke("send_mfa")
    await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    return call


# -- the action's shape on the wire ----------------------------------------------------------


@pytest.mark.parametrize("destination", [NEXT_NUMBER, SIP_DESK])
async def test_the_transfer_action_on_the_wire_has_transfer_first_and_boolean(play, destination):
    """Read from the raw reply bytes, not a parsed dict: the platform reads the keys in order."""
    fake, url, _ = play({"handoff": {"on_verified": destination}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        spec = call.functions["verify_mfa"]
        token = spec.get("meta_data_token") or spec["web_hook_url"]
        body = call.request_body("verify_mfa", {"token": fake.last_code_for(CALLER)}, token)
        parts = httpx.URL(spec["web_hook_url"])
        raw = await http.post(url + parts.raw_path.decode(), json=body, auth=call.auth)
    text = raw.text
    action_text = text[text.index('"action"') :]
    swml_at = action_text.index('"SWML"')
    transfer_at = action_text.index('"transfer":true')
    assert transfer_at < swml_at
    assert '"transfer":"true"' not in text


@pytest.mark.parametrize(
    ("action", "why"),
    [
        (  # what the SDK's FunctionResult.connect() and execute_swml(transfer=True) emit
            {
                "SWML": {"sections": {"main": [{"connect": {"to": NEXT_NUMBER}}]}},
                "transfer": "true",
            },
            "not the boolean true",
        ),
        (
            {"SWML": {"sections": {"main": [{"connect": {"to": NEXT_NUMBER}}]}}, "transfer": True},
            "comes after 'SWML'",
        ),
        (
            {
                "transfer": "true",
                "SWML": {"sections": {"main": [{"connect": {"to": NEXT_NUMBER}}]}},
            },
            "not the boolean true",
        ),
        ({"SWML": {"sections": {"main": [{"connect": {"to": NEXT_NUMBER}}]}}}, "no 'transfer'"),
    ],
)
async def test_the_platform_leaves_the_ai_on_the_call_for_any_other_shape(action, why):
    call = PlatformCall(http=None, base_url="", auth=("u", "p"))  # type: ignore[arg-type]
    call.swml = {"sections": {"main": [{"ai": {"params": {"swaig_allow_swml": True}}}]}}
    call.apply_actions("token", [action])
    assert call.ending is None
    assert len(call.failed_handoffs) == 1 and why in call.failed_handoffs[0]


async def test_the_platform_moves_the_call_for_the_documented_shape():
    call = PlatformCall(http=None, base_url="", auth=("u", "p"))  # type: ignore[arg-type]
    call.swml = {"sections": {"main": [{"ai": {"params": {"swaig_allow_swml": True}}}]}}
    call.apply_actions("token", [connect_action(NEXT_NUMBER)])
    assert call.ending is not None and call.ending.to == NEXT_NUMBER
    assert call.failed_handoffs == []


# -- on_verified ---------------------------------------------------------------------------


async def test_a_verified_caller_is_transferred_to_the_configured_number(play):
    fake, url, events = play({"handoff": {"on_verified": NEXT_NUMBER}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await verified_call(http, fake, url)
    assert ai_params(call)["swaig_allow_swml"] is True  # connect is SWML
    reply = call.transcript[-1][2]
    assert reply.tool_prompt == VERIFIED_TRANSFER
    assert reply.body["post_process"] is True  # Jim speaks before the transfer lands
    assert reply.actions[-1] == connect_action(NEXT_NUMBER)  # a phone leg: no SIP headers
    assert call.ending is not None and call.ending.kind == "transfer"
    assert call.ending.to == NEXT_NUMBER and call.ending.after_reply is True
    # The destination learns the outcome from global_data (and the webhook, below).
    assert call.global_data["mfa_verified"] is True
    assert call.global_data["mfa_verified_number_last4"] == "0001"
    assert events[-1]["outcome"] == "verified"
    assert events[-1]["handoff"] == {"kind": "transfer", "to": "***0123"}
    with pytest.raises(RuntimeError):  # the AI's part of the call is over
        await call.invoke("send_mfa")


async def test_a_verified_caller_is_transferred_to_a_sip_uri_with_headers(play):
    fake, url, events = play({"handoff": {"on_verified": SIP_DESK}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await verified_call(http, fake, url)
    expected_headers = [
        {"name": "X-MFA-Verified", "value": "true"},
        {"name": "X-MFA-Outcome", "value": "verified"},
        {"name": "X-MFA-Call-ID", "value": call.call_id},
        {"name": "X-MFA-Number", "value": "***0001"},
    ]
    reply = call.transcript[-1][2]
    assert reply.actions[-1] == connect_action(SIP_DESK, expected_headers)
    assert call.ending is not None and call.ending.to == SIP_DESK
    assert call.ending.sip_headers == {h["name"]: h["value"] for h in expected_headers}
    assert events[-1]["handoff"] == {"kind": "transfer", "to": SIP_DESK}
    assert CALLER not in str(reply.body) and CALLER.lstrip("+") not in str(reply.body)


async def test_sip_headers_cannot_be_injected_through_the_call_id(play):
    fake, url, _ = play({"handoff": {"on_verified": SIP_DESK}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=("operator", "s3cret-test-password"))
        call.call_id = "abc\r\nX-Evil: 1"
        await call.start()
        await call.invoke("send_mfa")
        await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    assert call.ending is not None
    # CR, LF and spaces are dropped: the value stays one header line.
    assert call.ending.sip_headers["X-MFA-Call-ID"] == "abcX-Evil:1"


async def test_without_a_handoff_the_caller_stays_and_tools_cannot_return_swml(play):
    fake, url, events = play({})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await verified_call(http, fake, url)
    assert ai_params(call)["swaig_allow_swml"] is False
    reply = call.transcript[-1][2]
    assert not any("SWML" in a or "hangup" in a for a in reply.actions)
    assert "post_process" not in reply.body
    assert call.ending is None and call.global_data["mfa_verified"] is True
    assert events[-1]["handoff"] is None


# -- on_failed -----------------------------------------------------------------------------

ONE_SEND = {"limits": {"sends_per_call": 1}, "code": {"max_attempts": 2}}


async def exhaust(call: PlatformCall, fake: Any) -> None:
    await call.invoke("send_mfa")
    wrong = wrong_code(fake.last_code_for(CALLER))
    for _ in range(2):
        await call.invoke("verify_mfa", token=wrong)


async def test_a_failed_call_with_no_send_left_is_hung_up_after_a_goodbye(play):
    fake, url, events = play({**ONE_SEND, "handoff": {"on_failed": "hangup"}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await exhaust(call, fake)
    assert ai_params(call)["swaig_allow_swml"] is False  # a hang-up is not SWML
    reply = call.transcript[-1][2]
    assert reply.tool_prompt == GOODBYE
    assert reply.body["post_process"] is True
    assert reply.actions[-1] == {"hangup": True}
    assert call.ending is not None and call.ending.kind == "hangup"
    assert [e["outcome"] for e in events] == ["code_sent", "wrong_code", "exhausted"]
    assert events[-1]["handoff"] == "hangup"


async def test_a_failed_call_is_transferred_to_the_desk(play):
    fake, url, events = play({**ONE_SEND, "handoff": {"on_failed": DESK_NUMBER}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await exhaust(call, fake)
    reply = call.transcript[-1][2]
    assert reply.tool_prompt == TO_DESK
    assert reply.actions[-1] == connect_action(DESK_NUMBER)
    assert call.ending is not None and call.ending.to == DESK_NUMBER
    assert call.global_data["mfa_verified"] is False
    assert events[-1]["handoff"] == {"kind": "transfer", "to": "***0199"}


async def test_an_expired_code_with_no_send_left_goes_to_a_sip_desk(play):
    fake, url, _ = play({**ONE_SEND, "handoff": {"on_failed": SIP_DESK}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        fake.clock_offset = 601  # past valid_for (600 s)
        reply = await call.invoke("verify_mfa", token=code)
    assert reply.tool_prompt == TO_DESK
    assert call.ending is not None and call.ending.to == SIP_DESK
    assert call.ending.sip_headers["X-MFA-Verified"] == "false"
    assert call.ending.sip_headers["X-MFA-Outcome"] == "expired"


async def test_no_failed_handoff_while_a_new_code_can_still_be_sent(play):
    fake, url, events = play(
        {
            "limits": {"sends_per_call": 2},
            "code": {"max_attempts": 2},
            "handoff": {"on_failed": "hangup"},
        }
    )
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await exhaust(call, fake)
        first = call.transcript[-1][2]
        assert first.tool_prompt.endswith("Offer to text a new code.")
        assert call.ending is None and events[-1]["handoff"] is None
        await exhaust(call, fake)  # the second and last code of this call
    assert call.ending is not None and call.ending.kind == "hangup"


async def test_a_failed_handoff_does_not_apply_to_a_verified_call(play):
    fake, url, events = play({**ONE_SEND, "handoff": {"on_failed": "hangup"}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await verified_call(http, fake, url)
    assert call.ending is None and events[-1]["handoff"] is None


# -- per-turn speech timing and history ----------------------------------------------------


async def test_end_of_speech_is_longer_while_a_code_is_pending_and_reset_after(play):
    fake, url, _ = play({"call": {"end_of_speech_ms": 650, "end_of_speech_pending_ms": 2100}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        assert ai_params(call)["end_of_speech_timeout"] == 650  # the SWML's own stays normal
        await call.invoke("send_mfa")
        assert call.end_of_speech_timeouts == [2100]
        await call.invoke("verify_mfa", token=wrong_code(fake.last_code_for(CALLER)))
        assert call.end_of_speech_timeouts == [2100]  # still pending: no change
        await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        assert call.end_of_speech_timeouts == [2100, 650]


async def test_verify_calls_are_replaced_in_history_without_the_code(play):
    fake, url, _ = play({})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        sent = await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        wrong = await call.invoke("verify_mfa", token=wrong_code(code))
        right = await call.invoke("verify_mfa", token=code)
    assert not any("replace_in_history" in a for a in sent.actions)
    notes = [
        next(a["replace_in_history"] for a in r.actions if "replace_in_history" in a)
        for r in (wrong, right)
    ]
    assert notes == [
        "(verify_mfa checked a code the caller gave: status: wrong code; tries left: 2)",
        "(verify_mfa checked a code the caller gave: status: verified)",
    ]
    # The status line is apart from what the model is told to say.
    assert right.body["response"]["tool_result"] == "status: verified"
    assert code not in str(right.body) and wrong_code(code) not in str(wrong.body)


async def test_the_outcome_webhook_tells_the_destination_about_the_transfer(
    fake_signalwire, make_settings, serve_agent
):

    fake, sw_url = fake_signalwire
    receiver = Receiver()
    with ServerThread(receiver.app()) as hook:
        settings = make_settings(
            signalwire_url=sw_url,
            config={"handoff": {"on_verified": NEXT_NUMBER}},
            MFA_OUTCOME_WEBHOOK_URL=hook.url + "/hook",
            MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
        )
        url = serve_agent(build_agent(settings))
        async with httpx.AsyncClient(timeout=15) as http:
            call = await verified_call(http, fake, url)
        for _ in range(250):
            if receiver.count():
                break
            await asyncio.sleep(0.02)
    (got,) = receiver.received
    assert got["valid"] is True
    payload = json.loads(got["body"])
    assert payload["call_id"] == call.call_id and payload["outcome"] == "verified"
    assert payload["handoff"] == {"kind": "transfer", "to": "***0123"}
    assert NEXT_NUMBER not in got["body"].decode()


async def test_a_retried_verify_gets_the_same_transfer(play):
    """The platform sends a request again when the answer was lost: the retry's reply must
    carry the same handoff, or the caller would stay on the line with nowhere to go."""
    fake, url, events = play({"handoff": {"on_verified": SIP_DESK}})
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        spec = call.functions["verify_mfa"]
        body = call.request_body(
            "verify_mfa", {"token": fake.last_code_for(CALLER)}, spec["meta_data_token"]
        )
        first = await call.post_to_webhook(spec["web_hook_url"], body)
        again = await call.post_to_webhook(spec["web_hook_url"], body)  # the answer was lost
    assert first.body == again.body
    assert first.tool_prompt == VERIFIED_TRANSFER
    assert [e["outcome"] for e in events][-2:] == ["verified", "replayed"]
    assert events[-1]["handoff"] == {"kind": "transfer", "to": SIP_DESK}
