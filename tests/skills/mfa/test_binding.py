"""meta_data sealed to its call: what opens, what is refused, and the documented formula.

Expected MACs are computed here with ``hmac`` from the formula in ``binding.py``'s
docstring, never with the product's own ``Binder``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from skills.mfa.ledgers.binding import Binder, Closed, Pending, Refused, binding_key

SECRET = "replicas-share-this"
KEY = hmac.new(SECRET.encode(), b"mfa-binding-v1", hashlib.sha256).digest()
CALL = "call-a"


def mac(*fields: Any) -> str:
    message = json.dumps(list(fields), separators=(",", ":"), ensure_ascii=True).encode()
    return hmac.new(KEY, message, hashlib.sha256).hexdigest()


def meta(call_id: str = CALL, **override: Any) -> dict[str, Any]:
    fields = {
        "mfa_request_id": "3f2b1c9e-0d4a-4e7b-9c1a-2b3c4d5e6f70",
        "mfa_attempts_left": 3,
        "mfa_number_last4": "0001",
        "mfa_sent_at": 1_800_000_000,
    }
    fields["mfa_binding"] = mac(
        "mfa-binding-v1",
        call_id,
        fields["mfa_request_id"],
        fields["mfa_attempts_left"],
        fields["mfa_number_last4"],
        fields["mfa_sent_at"],
        None,
    )
    fields.update(override)
    return fields


BINDER = Binder(binding_key(SECRET))


def test_the_key_is_derived_from_the_swaig_secret_and_random_without_it():
    assert binding_key(SECRET) == KEY
    assert binding_key(None) != binding_key(None)
    assert len(binding_key(None)) == 32


def test_what_the_agent_seals_is_the_documented_mac():
    sealed = BINDER.seal(
        CALL,
        request_id="3f2b1c9e-0d4a-4e7b-9c1a-2b3c4d5e6f70",
        attempts_left=3,
        last4="0001",
        sent_at=1_800_000_000,
    )
    assert sealed == meta()


def test_a_valid_claim_opens_for_its_own_call_only():
    opened = BINDER.open(CALL, meta())
    assert opened == Pending(
        "3f2b1c9e-0d4a-4e7b-9c1a-2b3c4d5e6f70",
        3,
        "0001",
        1_800_000_000,
        None,
        meta()["mfa_binding"],
    )
    # Copied to another call: refused.
    assert isinstance(BINDER.open("call-b", meta()), Refused)


def test_the_account_is_sealed_too():
    with_account = BINDER.seal(
        CALL, request_id="r1", attempts_left=3, last4="0001", sent_at=1, account="ACME-42"
    )
    assert with_account["mfa_binding"] == mac("mfa-binding-v1", CALL, "r1", 3, "0001", 1, "ACME-42")
    assert BINDER.open(CALL, with_account).account == "ACME-42"  # type: ignore[union-attr]
    # Added to a claim sealed without it, or dropped from one sealed with it: refused.
    assert isinstance(BINDER.open(CALL, {**meta(), "mfa_account": "ACME-42"}), Refused)
    # An explicit null is an edit too (the agent writes an account or no key at all).
    assert isinstance(BINDER.open(CALL, {**meta(), "mfa_account": None}), Refused)
    without = {k: v for k, v in with_account.items() if k != "mfa_account"}
    assert isinstance(BINDER.open(CALL, without), Refused)


def test_a_voice_code_is_sealed_with_its_channel():
    voice = BINDER.seal(
        CALL, request_id="r1", attempts_left=3, last4="0001", sent_at=1, channel="call"
    )
    # The documented canonical form: the texted one, then "call".
    assert voice["mfa_channel"] == "call"
    assert voice["mfa_binding"] == mac("mfa-binding-v1", CALL, "r1", 3, "0001", 1, None, "call")
    assert BINDER.open(CALL, voice).channel == "call"  # type: ignore[union-attr]
    assert BINDER.open(CALL, meta()).channel == "sms"  # type: ignore[union-attr]
    # A text's seal is unchanged by the channel's existence: no mfa_channel, same MAC.
    texted = BINDER.seal(CALL, request_id="r1", attempts_left=3, last4="0001", sent_at=1)
    assert "mfa_channel" not in texted
    assert texted["mfa_binding"] == mac("mfa-binding-v1", CALL, "r1", 3, "0001", 1, None)
    # Dropped from a voice claim, added to a texted one, or any other value: refused.
    dropped = {k: v for k, v in voice.items() if k != "mfa_channel"}
    assert isinstance(BINDER.open(CALL, dropped), Refused)
    assert isinstance(BINDER.open(CALL, {**texted, "mfa_channel": "call"}), Refused)
    assert isinstance(BINDER.open(CALL, {**voice, "mfa_channel": "sms"}), Refused)
    # A wrong try re-seals it with the channel kept.
    resealed = BINDER.reseal(CALL, BINDER.open(CALL, voice), 2)  # type: ignore[arg-type]
    assert BINDER.open(CALL, {**voice, **resealed}).channel == "call"  # type: ignore[union-attr]


ALTERED = {
    "mfa_request_id": ["3f2b1c9e-0d4a-4e7b-9c1a-2b3c4d5e6f71", "other", ""],
    "mfa_attempts_left": [2, 20, 0, "3", 3.0, True, None],
    "mfa_number_last4": ["0002", "9999", 1, "001", "00001"],
    "mfa_sent_at": [1_800_000_001, 0, "1800000000", -1],
    "mfa_binding": ["0" * 64, meta()["mfa_binding"].upper(), "", None, 7],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in ALTERED.items() for value in values],
)
def test_every_field_altered_is_refused(field, value):
    assert isinstance(BINDER.open(CALL, meta(**{field: value})), Refused)


@pytest.mark.parametrize("field", list(ALTERED))
def test_every_field_missing_is_refused(field):
    claim = meta()
    del claim[field]
    assert isinstance(BINDER.open(CALL, claim), Refused)


def test_a_megabyte_value_is_refused_on_its_length():
    huge = "1" * 1_000_000
    for field in ("mfa_number_last4", "mfa_request_id", "mfa_binding", "mfa_account"):
        started = time.perf_counter()
        assert isinstance(BINDER.open(CALL, meta(**{field: huge})), Refused)
        assert time.perf_counter() - started < 0.05
    assert isinstance(BINDER.open(CALL, {"mfa_closed": huge}), Refused)


def test_no_mfa_field_is_a_fresh_call():
    assert BINDER.open(CALL, {}) == Closed("none")
    assert BINDER.open(CALL, {"unrelated": "x" * 1000}) == Closed("none")


def test_the_closed_marker_is_sealed_unique_and_call_bound():
    first, second = BINDER.close(CALL), BINDER.close(CALL)
    assert first != second
    nonce, tag = first.split(".")
    assert tag == mac("mfa-closed-v1", CALL, nonce)
    assert BINDER.open(CALL, {"mfa_closed": first}) == Closed(first)
    assert isinstance(BINDER.open("call-b", {"mfa_closed": first}), Refused)
    assert isinstance(BINDER.open(CALL, {"mfa_closed": nonce + "." + "0" * 64}), Refused)
    assert isinstance(BINDER.open(CALL, {"mfa_closed": 1}), Refused)


def test_another_key_does_not_open_the_claim():
    assert isinstance(Binder(binding_key("another-secret")).open(CALL, meta()), Refused)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "mfa_request_id",
        "mfa_attempts_left",
        "mfa_number_last4",
        "mfa_sent_at",
        "mfa_account",
        "mfa_binding",
        "mfa_closed",
        "other",
    ]
)


@given(st.dictionaries(KEYS, JSON, max_size=7), st.sampled_from([CALL, "call-b", ""]))
@settings(max_examples=400, deadline=None)
def test_generated_claims_never_open_as_pending(claim, call_id):
    # Only a claim sealed under the key opens; random shapes never do, and never raise.
    assert not isinstance(BINDER.open(call_id, claim), Pending)


@given(st.sampled_from(sorted(ALTERED)), JSON)
@settings(max_examples=300, deadline=None)
def test_a_real_claim_with_one_field_replaced_never_opens(field, value):
    claim = meta(**{field: value})
    assume(claim != meta())  # the very same value is not an alteration
    assert isinstance(BINDER.open(CALL, claim), Refused)
