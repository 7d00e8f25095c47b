"""Which channel reaches the number about to get a code: a text, a voice call, or none.

Decided from the line type (``delivery.line_type``), looked up once per number and cached:

- ``wireless`` or ``unknown`` (including a lookup that failed or timed out): a text, as
  without a lookup. A failing lookup never blocks a call;
- ``landline``: never a text, which could not arrive. A number on file (the directory's)
  that is not the line the caller is on gets a voice call that reads the code out
  (``POST /mfa/call``, verified like a text); the caller's own landline gets nothing
  (SignalWire's notes: a voice code to the line the caller is calling from is useless
  mid-call, the line is busy), and the call follows ``handoff.on_failed``;
- ``voip`` and other types: the operator's policy per type, ``allow`` (a text) or
  ``refuse`` (a polite refusal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from skills.mfa.delivery.line_type import (
    CachedLineTypes,
    LineAnswer,
    LineType,
    LookupSource,
)
from skills.mfa.delivery.providers.base import Channel
from skills.mfa.events import Outcome


class LinePolicy(StrEnum):
    ALLOW = "allow"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """From the ``channels`` section of the YAML file; ``lookups`` is None when off."""

    lookups: CachedLineTypes | None = None
    voice_to_number_on_file: bool = True
    voip: LinePolicy = LinePolicy.ALLOW
    other: LinePolicy = LinePolicy.ALLOW
    # The words read before the code on a voice call, per configured language.
    voice_messages: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def voice_message_for(self, language: str, fallback: str) -> str:
        return dict(self.voice_messages).get(language, fallback)


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    """A channel to send on, or the outcome that refuses a send (``channel`` is None)."""

    line: LineAnswer
    channel: Channel | None = Channel.SMS
    refusal: Outcome | None = None


NO_LOOKUP = LineAnswer(LineType.UNKNOWN, LookupSource.OFF)


async def choose_channel(
    policy: ChannelPolicy, target: str, *, caller: str | None, on_file: bool
) -> ChannelChoice:
    """The channel for ``target``: ``on_file`` when a directory named it (an account's
    number), ``caller`` the number the caller is calling from (E.164, or None)."""
    if policy.lookups is None:
        return ChannelChoice(NO_LOOKUP)
    line = await policy.lookups.line_of(target)
    kind = line.line_type
    if kind in (LineType.WIRELESS, LineType.UNKNOWN):
        return ChannelChoice(line)
    if kind is LineType.LANDLINE:
        if on_file and target != caller and policy.voice_to_number_on_file:
            return ChannelChoice(line, Channel.CALL)
        return ChannelChoice(line, None, Outcome.LANDLINE)
    rule = policy.voip if kind is LineType.VOIP else policy.other
    if rule is LinePolicy.REFUSE:
        return ChannelChoice(line, None, Outcome.LINE_TYPE_REFUSED)
    return ChannelChoice(line)
