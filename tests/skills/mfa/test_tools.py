"""The two tools driven directly: SignalWire-shaped requests in, one event and one reply out.

No HTTP and no SDK server: ``MfaTools`` gets the scripted provider, real limits on a
fake clock and a real publisher. Every expected text, action and event field is
written out here rather than taken from ``messages`` or ``tools``, so a changed
sentence, a lost action or a second event fails a test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from skills.mfa.delivery.providers.base import CodeNotFound, ProviderRejected, ProviderUnavailable
from skills.mfa.events import EventPublisher
from skills.mfa.flow.tools import CodePolicy, MfaTools
from skills.mfa.ledgers.code_ledger import InProcessCodeLedger
from skills.mfa.ledgers.replay import Found, InProcessAnswerStore, ReplayClaim
from skills.mfa.limits.send_limits import (
    CounterStoreUnavailable,
    InProcessCounterStore,
    Refusal,
    Rule,
    SendLimiter,
    SendLimits,
)
from tests.support.fakes import T0, FakeClock, ScriptedProvider

pytestmark = pytest.mark.anyio

CALLER = "+15551230001"
RIGHT_CODE = "123456"  # the one code ScriptedProvider accepts
VERIFIED_AT = "2027-01-15T08:00:00+00:00"  # FakeClock's T0, 1_800_000_000 s after the epoch

POLICY = CodePolicy(
    message="Your code:",
    token_length=6,
    valid_for=600,
    max_attempts=3,
    allow_other_numbers=False,
    default_region="US",
)
KEY = bytes(range(32))  # the server key the tools seal meta_data with


def mac(*fields: object) -> str:
    """The documented binding formula, computed here rather than by the product."""
    message = json.dumps(list(fields), separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(KEY, message, hashlib.sha256).hexdigest()


def sealed(
    request_id: str = "req-1",
    attempts: int = 3,
    *,
    call_id: str = "call-1",
    last4: str = "0001",
    sent_at: int = int(T0),
) -> dict[str, object]:
    """The meta_data of a pending code, as the agent writes it for ``call_id``."""
    return {
        "mfa_request_id": request_id,
        "mfa_attempts_left": attempts,
        "mfa_number_last4": last4,
        "mfa_sent_at": sent_at,
        "mfa_binding": mac("mfa-binding-v1", call_id, request_id, attempts, last4, sent_at, None),
    }


def closed_marker_ok(marker: str, call_id: str = "call-1") -> bool:
    match = re.fullmatch(r"([0-9a-f]{16})\.([0-9a-f]{64})", marker)
    return match is not None and match.group(2) == mac("mfa-closed-v1", call_id, match.group(1))


def closing(reply: dict[str, object], call_id: str = "call-1") -> dict[str, object]:
    """The reply with its (random, sealed) mfa_closed marker checked and replaced."""
    if "action" not in reply:
        return reply
    actions = []
    for action in reply["action"]:  # type: ignore[union-attr]
        meta = action.get("set_meta_data", {})
        if "mfa_closed" in meta:
            assert closed_marker_ok(meta["mfa_closed"], call_id)
            action = {"set_meta_data": {**meta, "mfa_closed": "<sealed>"}}
        actions.append(action)
    return {**reply, "action": actions}


PENDING = sealed()
CLOSED = {"set_meta_data": {"mfa_closed": "<sealed>"}}
# One action per key: SWML's schema types ``unset_meta_data`` as a string, not a list.
UNSET_ALL = [
    {"unset_meta_data": key}
    for key in (
        "mfa_request_id",
        "mfa_attempts_left",
        "mfa_number_last4",
        "mfa_sent_at",
        "mfa_account",
        "mfa_channel",
        "mfa_binding",
    )
]

SENT = (
    "A code was texted to the phone number ending in 0 0 0 1. It is good for 10 minutes. "
    "Ask the caller to read it out or type it on the keypad followed by the pound key."
)
UNAVAILABLE = (
    "The verification service did not answer in time, so nothing changed. "
    "Apologise briefly and offer to try again in a moment."
)
MISCONFIGURED = (
    "The verification service is not available right now because of a setup problem on "
    "our side. Apologise and tell the caller they can try again later."
)
GENERIC = (
    "Something went wrong on our side and nothing was changed. Apologise and offer to try again."
)


@dataclass
class Rig:
    tools: MfaTools
    provider: ScriptedProvider
    clock: FakeClock
    events: list[dict[str, Any]] = field(default_factory=list)

    def only_event(self) -> dict[str, Any]:
        """The one event of the last invocation, without its timing fields."""
        assert len(self.events) == 1, self.events
        event = dict(self.events.pop())
        assert isinstance(event.pop("at"), float)
        assert event.pop("duration_ms") >= 0
        return event


def make_rig(
    *,
    policy: CodePolicy = POLICY,
    limits: SendLimits | None = None,
    store: Any = None,
) -> Rig:
    clock = FakeClock()
    provider = ScriptedProvider()
    publisher = EventPublisher()
    # One clock for every in-process store: counters, replay records, the code ledger.
    limiter = SendLimiter(
        store or InProcessCounterStore(clock=clock),
        limits or SendLimits(),
        agent_id="jim",
        clock=clock,
    )
    tools = MfaTools(
        provider=provider,
        policy=policy,
        publisher=publisher,
        agent_id="jim",
        limiter=limiter,
        binding_key=KEY,
        clock=clock,
    )
    rig = Rig(tools, provider, clock)
    publisher.subscribe(lambda event: rig.events.append(event.to_dict()))
    return rig


def swaig(
    function: str,
    args: dict[str, Any] | None = None,
    *,
    meta: dict[str, Any] | None = None,
    caller: str | None = CALLER,
    call_id: str = "call-1",
) -> dict[str, Any]:
    """A SWAIG request body as the platform posts it (``meta_data`` is ``{}`` until set)."""
    body: dict[str, Any] = {
        "function": function,
        "argument": {"parsed": [args or {}], "raw": json.dumps(args or {})},
        "call_id": call_id,
        "ai_session_id": "session-1",
        "caller_id_name": "Test Caller",
        "meta_data_token": "mfa_skill",
        "meta_data": dict(meta or {}),
        "global_data": {"mfa_verified": False},
        "content_type": "text/swaig",
        "version": "2.0",
        "conversation_type": "voice",
    }
    if caller is not None:
        body["caller_id_num"] = caller
    return body


async def send(rig: Rig, args: dict[str, Any] | None = None, **request: Any) -> dict[str, Any]:
    result = await rig.tools.send_mfa(args or {}, swaig("send_mfa", args, **request))
    return result.to_dict()


async def verify(
    rig: Rig, token: str, meta: dict[str, Any] | None = None, call_id: str = "call-1"
) -> dict[str, Any]:
    args = {"token": token}
    meta = PENDING if meta is None else meta
    result = await rig.tools.verify_mfa(args, swaig("verify_mfa", args, meta=meta, call_id=call_id))
    return closing(result.to_dict(), call_id)


def event(
    tool: str, outcome: str, masked: str, attempts_left: int | None = None, channel: str = ""
) -> dict:
    """The event's fields that do not vary; ``channel`` ("sms") once a code is known."""
    fields = {
        "agent_id": "jim",
        "call_id": "call-1",
        "tool": tool,
        "outcome": outcome,
        "masked_number": masked,
        "provider": "scripted",
        "attempts_left": attempts_left,
        "handoff": None,
    }
    return {**fields, "channel": channel} if channel else fields


