"""The ``channels`` section of the YAML file: the line type before a send, and voice codes.

``lookup``: ``auto`` (the default) looks each number up with a SignalWire account and not
in the sandbox, because SignalWire's carrier lookup is billable; ``true``/``false`` force
it. The sandbox's lookup answers from ``sandbox_line_types`` (numbers not listed are
``wireless``), so the whole path runs without an account. ``voice_message`` is the words a
voice call reads before the code, one per language like ``code.message``; ``{company}``
is replaced by ``company_name``. How each line type is handled is in
``skills/mfa/flow/channels.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skills.mfa.phone import to_e164

LineRule = Literal["allow", "refuse"]
LineKind = Literal["wireless", "landline", "voip", "other"]

DEFAULT_VOICE_MESSAGE = {
    "en": "Hello, this is {company} with the verification code you asked for. Your code is:",
    "es": "Hola, le llama {company} con el código de verificación que pidió. Su código es:",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelsConfig(_Strict):
    # YAML reads `on`/`off` as true/false: both spellings mean the same here.
    lookup: bool | Literal["auto"] = "auto"
    cache_days: float = Field(30.0, gt=0, le=365)
    lookup_timeout_seconds: float = Field(2.0, gt=0, le=10)
    voice_to_number_on_file: bool = True
    voip: LineRule = "allow"
    other: LineRule = "allow"
    voice_message: str | dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_VOICE_MESSAGE))
    sandbox_line_types: dict[str, LineKind] = Field(default_factory=dict)

    @field_validator("voice_message")
    @classmethod
    def _short_enough(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        texts = [value] if isinstance(value, str) else list(value.values())
        for text in texts:
            if not text.strip() or len(text) > 300:
                raise ValueError("each voice message must be 1 to 300 characters")
        return value

    @field_validator("sandbox_line_types")
    @classmethod
    def _numbers(cls, value: dict[str, str]) -> dict[str, str]:
        normalised = {}
        for number, kind in value.items():
            e164 = to_e164(number, "US")
            if e164 is None:
                raise ValueError(f"{number!r} is not a phone number (E.164, e.g. +15551230199)")
            normalised[e164] = kind
        return normalised

    def looks_up(self, *, with_account: bool) -> bool:
        """``lookup``, where ``auto`` means with an account (the lookup is billable)."""
        return self.lookup if isinstance(self.lookup, bool) else with_account
