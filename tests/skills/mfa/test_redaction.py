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

from skills.mfa.spoken_code import normalize_spoken_code, redact_spoken_numbers
from tests.skills.mfa.test_spoken_code import ACCEPTED, spoken_codes

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