# -- send_mfa -----------------------------------------------------------------------------


async def test_code_sent_to_the_caller():
    rig = make_rig()
    assert await send(rig) == {"response": SENT, "action": [{"set_meta_data": sealed("req-1")}]}
    assert rig.only_event() == event("send_mfa", "code_sent", "***0001", 3, channel="sms")
    assert rig.provider.calls == 1


async def test_the_callers_own_number_written_another_way_is_the_callers():
    rig = make_rig()
    assert (await send(rig, {"phone_number": "(555) 123-0001"}))["response"] == SENT
    assert rig.only_event()["outcome"] == "code_sent"


async def test_resend_after_the_cooldown_replaces_the_pending_code():
    rig = make_rig()
    await send(rig)
    rig.events.clear()
    rig.clock.advance(31)
    reply = await send(rig, meta=PENDING)
    assert reply == {
        "response": SENT + " This new code replaces the earlier one, which no longer works.",
        "action": [{"set_meta_data": sealed("req-2", sent_at=int(T0) + 31)}],
    }
    assert rig.only_event() == event("send_mfa", "code_sent", "***0001", 3, channel="sms")


async def test_another_number_is_refused_and_never_named():
    rig = make_rig()
    reply = await send(rig, {"phone_number": "+15551230002"})
    assert reply == {
        "response": "For security, a code can only be texted to the phone number the caller is "
        "calling from. No code was sent. Offer to text the calling number instead."
    }
    assert rig.only_event() == event("send_mfa", "other_number_refused", "unknown")
    assert rig.provider.calls == 0


