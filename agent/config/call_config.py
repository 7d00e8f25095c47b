"""The YAML keys that shape one call: its bounds (``call``), the business's next step
(``handoff``) and the text message's template check. ``FileConfig`` in
``agent/config/config_file.py`` holds them; a bad value stops start-up naming its key.

Ranges follow the SWML schema shipped in the SDK (``signalwire/schema.json``,
``$defs.AIParams``). The docs disagree on ``attention_timeout``: the SDK's API
reference gives a 30000 ms default with no range, the schema's description a 5000 ms
default, while the schema itself allows 10000..600000 ms or 0 (off). We follow the
schema's constraints, which is what the SDK's validator checks.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from skills.mfa.flow.sms_template import template_problem
from skills.mfa.handoff import Destination, parse_destination

# The lifetime of the per-call SWAIG tool tokens, which MfaAgent passes to the SDK
# (AgentBase's own default, token_expiry_secs=3600, in signalwire-sdk 3.7). A tool
# called after its token expired is refused, so no call may outlive it.
TOOL_TOKEN_EXPIRY_SECONDS = 3600

ATTENTION_TIMEOUT_MS = (10_000, 600_000)


def refuse(why: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``why`` (braces and all)."""
    return PydanticCustomError("invalid", "{why}", {"why": why})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallConfig(_Strict):
    """How long a call may last and how the agent listens."""

    hard_stop_seconds: int = Field(900, ge=60)
    hard_stop_prompt: str = Field(
        "The call has reached its time limit. Apologise, tell the caller they can call again "
        "to finish verifying, and say goodbye.",
        min_length=1,
        max_length=500,
    )
    inactivity_timeout_ms: int = Field(120_000, ge=10_000, le=3_600_000)
    attention_timeout_ms: int = 30_000
    end_of_speech_ms: int = Field(700, ge=250, le=10_000)
    end_of_speech_pending_ms: int = Field(1_500, ge=250, le=10_000)

    @field_validator("hard_stop_seconds")
    @classmethod
    def _below_token_expiry(cls, value: int) -> int:
        if value >= TOOL_TOKEN_EXPIRY_SECONDS:
            raise refuse(
                f"must be below {TOOL_TOKEN_EXPIRY_SECONDS}, the lifetime of the per-call tool "
                "tokens (a tool called after it is refused)"
            )
        return value

    @field_validator("attention_timeout_ms")
    @classmethod
    def _attention_range(cls, value: int) -> int:
        low, high = ATTENTION_TIMEOUT_MS
        if value != 0 and not low <= value <= high:
            raise refuse(f"must be 0 (off) or {low} to {high} ms (the SWML schema's range)")
        return value

    @property
    def hard_stop_time(self) -> str:
        """SWML's ``hard_stop_time`` format: ``15m``, ``14m30s``."""
        minutes, seconds = divmod(self.hard_stop_seconds, 60)
        return (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")


class HandoffConfig(_Strict):
    """Where a settled call goes; None keeps the caller with the agent."""

    on_verified: str | None = None
    on_failed: str | None = None

    @field_validator("on_verified")
    @classmethod
    def _verified_destination(cls, value: str | None) -> str | None:
        return _checked(value, hangup_allowed=False)

    @field_validator("on_failed")
    @classmethod
    def _failed_destination(cls, value: str | None) -> str | None:
        return _checked(value, hangup_allowed=True)

    @property
    def verified(self) -> Destination | None:
        return _destination(self.on_verified, hangup_allowed=False)

    @property
    def failed(self) -> Destination | None:
        return _destination(self.on_failed, hangup_allowed=True)

    @property
    def needs_swml(self) -> bool:
        """Whether a tool must return SWML: every transfer is the SWML ``connect`` verb."""
        return any(d is not None and d.kind != "hangup" for d in (self.verified, self.failed))


def _checked(value: str | None, *, hangup_allowed: bool) -> str | None:
    if value is None:
        return None
    try:
        destination = parse_destination(value, hangup_allowed=hangup_allowed)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    return destination.address or destination.kind.value


def _destination(value: str | None, *, hangup_allowed: bool) -> Destination | None:
    return parse_destination(value, hangup_allowed=hangup_allowed) if value else None


def check_message_template(template: str, company: str, token_length: int) -> None:
    """Raise a ``ValidationError`` at ``code.message`` when the text will not fit one SMS
    segment with the code (see ``skills/mfa/flow/sms_template.py``)."""
    problem = template_problem(template, company, token_length)
    if problem is None:
        return
    detail: Any = InitErrorDetails(type=refuse(problem), loc=("code", "message"), input=template)
    raise ValidationError.from_exception_data("FileConfig", [detail])
