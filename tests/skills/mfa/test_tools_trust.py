"""The tools at the trust boundary: sealed meta_data, retried requests, refunded sends.

Driven like ``test_tools.py`` (scripted provider, real limits on a fake clock); the
expected MACs come from that module's ``mac``/``sealed``, which compute the documented
formula with ``hmac`` directly.
"""

from __future__ import annotations

import asyncio

import pytest

from skills.mfa.delivery.providers.base import CodeNotFound, ProviderUnavailable
from skills.mfa.events import FINAL_OUTCOMES, Outcome
from skills.mfa.limits.send_limits import InProcessCounterStore, SendLimits
from tests.skills.mfa.test_tools import (
    RIGHT_CODE,
    SENT,
    Rig,
    event,
    make_rig,
    sealed,
    send,
    swaig,
    verify,
)

pytestmark = pytest.mark.anyio

NO_CODE = {
    "response": "No code has been sent on this call yet. Offer to text one to the caller's phone."
}


def outcomes(rig: Rig) -> list[str]:
    found = [e["outcome"] for e in rig.events]
    rig.events.clear()
    return found


# -- finding 1: meta_data bound to the call ------------------------------------------------


async def test_meta_data_copied_from_another_call_is_refused_and_nothing_goes_upstream():
    rig = make_rig()
    copied = sealed("req-1", call_id="call-a")
    assert await verify(rig, RIGHT_CODE, copied, call_id="call-b") == NO_CODE
    assert rig.provider.calls == 0
    tampered = rig.only_event()
    assert tampered == {**event("verify_mfa", "tampered", "unknown"), "call_id": "call-b"}
    # The owner's code is untouched: call A still verifies with it.
    reply = await verify(rig, RIGHT_CODE, copied, call_id="call-a")
    assert "caller is verified" in reply["response"]


async def test_a_send_with_altered_meta_data_texts_nothing():
    rig = make_rig()
    altered = {**sealed(), "mfa_number_last4": "9999"}
    reply = await send(rig, meta=altered)
    assert reply["response"].startswith("No code was sent just now.")
    # The claim is cleared, or every later send on the call would be refused the same way.
    # One unset action per key (SWML's schema types the value as a string).
    unset = [action["unset_meta_data"] for action in reply["action"]]
    assert sorted(unset) == sorted({*altered, "mfa_account", "mfa_channel", "mfa_closed"})
    assert rig.provider.calls == 0
    assert rig.only_event() == event("send_mfa", "tampered", "unknown")
    # With the claim cleared, the caller's next request for a code is texted.
    rig.events.clear()
    reply = await send(rig, meta={})
    assert "A code was texted" in reply["response"]
    assert rig.provider.calls == 1


async def test_a_megabyte_field_is_refused_and_echoed_nowhere():
    rig = make_rig()
    huge = "7" * 1_000_000
    reply = await verify(rig, RIGHT_CODE, {**sealed(), "mfa_number_last4": huge})
    assert reply == NO_CODE
    assert rig.only_event()["masked_number"] == "unknown"
    assert len(rig.tools._replays.store) == 0  # nothing claimed, nothing stored


def test_the_new_outcomes_are_not_final():
    # Neither may trigger an outcome webhook delivery or a second final count.
    assert Outcome.META_REFUSED not in FINAL_OUTCOMES
    assert Outcome.REPLAYED not in FINAL_OUTCOMES


# -- finding 2: the same answer to the same request ---------------------------------------


async def test_a_verify_retried_after_success_gets_the_same_answer_without_upstream():
    rig = make_rig()
    first = await verify(rig, RIGHT_CODE)
    rig.clock.advance(120)  # the platform retries after its timeout
    again = await verify(rig, "one two three four five six")  # the same code, normalised
    assert again == first  # same text, same global_data (mfa_verified_at), same closing
    assert rig.provider.calls == 1
    assert outcomes(rig) == ["verified", "replayed"]


async def test_a_wrong_code_retried_gets_the_same_tries_left():
    rig = make_rig()
    first = await verify(rig, "654321")
    again = await verify(rig, "654321")
    assert again == first and "2 tries left" in first["response"]
    assert rig.provider.calls == 1
    # Applied, the same wrong code again is a new attempt (the prior state changed).
    applied = {**sealed(), **first["action"][0]["set_meta_data"]}
    assert "1 try left" in (await verify(rig, "654321", applied))["response"]
    assert rig.provider.calls == 2


async def test_a_different_code_is_never_swallowed():
    rig = make_rig()
    await verify(rig, "654321")
    assert "caller is verified" in (await verify(rig, RIGHT_CODE))["response"]
    assert rig.provider.calls == 2


