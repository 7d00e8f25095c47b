"""Phone numbers: parse what the platform or the caller gives, mask what we show.

Only the last four digits of a number ever leave this module in logs, events
and tool responses: a full number is personal data and a harassment target.
"""

from __future__ import annotations

import phonenumbers

_MAX_RAW_LENGTH = 64


def to_e164(raw: object, default_region: str | None = "US") -> str | None:
    """Parse ``raw`` into E.164, or None when it is not a valid, textable number.

    Accepts ``+15551234567``, ``15551234567`` (read in ``default_region``),
    ``tel:`` and ``sip:`` URIs whose user part is a number.
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_RAW_LENGTH:
        return None
    text = raw.strip()
    for scheme in ("tel:", "sip:", "sips:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :].split("@", 1)[0].split(";", 1)[0]
    digits_only = text.lstrip("+")
    if digits_only.isdigit() and not text.startswith("+") and len(digits_only) > 10:
        text = "+" + digits_only
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    # "Possible" (right length for the country), not "valid": the carrier ranges in
    # phonenumbers' metadata lag reality, and refusing a real caller is worse than
    # letting the provider refuse a number it cannot text.
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_valid_e164(e164: str) -> bool:
    """Whether ``e164`` is a *valid* number for its country, not merely the right length.

    Stricter than ``to_e164`` on purpose, for numbers an operator wrote down (the account
    directory): a number cut short mid-write (``+44 7911 12345`` of ``+44 7911 123456``)
    is still "possible" in many countries, and texting it would text a stranger."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False


# Types that cannot receive a text, or that cost the sender (premium rate, SMS pumping).
_UNTEXTABLE_TYPES = {
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.UAN,
    phonenumbers.PhoneNumberType.VOICEMAIL,
    phonenumbers.PhoneNumberType.PAGER,
    phonenumbers.PhoneNumberType.FIXED_LINE,
}


def country_code_of(e164: str) -> int | None:
    try:
        return int(phonenumbers.parse(e164, None).country_code)
    except phonenumbers.NumberParseException:
        return None


def textable_type(e164: str) -> bool:
    """False where phonenumbers can tell the number cannot take an SMS or bills the sender
    (premium rate, shared cost, landline, pager, ...). Unknown types pass: the provider
    refuses what it cannot text."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) not in _UNTEXTABLE_TYPES


def region_of(e164: str) -> str | None:
    """The ISO region of an E.164 number, used as the default for numbers without ``+``."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def last_digits(number: str | None, count: int = 4) -> str:
    digits = "".join(ch for ch in (number or "") if ch.isdigit())
    return digits[-count:] if len(digits) >= count else ""


def mask_number(number: str | None) -> str:
    """``+15551234567`` -> ``***4567``: all that logs and events may hold."""
    tail = last_digits(number)
    return f"***{tail}" if tail else "unknown"


def mask_account(account: str | None) -> str:
    """``12345678`` -> ``***5678``; never more than half the digits (``1234`` -> ``***34``)."""
    if not account:
        return ""
    shown = min(4, len(account) // 2)
    return "***" + (account[-shown:] if shown else "")


def spoken_digits(digits: str) -> str:
    """``4567`` -> ``4 5 6 7`` so text-to-speech reads digits, not a number."""
    return " ".join(digits)
