"""``languages:`` in the YAML file: what start-up accepts, and what it refuses by name.

A language the agent cannot serve whole (no number words to read a code back, no text
message, a text message over one SMS segment) stops start-up with one line naming it.
Segment sizes are computed here from the 3GPP rules (160 GSM-7 septets, or 70 UTF-16
units once one character is outside GSM-7), not by the product's counter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config.settings import DEFAULT_CONFIG_PATH, SettingsError, load_settings

ENGLISH = {"code": "en", "name": "English", "voice": "rime.spore"}
SPANISH = {"code": "es", "name": "Spanish", "voice": "rime.luna"}
EN_TEXT = "From {company}: only say this code on the call you made to us. Your code:"
ES_TEXT = "De {company}: diga este codigo solo en la llamada que usted nos hizo. Su codigo:"


def _load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"sandbox_db_path": str(tmp_path / "db"), **data}))
    return load_settings({"MFA_AGENT_CONFIG": str(path)})


def _refused(tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as raised:
        _load(tmp_path, data)
    return str(raised.value)


def test_the_shipped_file_speaks_english_and_spanish() -> None:
    settings = load_settings({"MFA_AGENT_CONFIG": str(DEFAULT_CONFIG_PATH)})
    assert [(lang.code, lang.name) for lang in settings.file.languages] == [
        ("en", "English"),
        ("es", "Spanish"),
    ]


@pytest.mark.parametrize("code", ["es", "es-MX"])
def test_the_spanish_text_fits_one_gsm7_segment_with_the_longest_code(code: str) -> None:
    """Written without á í ó ú (outside GSM-7) so it keeps the 160-character segment."""
    settings = load_settings({"MFA_AGENT_CONFIG": str(DEFAULT_CONFIG_PATH)})
    company = settings.file.company_name
    text = settings.file.message_templates["es"].replace("{company}", company) + " " + "9" * 20
    gsm7 = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert set(text) <= gsm7
    assert len(text) <= 160


def test_an_operator_may_drop_spanish(tmp_path: Path) -> None:
    settings = _load(tmp_path, {"languages": [ENGLISH], "code": {"message": EN_TEXT}})
    assert [lang.code for lang in settings.file.languages] == ["en"]
    assert settings.file.message_templates == {"en": EN_TEXT}


def test_no_languages_key_keeps_the_one_english_entry_of_earlier_releases(tmp_path: Path) -> None:
    settings = _load(tmp_path, {})
    assert [(lang.code, lang.voice) for lang in settings.file.languages] == [
        ("en-US", "rime.spore")
    ]


def test_the_language_key_of_earlier_releases_still_reads(tmp_path: Path) -> None:
    settings = _load(tmp_path, {"language": {"code": "en-GB", "voice": "rime.spore"}})
    assert [lang.code for lang in settings.file.languages] == ["en-GB"]


def test_a_language_without_number_words_stops_start_up(tmp_path: Path) -> None:
    french = {"code": "fr", "name": "French", "voice": "rime.claire"}
    message = _refused(
        tmp_path,
        {"languages": [ENGLISH, french], "code": {"message": {"en": EN_TEXT, "fr": "Code:"}}},
    )
    assert "languages.1.code" in message
    assert "cannot read a code back in 'fr'" in message
    assert "en, es" in message


def test_a_language_without_its_text_stops_start_up(tmp_path: Path) -> None:
    message = _refused(
        tmp_path, {"languages": [ENGLISH, SPANISH], "code": {"message": {"en": EN_TEXT}}}
    )
    assert "code.message" in message
    assert "no text-message template for Spanish (es)" in message


def test_a_plain_string_is_the_english_text_only(tmp_path: Path) -> None:
    message = _refused(tmp_path, {"languages": [ENGLISH, SPANISH], "code": {"message": EN_TEXT}})
    assert "no text-message template for Spanish (es)" in message
    assert "code.message is one text, which is the English template" in message


def test_a_text_for_a_language_not_spoken_is_a_typo(tmp_path: Path) -> None:
    message = _refused(
        tmp_path,
        {
            "languages": [ENGLISH, SPANISH],
            "code": {"message": {"en": EN_TEXT, "es": ES_TEXT, "sp": ES_TEXT}},
        },
    )
    assert "code.message.sp" in message
    assert "not a configured language" in message


def test_a_spanish_text_with_accents_must_fit_seventy(tmp_path: Path) -> None:
    # 'ó' is outside GSM-7: the text is UCS-2, 70 units with the space and 6 digits.
    accented = "De {company}: diga este código solo en la llamada que usted nos hizo:"
    message = _refused(
        tmp_path,
        {"languages": [ENGLISH, SPANISH], "code": {"message": {"en": EN_TEXT, "es": accented}}},
    )
    assert "code.message.es" in message
    assert "'ó', a character outside GSM-7" in message
    short = "De {company}: su código es"  # 41 + 1 + 6 = 48 UCS-2 units: fits
    settings = _load(
        tmp_path,
        {"languages": [ENGLISH, SPANISH], "code": {"message": {"en": EN_TEXT, "es": short}}},
    )
    assert settings.file.message_templates["es"] == short


def test_a_code_listed_twice_is_refused(tmp_path: Path) -> None:
    message = _refused(
        tmp_path,
        {
            "languages": [ENGLISH, SPANISH, {**SPANISH, "code": "es-MX"}],
            "code": {"message": {"en": EN_TEXT, "es": ES_TEXT}},
        },
    )
    assert "languages.2.code" in message


@pytest.mark.parametrize("voice", ["spore", "rime spore", ""])
def test_a_voice_without_its_engine_is_refused(tmp_path: Path, voice: str) -> None:
    message = _refused(tmp_path, {"languages": [{**ENGLISH, "voice": voice}]})
    assert "languages.0.voice" in message
