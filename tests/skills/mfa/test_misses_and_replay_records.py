"""Two stores the mutation pass found under-tested: the per-call count of account lookups
that found nothing (the lockout), on both backends, and the replay record a retried request is
answered from.

``make mutmut`` showed that giving the lockout's Redis key one shared name for every call, a
give-back that expired the call's count at once, and a replay record that lost any of its
fields all passed the suite; each test below fails on one of those.
"""

from __future__ import annotations

import json

import pytest

from skills.mfa.answer import ToolAnswer
from skills.mfa.events import Outcome
from skills.mfa.flow.directory.misses import InProcessMissCounter, RedisMissCounter
from skills.mfa.ledgers.replay import decode, encode
from skills.mfa.redis_client import connect

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["in-process", "redis"])
def counter(request):
    if request.param == "redis":
        return RedisMissCounter(connect(request.getfixturevalue("redis_url")))
    return InProcessMissCounter(clock=Clock())


async def test_each_call_has_its_own_lockout(counter):
    for _ in range(3):
        assert await counter.take("call-a", 3) is True
    assert await counter.take("call-a", 3) is False  # call-a is locked
    assert await counter.take("call-b", 3) is True  # call-b is not
    assert await counter.take("call-b", 3) is True


async def test_a_given_back_miss_can_be_taken_again_and_the_rest_still_count(counter):
    for _ in range(3):
        assert await counter.take("call-a", 3) is True
    await counter.give_back("call-a")
    assert await counter.take("call-a", 3) is True
    assert await counter.take("call-a", 3) is False
    await counter.give_back("call-b")  # nothing taken there: never below zero
    for _ in range(3):
        assert await counter.take("call-b", 3) is True
    assert await counter.take("call-b", 3) is False


async def test_a_give_back_keeps_the_calls_count_for_the_day():
    clock = Clock()
    counter = InProcessMissCounter(clock=clock)
    for _ in range(3):
        assert await counter.take("call-a", 3) is True
    clock.now += 3600
    await counter.give_back("call-a")
    clock.now += 3600  # two hours after the first miss: the other two still count
    assert await counter.take("call-a", 3) is True
    assert await counter.take("call-a", 3) is False
    clock.now += 86400  # a day after the last one: all forgotten
    assert await counter.take("call-a", 3) is True


async def test_the_redis_lockout_keys_name_their_call(redis_url):
    redis = connect(redis_url)
    counter = RedisMissCounter(redis)
    await counter.take("call-a", 3)
    await counter.take("call-b", 3)
    assert sorted(await redis.keys("mfa:dir:miss:*")) == [
        b"mfa:dir:miss:call-a",
        b"mfa:dir:miss:call-b",
    ]


FULL = ToolAnswer(
    Outcome.VERIFIED,
    "The code is correct.",
    attempts_left=2,
    number_last4="0199",
    set_meta_data={"mfa_closed": "seal"},
    unset_meta_data=("mfa_request_id", "mfa_binding"),
    global_data={"mfa_verified": True, "mfa_verified_account": "12345678"},
    unset_global_data=("mfa_verified_number_last4",),
    account="12345678",
)


def test_a_replayed_answer_carries_every_recorded_field():
    replayed = decode(encode(FULL))
    assert replayed == ToolAnswer(
        Outcome.REPLAYED,
        "The code is correct.",
        attempts_left=2,
        number_last4="0199",
        set_meta_data={"mfa_closed": "seal"},
        unset_meta_data=("mfa_request_id", "mfa_binding"),
        global_data={"mfa_verified": True, "mfa_verified_account": "12345678"},
        unset_global_data=("mfa_verified_number_last4",),
        account="12345678",
        first_outcome=Outcome.VERIFIED,
    )


def test_a_record_is_compact_json():
    record = encode(FULL)
    assert ", " not in record and '": ' not in record
    assert json.loads(record)["outcome"] == "verified"


def test_a_record_written_before_unset_global_and_account_existed_still_replays():
    old = json.loads(encode(FULL))
    del old["unset_global"], old["account"]
    replayed = decode(json.dumps(old))
    assert replayed.unset_global_data == ()
    assert replayed.account == ""
    assert replayed.first_outcome is Outcome.VERIFIED
    assert replayed.global_data == {"mfa_verified": True, "mfa_verified_account": "12345678"}