async def test_no_caller_number():
    rig = make_rig()
    reply = await send(rig, caller="anonymous")
    assert reply == {
        "response": "I cannot see a phone number that can receive a text on this call, so no "
        "code was sent. Apologise and explain that verification needs a call from a mobile "
        "phone."
    }
    assert rig.only_event() == event("send_mfa", "no_caller_number", "unknown")
    assert rig.provider.calls == 0


async def test_unparsable_number_when_other_numbers_are_allowed():
    rig = make_rig(
        policy=CodePolicy(
            message="Your code:",
            token_length=6,
            valid_for=600,
            max_attempts=3,
            allow_other_numbers=True,
            default_region="US",
        )
    )
    reply = await send(rig, {"phone_number": "12"})
    assert reply == {
        "response": "That does not look like a phone number that can receive texts. "
        "No code was sent."
    }
    assert rig.only_event() == event("send_mfa", "invalid_number", "unknown")
    assert rig.provider.calls == 0


async def test_country_outside_the_allowed_codes_is_refused():
    rig = make_rig()
    reply = await send(rig, caller="+447700900123")
    assert reply == {
        "response": "Codes cannot be texted to phone numbers in that country, so no code was "
        "sent. Apologise and ask if there is anything else you can help with."
    }
    assert rig.only_event() == event("send_mfa", "country_refused", "***0123")
    assert rig.provider.calls == 0


async def test_premium_rate_number_is_refused():
    rig = make_rig()
    reply = await send(rig, caller="+19005551234")
    assert reply == {
        "response": "That phone number cannot receive text messages, so no code was sent. "
        "Apologise and explain that verification needs a mobile phone."
    }
    assert rig.only_event() == event("send_mfa", "number_type_refused", "***1234")
    assert rig.provider.calls == 0


async def test_resend_within_the_cooldown_is_refused_and_keeps_the_pending_code():
    rig = make_rig()
    await send(rig)
    rig.events.clear()
    rig.clock.advance(10)
    reply = await send(rig, meta=PENDING)
    assert reply == {
        "response": "A code was sent moments ago and texts can take a little while, so no new "
        "code was sent yet. Tell the caller a new code can be sent in about 20 seconds, ask them "
        "to check their messages meanwhile, and offer to send a new one once that time has passed."
    }
    assert rig.only_event() == {
        **event("send_mfa", "rate_limited", "***0001"),
        "limit": "call_cooldown",
    }
    assert rig.provider.calls == 1


@pytest.mark.parametrize(
    ("limits", "second", "text"),
    [
        (
            SendLimits(sends_per_call=1),
            {"meta": sealed("req-1")},  # the first answer applied: a resend, not a retry
            "That is as many codes as can be sent on one call, so no new code was sent. Ask the "
            "caller to use the latest code they received, or to call back later.",
        ),
        (
            SendLimits(per_recipient_per_hour=1),
            {"call_id": "call-1"},
            "Too many codes have gone to this phone number recently, so no code was sent. "
            "Apologise and ask the caller to try again later.",
        ),
        (
            SendLimits(agent_sends_per_minute=1),
            {"call_id": "call-1"},
            "The verification service is very busy right now, so no code was sent. Apologise "
            "and ask the caller to try again in a few minutes.",
        ),
    ],
    ids=["per-call", "per-recipient", "agent-rate"],
)
async def test_send_limits_refuse_without_sending(limits, second, text):
    rig = make_rig(limits=limits)
    # The first send comes from another call unless the rule is about this call.
    await send(rig, call_id="call-1" if "meta" in second else "call-0")
    rig.events.clear()
    rig.clock.advance(31)  # past the resend cooldown
    assert await send(rig, **second) == {"response": text}
    refused = rig.only_event()
    assert refused.pop("limit") in ("call_sends", "recipient_hour", "agent_rate")
    assert refused == event("send_mfa", "rate_limited", "***0001")
    assert rig.provider.calls == 1