async def test_a_send_retried_after_a_lost_answer_texts_once_and_counts_once():
    rig = make_rig(limits=SendLimits(per_recipient_per_hour=1))
    first = await send(rig)
    again = await send(rig)
    assert again == first and first["response"] == SENT
    assert rig.provider.calls == 1
    assert outcomes(rig) == ["code_sent", "replayed"]


def applied(meta: dict, reply: dict) -> dict:
    """meta_data after the platform applied a reply's actions."""
    meta = dict(meta)
    for action in reply.get("action", []):
        meta.update(action.get("set_meta_data", {}))
        if "unset_meta_data" in action:
            meta.pop(action["unset_meta_data"], None)
    return meta


@pytest.mark.parametrize("final", ["verified", "exhausted", "expired"])
async def test_a_new_send_after_a_final_outcome_is_a_new_send(final):
    rig = make_rig()
    meta = (await send(rig))["action"][0]["set_meta_data"]
    token = RIGHT_CODE
    if final == "exhausted":
        meta, token = sealed("req-1", 1), "654321"
    if final == "expired":
        rig.provider.then(CodeNotFound("404"))
    body = swaig("verify_mfa", {"token": token}, meta=meta)
    reply = (await rig.tools.verify_mfa({"token": token}, body)).to_dict()
    meta = applied(meta, reply)
    assert list(meta) == ["mfa_closed"]  # not the empty meta_data of a fresh call
    rig.events.clear()
    rig.clock.advance(2)  # seconds later, same call
    assert await send(rig, meta=meta) == (await send(rig, meta=meta)) != {}
    assert rig.provider.calls == 3  # send, verify, the new send (its retry replayed)
    assert outcomes(rig) == ["code_sent", "replayed"]


async def test_concurrent_duplicates_reach_the_provider_once():
    rig = make_rig()
    rig.provider.gate = asyncio.Event()
    first = asyncio.create_task(verify(rig, RIGHT_CODE))
    await asyncio.wait_for(rig.provider.started.wait(), 5)  # never hang on a regression
    second = asyncio.create_task(verify(rig, RIGHT_CODE))
    await asyncio.sleep(0.1)  # the duplicate finds the claim and waits
    rig.provider.gate.set()
    assert await first == await second
    assert rig.provider.calls == 1


# -- finding 3: only what may have been sent is charged -------------------------------------


@pytest.mark.parametrize("kind", ["circuit_open", "connect"])
async def test_a_send_that_never_left_costs_no_budget(kind):
    rig = make_rig(limits=SendLimits(per_recipient_per_hour=1, sends_per_call=1))
    rig.provider.then(ProviderUnavailable(kind, may_have_arrived=False))
    failed = await send(rig)
    assert "did not answer in time, so nothing changed" in failed["response"]
    # The outage is over: the same number, the same call, texted at once.
    assert (await send(rig))["response"] == SENT
    assert rig.provider.calls == 2


async def test_a_send_that_may_have_left_is_charged():
    rig = make_rig(limits=SendLimits(per_recipient_per_hour=1))
    rig.provider.then(ProviderUnavailable("timeout", may_have_arrived=True))
    await send(rig, call_id="call-0")
    assert "Too many codes" in (await send(rig))["response"]
    assert rig.provider.calls == 1


async def test_a_refund_is_taken_once_and_never_below_zero():
    store = InProcessCounterStore()
    rig = make_rig(limits=SendLimits(per_recipient_per_hour=2), store=store)
    limiter = rig.tools._limiter
    assert limiter is not None
    ticket = await limiter.reserve("call-x", "+15551230001", replaces_pending=False)
    await limiter.refund(ticket)
    await limiter.refund(ticket)
    await store.refund(ticket.rules, ticket.now, ticket.member)  # a stray extra refund
    assert await limiter.try_send("call-y", "+15551230001", replaces_pending=False) is None
    assert await limiter.try_send("call-z", "+15551230001", replaces_pending=False) is None
    refusal = await limiter.try_send("call-w", "+15551230001", replaces_pending=False)
    assert refusal is not None


# -- finding 4: per-call limits keyed by the body's call_id ----------------------------------


async def test_per_call_limits_are_keyed_by_the_call_id_not_the_session():
    rig = make_rig(limits=SendLimits(sends_per_call=1))
    await send(rig, call_id="call-1")
    rig.clock.advance(31)
    # Another ai_session/conversation but the same call_id: the same call's budget.
    body = swaig("send_mfa", {}, meta=sealed(), call_id="call-1")
    body["ai_session_id"] = "another-session"
    body["conversation_id"] = "another-conversation"
    reply = (await rig.tools.send_mfa({}, body)).to_dict()
    assert "as many codes as can be sent on one call" in reply["response"]
