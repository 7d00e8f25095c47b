"""The account path of ``send_mfa``, driven through ``MfaTools`` with a directory in memory,
the scripted provider, real limits and a fake clock and sleep (no wall time).

Expected sentences are written out here, not taken from ``messages``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from skills.mfa.delivery.providers.base import ProviderRejected, ProviderUnavailable
from skills.mfa.events import EventPublisher
from skills.mfa.flow.directory.base import DirectoryUnavailable, spoken_account
from skills.mfa.flow.directory.misses import InProcessMissCounter
from skills.mfa.flow.recipient import AccountPolicy, AccountRecipients
from skills.mfa.flow.tools import CodePolicy, MfaTools
from skills.mfa.limits.send_limits import InProcessCounterStore, SendLimiter, SendLimits
from tests.support.fakes import FakeClock, ScriptedProvider

pytestmark = pytest.mark.anyio

CALLER = "+15551230001"
ON_FILE = "+15551230199"
ACCOUNT = "12345678"
NEUTRAL = (
    "No code was sent for that account number. Do not say whether the account exists. "
    "If a code was already sent on this call, ask the caller to use it; otherwise ask "
    "them to check their account number."
)
LOCKED = (
    "No more account numbers can be looked up on this call, so no code was sent. "
    "Apologise and suggest the caller calls back with their account number at hand."
)
SENT_ON_FILE = "A code was texted to the phone number ending in 0 1 9 9."


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("12345678", "12345678"),
        ("1234-5678", "12345678"),
        ("1 2 3 4. 5 6 7 8", "12345678"),
        ("one two three four five six seven eight", "12345678"),
        ("it's four oh seven, double two", "40722"),
        ("my account number is 9 0 0 1 2 3 4 5 6 7 8 9", "900123456789"),
        (40722, "40722"),
        ("7", "7"),
    ],
)
def test_spoken_account_numbers_of_any_length(said, digits):
    assert spoken_account(said) == digits


@pytest.mark.parametrize(
    "said", ["", "I don't know", "12 or 13", "1" * 33, -5, True, None, ["1"], "abc123"]
)
def test_what_is_not_one_account_number_is_refused(said):
    assert spoken_account(said) is None


class MemoryDirectory:
    name = "memory"

    def __init__(self, clock: FakeClock, table: dict[str, str], delay: float = 0.0) -> None:
        self.table, self.clock, self.delay = table, clock, delay
        self.lookups: list[str] = []
        self.down = False

    async def lookup(self, account: str) -> str | None:
        self.lookups.append(account)
        self.clock.advance(self.delay)
        if self.down:
            raise DirectoryUnavailable("server_error", status_code=503)
        return self.table.get(account)


@dataclass
class Rig:
    tools: MfaTools
    provider: ScriptedProvider
    directory: MemoryDirectory
    clock: FakeClock
    slept: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, call_id: str = "call-1", caller: str = CALLER, **args: Any):
        body = {"call_id": call_id, "caller_id_num": caller, "meta_data": {}}
        return (await self.tools.send_mfa(args, body)).to_dict()


BINDING_KEY = b"k" * 32
CALL_ID = "call-1"  # Rig.send's default


def sealed(call_id: str, fields: dict[str, Any]) -> str:
    """The documented seal, computed here: HMAC-SHA256 over the compact JSON list."""
    message = json.dumps(
        [
            "mfa-binding-v1",
            call_id,
            fields["mfa_request_id"],
            fields["mfa_attempts_left"],
            fields["mfa_number_last4"],
            fields["mfa_sent_at"],
            fields.get("mfa_account"),
        ],
        separators=(",", ":"),
    )
    return hmac.new(BINDING_KEY, message.encode(), hashlib.sha256).hexdigest()


def make_rig(*, limits: SendLimits | None = None, delay: float = 0.0, **policy: Any) -> Rig:
    clock = FakeClock()
    directory = MemoryDirectory(clock, {ACCOUNT: ON_FILE, "99": "+15551230288"}, delay)
    limiter = SendLimiter(
        InProcessCounterStore(), limits or SendLimits(), agent_id="jim", clock=clock
    )
    rig_slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        rig_slept.append(seconds)
        clock.advance(seconds)

    accounts = AccountRecipients(
        directory,
        InProcessMissCounter(clock=clock),
        AccountPolicy(**policy),
        try_lookup=limiter.try_lookup,
        clock=clock,
        sleep=fake_sleep,
    )
    provider = ScriptedProvider()
    publisher = EventPublisher()
    tools = MfaTools(
        provider=provider,
        policy=CodePolicy("Your code:", 6, 600, 3, False, "US"),
        publisher=publisher,
        agent_id="jim",
        limiter=limiter,
        accounts=accounts,
        binding_key=BINDING_KEY,
        clock=clock,
    )
    rig = Rig(tools, provider, directory, clock, rig_slept)
    publisher.subscribe(lambda event: rig.events.append(event.to_dict()))
    return rig


async def test_a_found_account_is_texted_at_its_number_on_file():
    rig = make_rig()
    reply = await rig.send(account_number="one two three four five six seven eight")
    assert reply["response"].startswith(SENT_ON_FILE)
    assert "5551230199" not in reply["response"].replace(" ", "")  # last four only
    (action,) = reply["action"]
    meta = action["set_meta_data"]
    # The account is sealed with the code, to this call: verify_mfa reads it from there.
    assert meta == {
        "mfa_request_id": "req-1",
        "mfa_attempts_left": 3,
        "mfa_number_last4": "0199",
        "mfa_sent_at": int(rig.clock.now),
        "mfa_account": ACCOUNT,
        "mfa_binding": sealed(CALL_ID, meta),
    }
    event = rig.events[-1]
    assert (event["outcome"], event["masked_number"]) == ("code_sent", "***0199")
    assert (event["account"], event["lookup"]) == ("***5678", "found")
    assert rig.slept == []  # a sent code is not padded


async def test_unknown_and_refused_accounts_read_and_take_the_same():
    rig = make_rig(
        neutral_answer_seconds=1.0, delay=0.25, limits=SendLimits(per_recipient_per_hour=1)
    )
    await rig.send(call_id="earlier", account_number=ACCOUNT)  # uses the number's hour
    unknown = await rig.send(call_id="a", account_number="555")
    refused = await rig.send(call_id="b", account_number=ACCOUNT)
    assert unknown == refused == {"response": NEUTRAL}
    assert rig.slept == [0.75, 0.75]  # both padded to the same 1 s from the start
    assert rig.provider.calls == 1
    outcomes = [(e["outcome"], e.get("lookup")) for e in rig.events[1:]]
    assert outcomes == [("account_unknown", "unknown"), ("rate_limited", "found")]


@pytest.mark.parametrize(
    "failure",
    [
        ProviderUnavailable("circuit_open", may_have_arrived=False),
        ProviderUnavailable("timeout", may_have_arrived=True),
        ProviderRejected(401),
    ],
    ids=["breaker-open", "timeout", "our-credentials"],
)
async def test_a_found_account_whose_send_fails_reads_and_takes_like_an_unknown_one(failure):
    """An outage answered only for found accounts (fast, unpadded, no miss) would list
    which accounts exist: it gets the neutral sentence, the same floor, and a miss."""
    rig = make_rig(neutral_answer_seconds=1.0, delay=0.25)
    rig.provider.then(failure)
    found = await rig.send(account_number=ACCOUNT)
    unknown = await rig.send(account_number="555")
    assert found == unknown == {"response": NEUTRAL}
    assert rig.slept == [0.75, 0.75]
    assert rig.events[0]["lookup"] == "found" and rig.events[0]["outcome"] != "code_sent"
    await rig.send(account_number="556")  # the third miss: the failed send was one
    assert (await rig.send(account_number=ACCOUNT)) == {"response": LOCKED}


async def test_three_neutral_answers_end_lookups_for_the_call_even_for_a_valid_account():
    rig = make_rig()
    for wrong in ("1", "2", "3"):
        assert (await rig.send(account_number=wrong))["response"] == NEUTRAL
    assert (await rig.send(account_number=ACCOUNT)) == {"response": LOCKED}
    assert rig.directory.lookups == ["1", "2", "3"]  # the valid one was not looked up
    assert rig.events[-1]["outcome"] == "account_locked"
    # Another call is not locked.
    assert (await rig.send(call_id="other", account_number=ACCOUNT))["response"].startswith(
        SENT_ON_FILE
    )


async def test_the_lockout_count_is_configurable():
    rig = make_rig(unknown_accounts_per_call=1)
    await rig.send(account_number="1")
    assert (await rig.send(account_number=ACCOUNT)) == {"response": LOCKED}


async def test_lookups_count_in_the_agent_wide_rate():
    rig = make_rig(limits=SendLimits(agent_sends_per_minute=2))
    await rig.send(call_id="a", account_number="1")  # one lookup
    await rig.send(call_id="b", account_number="2")  # two
    busy = await rig.send(call_id="c", account_number=ACCOUNT)
    assert "very busy" in busy["response"] and rig.directory.lookups == ["1", "2"]


async def test_the_caller_number_path_is_closed_by_default_and_can_be_opened():
    closed = make_rig()
    reply = await closed.send()
    assert "Ask the caller for their account number" in reply["response"]
    assert closed.provider.calls == 0
    opened = make_rig(caller_number_allowed=True)
    assert "ending in 0 0 0 1" in (await opened.send())["response"]
    assert "ending in 0 1 9 9" in (await opened.send(account_number=ACCOUNT))["response"]


async def test_an_unclear_account_is_asked_again_and_counts_nothing():
    rig = make_rig(unknown_accounts_per_call=1)
    reply = await rig.send(account_number="twelve or thirteen")
    assert "did not catch an account number" in reply["response"]
    assert rig.directory.lookups == [] and rig.slept == []
    assert (await rig.send(account_number=ACCOUNT))["response"].startswith(SENT_ON_FILE)


async def test_a_directory_outage_is_an_apology_not_a_neutral_answer():
    rig = make_rig()
    rig.directory.down = True
    reply = await rig.send(account_number=ACCOUNT)
    assert "did not answer in time" in reply["response"]
    assert rig.events[-1]["outcome"] == "directory_unavailable"
    rig.directory.down = False
    for _ in range(3):  # outages do not count towards the lockout
        rig.directory.down = True
        await rig.send(account_number=ACCOUNT)
    rig.directory.down = False
    assert (await rig.send(account_number=ACCOUNT))["response"].startswith(SENT_ON_FILE)


async def test_verified_account_goes_to_global_data_and_the_event():
    rig = make_rig()
    sent = await rig.send(account_number=ACCOUNT)
    meta = sent["action"][0]["set_meta_data"]
    body = {"call_id": CALL_ID, "caller_id_num": CALLER, "meta_data": meta}
    reply = (await rig.tools.verify_mfa({"token": "123456"}, body)).to_dict()
    global_data = reply["action"][0]["set_global_data"]
    assert global_data["mfa_verified_account"] == ACCOUNT
    assert global_data["mfa_verified_number_last4"] == "0199"
    # The pending code is gone, and its account with it (a closed marker stays instead).
    unset = [a["unset_meta_data"] for a in reply["action"] if "unset_meta_data" in a]
    assert {"mfa_request_id", "mfa_account", "mfa_binding"} <= set(unset)
    assert rig.events[-1]["account"] == "***5678"
