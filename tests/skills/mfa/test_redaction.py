"""Summary redaction: whatever the normaliser would read as a code must not survive.

The post-prompt summary is free text the model wrote; it goes to ``/events`` and
``/live``. If the model wrote the code there, in any form the caller could have
said it, the redaction must remove it. The check is independent of the
redactor's own counting: after redaction, no accepted reading of the table may
still normalise to its code, and no four digits may remain.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings

from skills.mfa.speech.spoken_code import normalize_spoken_code
from skills.mfa.speech.spoken_redaction import redact_spoken_numbers
from tests.skills.mfa.test_spoken_code import ACCEPTED, spoken_codes
from tests.skills.mfa.test_spoken_code_es import ACCEPTED_ES, BOTH, spanish_codes

MASK = "[redacted]"
FOUR_DIGITS = re.compile(r"\d(?:\D{0,3}\d){3}")


def _leaks(text: str, code: str) -> bool:
    return normalize_spoken_code(text, len(code)) == code or bool(FOUR_DIGITS.search(text))


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (
            "Verified with 7, 3, 9, 1, 5, 5 on the first try.",
            f"Verified with {MASK} on the first try.",
        ),
        ("Read back seven three nine one five five.", f"Read back {MASK}."),
        ("code seven thirty nine, one fifty five", f"code {MASK}"),
        ("Code 739155 was correct", f"Code {MASK} was correct"),
        ("texted +1 (555) 123-0001", f"texted +{MASK}"),
        ("double seven, triple nine, one", MASK),
        # Short numbers are not codes: kept.
        (
            "2 tries left after 1 wrong code, 10 minutes",
            "2 tries left after 1 wrong code, 10 minutes",
        ),
        ("Oh, the caller was verified.", "Oh, the caller was verified."),
    ],
)
def test_summary_redaction_table(summary: str, expected: str) -> None:
    assert redact_spoken_numbers(summary, 4, MASK) == expected


@pytest.mark.parametrize(
    (
        "text",
        "length",
        "code",
    ),  # Codes have 4 to 20 digits (SignalWire's token_length); shorter readings are not codes.
    [case for case in ACCEPTED if isinstance(case[0], str) and case[1] >= 4],
)
def test_every_accepted_reading_is_redacted(text: str, length: int, code: str) -> None:
    redacted = redact_spoken_numbers(f"The caller said: {text}. Done.", 4, MASK)
    assert MASK in redacted
    assert not _leaks(redacted, code)


@settings(max_examples=300, deadline=None)
@given(spoken_codes())
def test_any_spoken_code_is_redacted(case: tuple[str, str]) -> None:
    code, spoken = case
    redacted = redact_spoken_numbers(f"summary: {spoken} (verified)", 4, MASK)
    assert not _leaks(redacted, code)


# -- every language whose number words we ship, and words run together ---------------------
# Issue 19's findings, and their neighbours: each must be masked whole.
IN_ANY_LANGUAGE = [
    "fourEightOneTwoTwoNine",
    "FourEightOneTwoTwoNine",
    "four-eight-one-two-two-nine",
    "foureightonetwotwonine",
    "cuatro ocho uno dos dos nueve",
    "cuatroOchoUnoDosDosNueve",
    "veintiséis once sesenta y dos",
    "cuatrocientos ochenta y un mil quinientos dieciséis",
    # German: the agent does not speak it, but recognition may transcribe it.
    "vier acht eins zwei zwei neun",
    "vier, acht, eins, zwei, zwei, neun",
    "VIER ACHT EINS ZWEI ZWEI NEUN",
    "vierhundertachtzigtausendfünfhundertsechzehn",
    "zweiundzwanzig elf dreiundvierzig",
    "fünf zwo neun null drei eins",
]


@pytest.mark.parametrize("spoken", IN_ANY_LANGUAGE)
def test_numbers_in_any_shipped_language_are_masked(spoken: str) -> None:
    assert redact_spoken_numbers(f"The caller said {spoken}. Verified.", 4, MASK) == (
        f"The caller said {MASK}. Verified."
    )


@pytest.mark.parametrize(
    "text",
    [
        "The caller once again asked for a new code and was verified.",
        "El cliente fue verificado en un intento, tras dos minutos.",
        "Der Anrufer wurde nach einem Versuch verifiziert.",
        "Caller was often attentive; tension eased, tendons fine.",
    ],
)
def test_conversation_in_any_language_is_kept(text: str) -> None:
    assert redact_spoken_numbers(text, 4, MASK) == text


@pytest.mark.parametrize(("text", "code"), ACCEPTED_ES)
def test_every_spanish_reading_is_redacted(text: str, code: str) -> None:
    redacted = redact_spoken_numbers(f"Resumen: {text}. Fin.", 4, MASK)
    assert MASK in redacted
    assert normalize_spoken_code(redacted, len(code), BOTH) != code
    assert not FOUR_DIGITS.search(redacted)


@settings(max_examples=300, deadline=None)
@given(spanish_codes())
def test_any_spanish_code_is_redacted(case: tuple[str, str]) -> None:
    code, spoken = case
    redacted = redact_spoken_numbers(f"resumen: {spoken} (verificado)", 4, MASK)
    assert normalize_spoken_code(redacted, len(code), BOTH) != code
    assert not FOUR_DIGITS.search(redacted)


@settings(max_examples=300, deadline=None)
@given(spoken_codes())
def test_any_code_run_together_in_camel_case_is_redacted(case: tuple[str, str]) -> None:
    code, _ = case
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    camel = words[int(code[0])] + "".join(words[int(d)].title() for d in code[1:])
    assert redact_spoken_numbers(f"code {camel} ok", 4, MASK) == f"code {MASK} ok"


def test_a_providers_error_text_is_logged_without_numbers_or_codes():
    """A 422's detail may repeat the ``to`` number or the code; the log gets it masked."""
    from skills.mfa.flow.upstream import _loggable

    said = _loggable("'to' +14155550123 is not mobile; code 123456, four eight one two two nine")
    assert said.startswith("'to' +[redacted] is not mobile; code [redacted]")
    assert not any(word in said for word in ("4155550123", "123456", "four", "nine"))
    assert _loggable("unsupported region 44") == "unsupported region 44"  # short runs stay
