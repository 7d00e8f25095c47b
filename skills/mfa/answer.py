"""What one tool invocation decided, as a value, and the SDK reply built from it.

``send_mfa`` and ``verify_mfa`` decide; they neither publish nor build replies.
Each returns a ``ToolAnswer``, and the tool boundary turns it into exactly one
event and one ``FunctionResult``. So the event and the reply cannot disagree,
and the decision can be read (and tested) without the SDK's action format.

An answer never holds a code, a request id in its text, or a full phone
number: only the last four digits travel, the same digits events may show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from signalwire.core.function_result import FunctionResult

from skills.mfa.events import Outcome
from skills.mfa.handoff import Handoff


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """One outcome, the sentence the model reads, and the call state to change.

    ``number_last4`` is empty when no number was settled on (refused before a
    recipient was known, or a verify without a recorded number).
    ``set_meta_data``/``unset_meta_data`` change this tool pair's ``meta_data``;
    ``global_data`` is merged into the call's ``global_data``. ``account`` is whole
    here (the webhook and ``global_data`` need it); events mask it for logs and /live.
    """

    outcome: Outcome
    text: str
    attempts_left: int | None = None
    number_last4: str = ""
    set_meta_data: Mapping[str, Any] = field(default_factory=dict)
    unset_meta_data: tuple[str, ...] = ()
    global_data: Mapping[str, Any] = field(default_factory=dict)
    # Keys removed from the call's global_data: a code sent for another subject ends
    # what global_data said about the last verified one.
    unset_global_data: tuple[str, ...] = ()
    # The account number (digits) this answer is about, when a directory named the
    # recipient; the event, the webhook and global_data take it from here.
    account: str = ""
    # The directory's part in this answer (``found``, ``unknown``, ...), empty without one.
    lookup: str = ""
    # Which limit refused this send (``limits.LimitKind``), empty when none did.
    limit: str = ""
    # How the code went or goes (``sms``, ``call``), empty before a recipient is known; the
    # line type and the lookup's source when one was made (``flow/channels.py``).
    channel: str = ""
    line_type: str = ""
    line_lookup: str = ""
    # Set by ``skills.mfa.flow.next_step`` once the tool has decided (see there):
    status: str = ""  # a status line for the model that it must not read aloud
    history_note: str = ""  # replaces this call and its answer in the model's history
    end_of_speech_ms: int | None = None  # this turn's end-of-speech silence
    handoff: Handoff | None = None
    # A replayed answer (outcome ``replayed``) keeps what the first copy decided, so what
    # follows it (the handoff, the speech timing) is the same on the retry.
    first_outcome: Outcome | None = None
    # The provider provably never saw this request (breaker open, no connection made):
    # the check it began is given back to the code (``code_ledger``). Never replayed.
    provider_untouched: bool = False

    def __post_init__(self) -> None:
        # Read-only copies: an answer must not change after the tool has decided it.
        object.__setattr__(self, "set_meta_data", MappingProxyType(dict(self.set_meta_data)))
        object.__setattr__(self, "global_data", MappingProxyType(dict(self.global_data)))

    @property
    def masked_number(self) -> str:
        """What the event may show of the number: ``***1234``, or ``unknown``."""
        return f"***{self.number_last4}" if self.number_last4 else "unknown"


def function_result(answer: ToolAnswer) -> FunctionResult:
    """The SWAIG reply: the text (split from its status line when there is one), then
    global data unset and set, meta data set and unset, speech timing, history, handoff last."""
    if answer.status:
        result = FunctionResult(tool_result=answer.status, tool_prompt=answer.text)
    else:
        result = FunctionResult(answer.text)
    # One ``unset_*`` action per key: SWML's schema and its action reference type the value
    # as a string (or an object that resets everything), not the list the SDK accepts
    # (signalwire/docs fern/snippets/swml/_actions.mdx, ``action[].unset_meta_data``;
    # specs/swml/calling/.../SWMLObject.json ``$defs/UnsetMetaDataAction``).
    for key in answer.unset_global_data:
        result.remove_global_data(key)
    if answer.global_data:
        result.update_global_data(dict(answer.global_data))
    if answer.set_meta_data:
        result.set_metadata(dict(answer.set_meta_data))
    for key in answer.unset_meta_data:
        result.remove_metadata(key)
    # The two actions below are documented on the SDK's FunctionResult reference pages
    # (signalwire/docs fern/products/server-sdks/pages/reference/python/agents/function-result/
    # set-end-of-speech-timeout.mdx and replace-in-history.mdx) but are in no alternative of
    # SWML's ``$defs/Action``: the schema lags the reference there (tests/support/swml_schema.py
    # lists both, with these citations).
    if answer.end_of_speech_ms is not None:
        result.set_end_of_speech_timeout(answer.end_of_speech_ms)
    if answer.history_note:
        result.replace_in_history(answer.history_note)
    if answer.handoff is not None:
        answer.handoff.add_to(result)
    return result
