"""The actions a handoff adds to a tool's answer, as SignalWire receives them, and two phone
helpers the mutation pass found unpinned.

``make mutmut`` showed that dropping ``post_process`` (so the transfer would cut Jim's last
sentence) and giving a number transfer the SIP headers both passed the suite.
"""

from __future__ import annotations

from signalwire.core.function_result import FunctionResult

from skills.mfa.handoff import Destination, DestinationKind, Handoff
from skills.mfa.phone import is_valid_e164, mask_account

HEADERS = (("X-MFA-Verified", "true"), ("X-MFA-Outcome", "verified"))


def actions_of(handoff: Handoff) -> dict:
    result = FunctionResult("In one short sentence, say goodbye.")
    handoff.add_to(result)
    return result.to_dict()


def test_a_number_transfer_follows_the_sentence_and_carries_no_headers():
    body = actions_of(Handoff(Destination(DestinationKind.NUMBER, "+14155550123"), HEADERS))
    assert body["post_process"] is True
    assert body["action"] == [
        {
            "transfer": True,
            "SWML": {
                "version": "1.0.0",
                "sections": {"main": [{"connect": {"to": "+14155550123"}}]},
            },
        }
    ]
    assert list(body["action"][0]) == ["transfer", "SWML"]  # transfer first, as documented


def test_a_sip_transfer_carries_its_headers():
    body = actions_of(Handoff(Destination(DestinationKind.SIP, "sip:desk@example.com"), HEADERS))
    assert body["post_process"] is True
    connect = body["action"][0]["SWML"]["sections"]["main"][0]["connect"]
    assert connect == {
        "to": "sip:desk@example.com",
        "headers": [
            {"name": "X-MFA-Verified", "value": "true"},
            {"name": "X-MFA-Outcome", "value": "verified"},
        ],
    }


def test_a_hang_up_follows_the_sentence():
    body = actions_of(Handoff(Destination(DestinationKind.HANGUP)))
    assert body["post_process"] is True
    assert body["action"] == [{"hangup": True}]


def test_a_number_that_does_not_parse_is_not_valid():
    assert is_valid_e164("+15551230199") is False  # 555 is no area code: possible, not valid
    assert is_valid_e164("not a number") is False
    assert is_valid_e164("+14155552671") is True


def test_an_account_is_masked_to_its_last_digits_whatever_its_length():
    assert mask_account("1234567890") == "***7890"
    assert mask_account("12345678") == "***5678"
    assert mask_account("123456") == "***456"
    assert mask_account("1") == "***"
    assert mask_account("") == ""