class DownStore:
    """A counter store that cannot be reached (Redis down)."""

    answers = InProcessAnswerStore()
    ledger = InProcessCodeLedger(clock=FakeClock())

    async def acquire(
        self,
        rules: Sequence[Rule],
        now: float,
        *,
        member: str = "",
        claim: ReplayClaim | None = None,
    ) -> Refusal | Found | None:
        raise CounterStoreUnavailable("redis")

    async def refund(self, rules: Sequence[Rule], now: float, member: str) -> None:
        raise CounterStoreUnavailable("redis")


async def test_unreachable_counters_fail_closed():
    rig = make_rig(store=DownStore())
    assert await send(rig) == {"response": UNAVAILABLE}
    assert rig.only_event() == event("send_mfa", "send_failed", "***0001")
    assert rig.provider.calls == 0


@pytest.mark.parametrize(
    ("error", "outcome", "text"),
    [
        (
            ProviderRejected(422, "Invalid Attribute"),
            "provider_rejected",
            "The text could not be sent to that number. Nothing was sent. Apologise and ask if "
            "there is anything else you can help with.",
        ),
        (ProviderRejected(401, "Unauthorized"), "provider_rejected", MISCONFIGURED),
        (
            ProviderUnavailable("timeout", may_have_arrived=True),
            "send_failed",
            "The verification service did not confirm the text, so there is no code to check "
            "on this call. If a text arrives anyway, its code will not work here: tell the "
            "caller to ignore it, and offer to send a new one.",
        ),
        (ProviderUnavailable("connect", may_have_arrived=False), "send_failed", UNAVAILABLE),
    ],
    ids=["422", "401", "maybe-sent", "not-sent"],
)
async def test_provider_failures_on_send(error, outcome, text):
    rig = make_rig()
    rig.provider.then(error)
    assert await send(rig) == {"response": text}  # no request id stored
    assert rig.only_event() == event("send_mfa", outcome, "***0001")


# -- verify_mfa ---------------------------------------------------------------------------


async def test_right_code_verifies_and_ends_the_pending_request():
    rig = make_rig()
    reply = await verify(rig, "one two three four five six")
    assert reply == {
        "response": "The code is correct: the caller is verified. Tell them, then ask what else "
        "you can do.",
        "action": [
            {
                "set_global_data": {
                    "mfa_verified": True,
                    "mfa_verified_at": VERIFIED_AT,
                    "mfa_verified_number_last4": "0001",
                }
            },
            CLOSED,
            *UNSET_ALL,
        ],
    }
    assert rig.only_event() == event("verify_mfa", "verified", "***0001", channel="sms")
    assert rig.provider.calls == 1


@pytest.mark.parametrize(
    ("stored_tries", "left", "text"),
    [
        (3, 2, "That code is not correct. The caller has 2 tries left."),
        (2, 1, "That code is not correct. The caller has 1 try left."),
    ],
)
async def test_wrong_code_counts_down(stored_tries, left, text):
    rig = make_rig()
    reply = await verify(rig, "654321", sealed(attempts=stored_tries))
    assert reply == {
        "response": text + " Ask them to check the text message and read the code again.",
        "action": [
            {
                "set_meta_data": {
                    "mfa_attempts_left": left,
                    "mfa_binding": sealed(attempts=left)["mfa_binding"],
                }
            }
        ],
    }
    assert rig.only_event() == event("verify_mfa", "wrong_code", "***0001", left, channel="sms")


async def test_wrong_code_on_the_last_try_exhausts_the_request():
    rig = make_rig()
    reply = await verify(rig, "654321", sealed(attempts=1))
    assert reply == {
        "response": "That code is not correct and there are no tries left for it. Offer to text "
        "a new code.",
        "action": [CLOSED, *UNSET_ALL],
    }
    assert rig.only_event() == event("verify_mfa", "exhausted", "***0001", 0, channel="sms")


async def test_expired_or_used_request():
    rig = make_rig()
    rig.provider.then(CodeNotFound("404"))
    assert await verify(rig, RIGHT_CODE) == {
        "response": "That code has expired, was already used, or ran out of tries. Nothing was "
        "verified. Offer to text a new code.",
        "action": [CLOSED, *UNSET_ALL],
    }
    assert rig.only_event() == event("verify_mfa", "expired", "***0001", channel="sms")


