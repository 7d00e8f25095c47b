"""Finished means finished: the tools with the code ledger, on one fake clock.

Whatever arrives for one code (retries, floods of other codes with the same sealed
``meta_data``, an older copy after a resend), at most ``max_attempts`` checks reach
the provider and exactly one final outcome (verified, exhausted, expired) is
published. Expected counts come from the policy here (3 tries), not from the product.
"""

from __future__ import annotations

import asyncio

import pytest

from skills.mfa.delivery.providers.base import CodeNotFound, ProviderUnavailable
from skills.mfa.ledgers.code_ledger import InProcessCodeLedger, LedgerUnavailable
from skills.mfa.limits.send_limits import InProcessCounterStore, SendLimits
from tests.skills.mfa.test_tools import (
    CALLER,
    PENDING,
    RIGHT_CODE,
    make_rig,
    sealed,
    send,
    swaig,
    verify,
)
from tests.support.fakes import T0

pytestmark = pytest.mark.anyio

FINAL = {"verified", "exhausted", "expired"}
MAX_ATTEMPTS = 3  # POLICY in test_tools
NO_CODE_PENDING = (
    "No code is waiting to be checked on this call: the last one was already used up. "
    "Nothing was verified. Offer to text a new code."
)
TRY_AGAIN = (
    "The verification service did not answer in time, so nothing changed. "
    "Apologise briefly and offer to try again in a moment."
)
OLDER_CODE = (
    "That was an earlier code: a newer one was texted since, and only the newest code "
    "counts. Nothing was checked. Ask the caller for the code in the most recent text."
)


def finals(events: list[dict]) -> list[str]:
    return [e["outcome"] for e in events if e["outcome"] in FINAL]


def other_codes(count: int) -> list[str]:
    """Well-formed codes that are all wrong (the scripted provider accepts 123456 only)."""
    return [f"{n:06d}" for n in range(count) if f"{n:06d}" != RIGHT_CODE]


async def test_a_sequential_flood_of_codes_makes_three_checks_and_one_final_outcome():
    rig = make_rig()
    replies = [await verify(rig, code, meta=PENDING) for code in other_codes(200)]
    assert rig.provider.calls == MAX_ATTEMPTS
    assert finals(rig.events) == ["exhausted"]
    # The first three are the three tries (the ledger counts them, not the claim).
    assert ["2 tries left" in r["response"] for r in replies[:2]] == [True, False]
    assert "1 try left" in replies[1]["response"]
    assert all(r["response"] == NO_CODE_PENDING for r in replies[3:])


async def test_a_parallel_flood_of_codes_makes_three_checks_and_one_final_outcome():
    rig = make_rig()
    rig.provider.gate = asyncio.Event()  # hold every check until all have arrived
    codes = other_codes(200)
    flood = [asyncio.create_task(verify(rig, code, meta=PENDING)) for code in codes]
    await asyncio.sleep(0.05)
    rig.provider.gate.set()
    replies = await asyncio.gather(*flood)
    assert rig.provider.calls == MAX_ATTEMPTS
    assert finals(rig.events) == ["exhausted"]
    assert sum(r["response"] == TRY_AGAIN for r in replies) == len(codes) - MAX_ATTEMPTS
    # After the flood: the code is finished, at once and without a check.
    assert (await verify(rig, RIGHT_CODE, meta=PENDING))["response"] == NO_CODE_PENDING
    assert rig.provider.calls == MAX_ATTEMPTS


async def test_a_verified_code_is_never_checked_again_and_never_final_twice():
    rig = make_rig()
    assert "verified" in (await verify(rig, RIGHT_CODE, meta=PENDING))["response"]
    for code in [RIGHT_CODE + "", "000000", "999999"]:
        reply = await verify(rig, code, meta=PENDING)
        if code == RIGHT_CODE:
            assert "verified" in reply["response"]  # the platform's retry: the same reply
        else:
            assert reply["response"] == NO_CODE_PENDING
    assert rig.provider.calls == 1
    assert finals(rig.events) == ["verified"]


async def test_parallel_checks_ending_in_two_finals_publish_only_the_first():
    # Two checks of one code in flight: the right code (verified) and a last wrong one
    # (exhausted). Whichever ends second gets the first's answer, replayed.
    rig = make_rig()
    assert "2 tries left" in (await verify(rig, "000001", meta=PENDING))["response"]
    rig.provider.gate = asyncio.Event()
    meta = sealed(attempts=2)
    both = [
        asyncio.create_task(verify(rig, RIGHT_CODE, meta=meta)),
        asyncio.create_task(verify(rig, "000002", meta=meta)),
    ]
    await asyncio.sleep(0.05)
    rig.provider.gate.set()
    replies = await asyncio.gather(*both)
    assert rig.provider.calls == MAX_ATTEMPTS
    assert len(finals(rig.events)) == 1
    assert [e["outcome"] for e in rig.events].count("replayed") == 1
    assert replies[0] == replies[1]  # one answer for the code, whichever won


async def test_an_expired_code_is_final_once():
    rig = make_rig()
    rig.provider.then(CodeNotFound("gone"))
    assert "expired" in (await verify(rig, "000001", meta=PENDING))["response"]
    assert (await verify(rig, "000002", meta=PENDING))["response"] == NO_CODE_PENDING
    assert rig.provider.calls == 1
    assert finals(rig.events) == ["expired"]


