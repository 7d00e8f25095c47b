"""The text message's template, and whether it fits one SMS segment with the code.

SignalWire puts the code after the message text, with a space between them, so the
text a phone receives is ``message + " " + code``. One segment holds 160 GSM-7
septets; a character of the GSM-7 extension table (``[]{}|~^\\€`` and form feed)
is sent as an escape plus itself and takes two. One character outside GSM-7
(a curly quote, most accented capitals, any emoji) switches the whole message to
UCS-2, where one segment holds 70 UTF-16 code units. A message over that is split
into several texts, which cost more and can arrive out of order: refused at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter

COMPANY_PLACEHOLDER = "company"

GSM7_SEGMENT = 160
UCS2_SEGMENT = 70

# 3GPP TS 23.038, the default alphabet (the escape character 0x1B left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs an escape septet plus its own.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a text would be encoded and how much of one segment it uses."""

    encoding: str  # "GSM-7" or "UCS-2"
    used: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    limit: int
    first_non_gsm: str = ""

    @property
    def fits(self) -> bool:
        return self.used <= self.limit


def count_segment(text: str) -> SegmentCount:
    outside = next((ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION), "")
    if outside:
        units = len(text.encode("utf-16-le")) // 2
        return SegmentCount("UCS-2", units, UCS2_SEGMENT, outside)
    septets = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return SegmentCount("GSM-7", septets, GSM7_SEGMENT)


def render_message(template: str, company: str) -> str:
    """The message text with ``{company}`` filled in; other braces are refused by
    ``template_problem`` at start-up."""
    return template.replace("{" + COMPANY_PLACEHOLDER + "}", company)


def template_problem(template: str, company: str, token_length: int) -> str | None:
    """Why ``template`` cannot be used, or None. The sentence is for the operator."""
    try:
        names = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError:
        return "has an unmatched brace; write {company} for the company name"
    unknown = sorted(names - {COMPANY_PLACEHOLDER})
    if unknown:
        return f"has an unknown placeholder {{{unknown[0]}}}; only {{company}} is filled in"
    sample = render_message(template, company) + " " + "0" * token_length
    count = count_segment(sample)
    if count.fits:
        return None
    if count.encoding == "UCS-2":
        return (
            f"holds {count.first_non_gsm!r}, a character outside GSM-7, so the text is sent "
            f"as UCS-2 where one SMS segment holds {UCS2_SEGMENT} characters; with the company "
            f"name, a space and the {token_length}-digit code it is {count.used}"
        )
    return (
        f"with the company name, a space and the {token_length}-digit code the text is "
        f"{count.used} GSM-7 characters (each of ^{{}}\\[~]|€ counts as two); one SMS segment "
        f"holds {GSM7_SEGMENT}"
    )