async def test_malformed_code_is_not_sent_upstream_and_costs_no_try():
    rig = make_rig()
    assert await verify(rig, "one two three") == {
        "response": "I did not catch a 6-digit code there, so nothing was checked and no try was "
        "used. Ask the caller to say the 6 digits again, one at a time, or to type them on the "
        "keypad followed by pound."
    }
    assert rig.only_event() == event("verify_mfa", "malformed_code", "***0001", channel="sms")
    assert rig.provider.calls == 0


async def test_verify_before_any_send():
    rig = make_rig()
    assert await verify(rig, RIGHT_CODE, meta={}) == {
        "response": "No code has been sent on this call yet. Offer to text one to the caller's "
        "phone."
    }
    assert rig.only_event() == event("verify_mfa", "no_code_sent", "unknown")
    assert rig.provider.calls == 0


@pytest.mark.parametrize(
    ("error", "outcome", "text"),
    [
        (ProviderRejected(401, "Unauthorized"), "provider_rejected", MISCONFIGURED),
        (
            ProviderUnavailable("timeout", may_have_arrived=True),
            "provider_unavailable",
            UNAVAILABLE,
        ),
    ],
    ids=["rejected", "unavailable"],
)
async def test_provider_failures_on_verify_keep_the_pending_request(error, outcome, text):
    rig = make_rig()
    rig.provider.then(error)
    assert await verify(rig, RIGHT_CODE) == {"response": text}  # no unset: the id is kept
    assert rig.only_event() == event("verify_mfa", outcome, "***0001", channel="sms")


# -- the tool boundary --------------------------------------------------------------------

LEAKY = RuntimeError("boom for +15551230001 with token 123456 and request req-1")


async def test_unexpected_failure_on_send_gives_the_generic_answer_only():
    rig = make_rig()
    rig.provider.then(LEAKY)
    reply = await send(rig)
    assert reply == {"response": GENERIC}
    assert "boom" not in json.dumps(reply)
    # The number was settled before the failure, so the event still names its last digits.
    assert rig.only_event() == event("send_mfa", "error", "***0001")


async def test_unexpected_failure_on_verify_gives_the_generic_answer_only():
    rig = make_rig()
    rig.provider.then(LEAKY)
    reply = await verify(rig, RIGHT_CODE)
    assert reply == {"response": GENERIC}
    assert "boom" not in json.dumps(reply)
    assert rig.only_event() == event("verify_mfa", "error", "***0001", channel="sms")


async def test_request_that_is_not_an_object_is_answered_not_raised():
    rig = make_rig()
    result = await rig.tools.send_mfa([], ["not", "a", "dict"])  # type: ignore[arg-type]
    assert result.to_dict()["response"].startswith("I cannot see a phone number")
    assert rig.only_event() == {**event("send_mfa", "no_caller_number", "unknown"), "call_id": ""}


# -- both tools, meta_data carried the way the platform carries it -----------------------


async def test_send_then_verify_with_the_stored_meta_data():
    rig = make_rig()
    sent = await send(rig)
    meta = sent["action"][0]["set_meta_data"]
    rig.events.clear()
    wrong = await verify(rig, "000000", meta)
    meta = {**meta, **wrong["action"][0]["set_meta_data"]}
    rig.events.clear()
    right = await verify(rig, RIGHT_CODE, meta)
    assert right["action"][0]["set_global_data"]["mfa_verified"] is True
    assert right["action"][1:] == [CLOSED, *UNSET_ALL]
    assert rig.only_event() == event("verify_mfa", "verified", "***0001", channel="sms")


async def test_a_burst_against_the_agent_rate_cap_logs_one_alert_not_one_per_send(caplog):
    """36k error lines in 3 minutes was an attacker's lever on the log: the alert is
    throttled to one line a minute (with a count), whatever the number of refusals."""
    rig = make_rig(limits=SendLimits(agent_sends_per_minute=1))
    caplog.set_level(logging.INFO, logger="mfa.alerts")
    await send(rig, call_id="call-0")
    for n in range(50):
        reply = await send(rig, call_id=f"call-{n + 1}")
        assert "very busy" in reply["response"]
    alerts = [r for r in caplog.records if r.getMessage() == "agent_send_rate_cap_reached"]
    assert len(alerts) <= 1