async def test_an_older_sealed_state_after_a_resend_is_refused_without_a_check():
    rig = make_rig()
    await send(rig)
    rig.clock.advance(31)
    resent = await send(rig, meta=PENDING)
    newest = resent["action"][0]["set_meta_data"]
    calls = rig.provider.calls
    reply = await verify(rig, RIGHT_CODE, meta=PENDING)  # the first code's state
    assert reply == {"response": OLDER_CODE}
    assert rig.provider.calls == calls
    assert rig.events[-1]["outcome"] == "superseded"
    assert "verified" in (await verify(rig, RIGHT_CODE, meta=newest))["response"]


async def test_a_check_that_never_reached_the_provider_costs_the_code_no_try():
    rig = make_rig()
    closed = ProviderUnavailable("circuit_open", may_have_arrived=False)
    rig.provider.then(closed, closed, closed, closed)
    for _ in range(4):
        assert (await verify(rig, "000001", meta=PENDING))["response"] == TRY_AGAIN
    assert "verified" in (await verify(rig, RIGHT_CODE, meta=PENDING))["response"]


async def test_checks_that_may_have_arrived_spend_the_code():
    # Three timeouts: each may have used a try upstream. The fourth request is not
    # sent: the code is spent, final once, as exhausted.
    rig = make_rig()
    timeout = ProviderUnavailable("timeout", may_have_arrived=True)
    rig.provider.then(timeout, timeout, timeout)
    for code in ["000001", "000002", "000003"]:
        assert (await verify(rig, code, meta=PENDING))["response"] == TRY_AGAIN
    spent = await verify(rig, RIGHT_CODE, meta=PENDING)
    assert "no tries left" in spent["response"] or "No tries left" in spent["response"]
    assert rig.provider.calls == MAX_ATTEMPTS
    assert finals(rig.events) == ["exhausted"]
    assert (await verify(rig, "000004", meta=PENDING))["response"] == NO_CODE_PENDING


async def test_a_state_long_past_its_validity_is_answered_without_the_ledger():
    rig = make_rig()
    rig.clock.advance(600 + 1800 + 1)  # valid_for, then the late margin
    assert (await verify(rig, RIGHT_CODE, meta=PENDING))["response"] == NO_CODE_PENDING
    assert rig.provider.calls == 0


class DownLedger(InProcessCodeLedger):
    """The ledger's store stops answering after ``ok_steps`` steps."""

    def __init__(self, ok_steps: int) -> None:
        super().__init__(clock=lambda: T0)
        self.ok_steps = ok_steps

    def _step(self) -> None:
        self.ok_steps -= 1
        if self.ok_steps < 0:
            raise LedgerUnavailable("redis")

    async def begin(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._step()
        return await super().begin(*args, **kwargs)

    async def settle(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._step()
        return await super().settle(*args, **kwargs)


def rig_with_ledger(ledger: InProcessCodeLedger):
    store = InProcessCounterStore()
    store.ledger = ledger
    return make_rig(store=store, limits=SendLimits())


async def test_with_the_ledger_down_nothing_is_checked():
    rig = rig_with_ledger(DownLedger(ok_steps=0))
    assert (await verify(rig, RIGHT_CODE, meta=PENDING))["response"] == TRY_AGAIN
    assert rig.provider.calls == 0
    assert finals(rig.events) == []


async def test_a_final_answer_that_cannot_be_recorded_is_not_given():
    # Verified upstream, but the ledger is gone before the answer is recorded: saying
    # "verified" would let a later check produce "expired" for the same code.
    rig = rig_with_ledger(DownLedger(ok_steps=1))
    assert (await verify(rig, RIGHT_CODE, meta=PENDING))["response"] == TRY_AGAIN
    assert rig.provider.calls == 1
    assert finals(rig.events) == []


# -- global_data names the latest verification's subject --------------------------------

VERIFIED_HERE = {
    "mfa_verified": True,
    "mfa_verified_at": "2027-01-15T08:00:00+00:00",
    "mfa_verified_number_last4": "0001",
}
CLEARED = [
    "mfa_verified",
    "mfa_verified_at",
    "mfa_verified_number_last4",
    "mfa_verified_account",
]


def unsets(reply: dict) -> list[dict]:
    return [action for action in reply["action"] if "unset_global_data" in action]


async def send_with_global(rig, global_data: dict, caller: str = CALLER) -> dict:
    body = swaig("send_mfa", caller=caller)
    body["global_data"] = global_data
    return (await rig.tools.send_mfa({}, body)).to_dict()


async def test_a_send_for_another_number_clears_the_verified_subject():
    rig = make_rig()
    reply = await send_with_global(rig, VERIFIED_HERE, caller="+15551230002")
    assert [{"unset_global_data": key} for key in CLEARED] == unsets(reply)


async def test_a_send_for_the_verified_number_keeps_it():
    rig = make_rig()
    reply = await send_with_global(rig, VERIFIED_HERE)
    assert not any("unset_global_data" in action for action in reply["action"])


async def test_a_send_for_the_verified_number_but_another_account_clears_it():
    rig = make_rig()
    reply = await send_with_global(rig, {**VERIFIED_HERE, "mfa_verified_account": "12345678"})
    assert [{"unset_global_data": key} for key in CLEARED] == unsets(reply)


async def test_a_refused_send_clears_nothing():
    rig = make_rig()
    reply = await send_with_global(rig, VERIFIED_HERE, caller="+447700900123")  # country
    assert "action" not in reply
