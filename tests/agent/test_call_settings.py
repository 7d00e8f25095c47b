"""Start-up refuses a call shape, a handoff or a text message that cannot work, naming the key.

Expected lengths are counted here by hand from the strings the tests build (plain ASCII
counts one, each of ``[]{}`` two, in UCS-2 each character one), not by the product.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config.settings import SettingsError, load_settings

COMPANY = "Acme"  # 4 characters


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"sandbox_db_path": str(tmp_path / "s.db"), **data}))
    return load_settings({"MFA_AGENT_CONFIG": str(path), "MFA_PROVIDER": "sandbox"})


def refused(tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, data)
    path = tmp_path / "config.yaml"
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


# -- handoff -------------------------------------------------------------------------------


def test_handoff_defaults_to_staying_with_the_agent(tmp_path):
    handoff = load(tmp_path, {}).file.handoff
    assert handoff.on_verified is None and handoff.on_failed is None
    assert handoff.needs_swml is False


@pytest.mark.parametrize(
    ("handoff", "kinds"),
    [
        ({"on_verified": "+14155550123"}, ("number", None)),
        ({"on_verified": "sip:desk@example.sip.signalwire.com"}, ("sip", None)),
        ({"on_verified": "sip:agent@10.0.0.7:5061;transport=tls"}, ("sip", None)),
        ({"on_failed": "hangup"}, (None, "hangup")),
        ({"on_failed": "HANGUP"}, (None, "hangup")),
        ({"on_failed": "+442071838750"}, (None, "number")),
        ({"on_failed": "sip:help@desk.example.com"}, (None, "sip")),
    ],
)
def test_good_handoffs_load(tmp_path, handoff, kinds):
    loaded = load(tmp_path, {"handoff": handoff}).file.handoff
    got = tuple(d.kind.value if d else None for d in (loaded.verified, loaded.failed))
    assert got == kinds
    assert loaded.needs_swml is (any(k in ("number", "sip") for k in kinds))


@pytest.mark.parametrize(
    ("handoff", "message"),
    [
        (
            {"on_verified": "4155550123"},
            "handoff.on_verified: must be an E.164 number such as +15551234567, a sip: URI",
        ),
        (
            {"on_verified": "+1 415 555 0123"},
            "handoff.on_verified: must be an E.164 number such as +15551234567, a sip: URI",
        ),
        (
            {"on_failed": "+1415"},
            "handoff.on_failed: must be an E.164 number such as +15551234567, a sip: URI or hangup",
        ),
        ({"on_verified": "hangup"}, "handoff.on_verified: 'hangup' is only for handoff.on_failed"),
        *[
            (
                {"on_failed": uri},
                "handoff.on_failed: is not a SIP URI such as sip:desk@example.sip.signalwire.com "
                "(user@host, optional :port and ;parameters, no spaces)",
            )
            for uri in ("sip:", "sip:desk@", "sip:desk@exa mple.com", "sip:desk@localhost")
        ],
    ],
)
def test_bad_handoffs_stop_start_up(tmp_path, handoff, message):
    assert refused(tmp_path, {"handoff": handoff}) == message


# -- call bounds ---------------------------------------------------------------------------


def test_hard_stop_must_stay_below_the_tool_token_lifetime(tmp_path):
    assert refused(tmp_path, {"call": {"hard_stop_seconds": 3600}}) == (
        "call.hard_stop_seconds: must be below 3600, the lifetime of the per-call tool tokens "
        "(a tool called after it is refused)"
    )
    assert load(tmp_path, {"call": {"hard_stop_seconds": 3599}}).file.call.hard_stop_time == (
        "59m59s"
    )


@pytest.mark.parametrize("value", [5000, 9999, 600001])
def test_attention_timeout_follows_the_schema_range(tmp_path, value):
    assert refused(tmp_path, {"call": {"attention_timeout_ms": value}}) == (
        "call.attention_timeout_ms: must be 0 (off) or 10000 to 600000 ms (the SWML schema's range)"
    )


@pytest.mark.parametrize("value", [0, 10000, 600000])
def test_attention_timeout_edges_load(tmp_path, value):
    call = load(tmp_path, {"call": {"attention_timeout_ms": value}}).file.call
    assert call.attention_timeout_ms == value


# -- the text message ------------------------------------------------------------------------


def message_config(message: str, token_length: int = 6) -> dict[str, Any]:
    return {"company_name": COMPANY, "code": {"message": message, "token_length": token_length}}


def test_a_message_that_just_fits_one_gsm_segment_loads(tmp_path):
    # "{company}" (4) + 149 x + " " + 6 digits = 160 septets.
    message = "{company}" + "x" * 149
    assert load(tmp_path, message_config(message)).file.code.message == message


def test_one_character_more_is_refused(tmp_path):
    message = "{company}" + "x" * 150  # 4 + 150 + 1 + 6 = 161
    assert refused(tmp_path, message_config(message)) == (
        "code.message: with the company name, a space and the 6-digit code the text is 161 "
        "GSM-7 characters (each of ^{}\\[~]|€ counts as two); one SMS segment holds 160"
    )


def test_extension_characters_count_twice(tmp_path):
    # 4 + 143 + 2 x 2 ("[" and "]") + 1 + 6 = 158 septets: fits; one more "{}" pair = 162.
    assert load(tmp_path, message_config("{company}" + "x" * 143 + "[]"))
    assert refused(tmp_path, message_config("{company}" + "x" * 143 + "[]|~")).startswith(
        "code.message: with the company name, a space and the 6-digit code the text is 162 "
    )


def test_a_non_gsm_character_forces_the_ucs2_limit(tmp_path):
    # A curly apostrophe is not GSM-7: 4 + 60 + 1 + 1 + 6 = 72 UCS-2 characters > 70.
    message = "{company}" + "x" * 60 + "\u2019"
    assert refused(tmp_path, message_config(message)) == (
        "code.message: holds '\u2019', a character outside GSM-7, so the text is sent as UCS-2 "
        "where one SMS segment holds 70 characters; with the company name, a space and the "
        "6-digit code it is 72"
    )
    # The same text with a straight apostrophe is GSM-7 and fits easily.
    assert load(tmp_path, message_config("{company}" + "x" * 60 + "'"))


def test_a_longer_code_leaves_less_room(tmp_path):
    message = "{company}" + "x" * 140  # 4 + 140 + 1 + 10 = 155 with 10 digits, 165 with 20
    assert load(tmp_path, message_config(message, token_length=10))
    assert "the 20-digit code the text is 165 " in refused(
        tmp_path, message_config(message, token_length=20)
    )


def test_unknown_placeholders_are_refused(tmp_path):
    assert refused(tmp_path, message_config("Code from {compnay}:")) == (
        "code.message: has an unknown placeholder {compnay}; only {company} is filled in"
    )


def test_the_shipped_message_fits_and_warns_against_phishing():
    settings = load_settings({"MFA_PROVIDER": "sandbox"})
    templates = settings.file.message_templates
    assert set(templates) == {"en", "es"}
    assert "only say this code on the call you made to us" in templates["en"]
    assert "We never call to ask for it" in templates["en"]
    # The same warning in Spanish: say it only on the call you made; we never call for it.
    assert "diga este codigo solo en la llamada que usted nos hizo" in templates["es"]
    assert "Nunca llamamos para pedirlo" in templates["es"]
    assert all("{company}" in template for template in templates.values())
