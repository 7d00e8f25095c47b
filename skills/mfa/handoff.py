"""The business's next step once a call is settled: a transfer or a hang-up.

``handoff.on_verified`` and ``handoff.on_failed`` name a ``Destination``: an E.164
number or a ``sip:`` URI, and ``hangup`` for a failed call. ``Handoff`` is what one
answer carries, and ``add_to`` turns it into the SDK's actions, chosen from what
SignalWire documents:

- a phone number: the SWML ``connect`` verb in a ``{"transfer": true, "SWML": ...}``
  action (the call leaves the agent for good). A phone leg cannot carry SIP headers,
  so the destination learns the outcome from ``global_data`` and the outcome webhook
  (the ``call_id`` ties them together);
- a ``sip:`` URI: the same ``connect`` verb with ``headers`` (``ConnectDeviceSingle.
  headers`` in the SWML schema: "custom SIP headers to add to INVITE"). Not
  ``sip_refer``: REFER asks the caller's own SIP leg to transfer itself, and our
  callers come from the phone network; nor ``swml_transfer``, whose ``transfer`` verb
  goes to a SWML section or URL, not to a number or a SIP address;
- ``hangup``: the plain ``hangup`` action, not SWML.

The transfer action is built by hand, not with the SDK's ``connect()`` or
``execute_swml(transfer=True)``: they emit ``{"SWML": ..., "transfer": "true"}``, SWML
first and a string. SignalWire's guide "Executing SWML from a SWAIG function"
(signalwire/docs ``fern/products/swml/pages/guides/swaig/executing_swml.mdx``) warns that
when the SWML transfers the call (``connect``), ``"transfer": true`` must be in the same
action object *before* ``"SWML"``; read in order, the other shape leaves the AI on the
call beside the desk, still billing. The OpenAPI spec types ``transfer`` as a boolean.

Every one of them goes with ``post_process``: Jim says his one sentence first, then
the action lands (a transfer or hang-up ends the AI's turn for good).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import phonenumbers
from signalwire.core.function_result import FunctionResult

from skills.mfa.phone import mask_number

HANGUP = "hangup"

_SIP_URI = re.compile(
    r"^sips?:"
    r"(?:[A-Za-z0-9._~!$&'()*+,=%-]+(?::[^@\s;]*)?@)?"  # user (and password) part
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
    r"|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])"  # host: a domain, IPv4 or [IPv6]
    r"(?::\d{1,5})?"  # port
    r"(?:;[A-Za-z0-9._~!$&'()*+,=%:-]+)*$"  # ;parameters
)
_HEADER_SAFE = re.compile(r"[^A-Za-z0-9._@:+*-]")


class DestinationKind(StrEnum):
    NUMBER = "number"
    SIP = "sip"
    HANGUP = "hangup"


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    address: str = ""  # E.164 or SIP URI; empty for a hang-up

    @property
    def shown(self) -> str:
        """What events and logs may show: a number masked to its last 4, a SIP URI as set."""
        if self.kind is DestinationKind.NUMBER:
            return mask_number(self.address)
        return self.address


def parse_destination(value: str, *, hangup_allowed: bool) -> Destination:
    """A configured destination, or ``ValueError`` with a sentence for the operator."""
    text = value.strip()
    if text.lower() == HANGUP:
        if not hangup_allowed:
            raise ValueError("'hangup' is only for handoff.on_failed")
        return Destination(DestinationKind.HANGUP)
    if text.lower().startswith(("sip:", "sips:")):
        if not _SIP_URI.match(text):
            raise ValueError(
                "is not a SIP URI such as sip:desk@example.sip.signalwire.com "
                "(user@host, optional :port and ;parameters, no spaces)"
            )
        return Destination(DestinationKind.SIP, text)
    expected = "must be an E.164 number such as +15551234567, a sip: URI" + (
        " or hangup" if hangup_allowed else ""
    )
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ValueError(expected) from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if e164 != text or not phonenumbers.is_possible_number(number):
        raise ValueError(expected)
    return Destination(DestinationKind.NUMBER, e164)


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where this answer sends the call, and what a SIP destination is told."""

    destination: Destination
    sip_headers: tuple[tuple[str, str], ...] = field(default=())

    def describe(self) -> dict[str, str] | str:
        """The ``handoff`` of an event and of the outcome webhook: no full number."""
        if self.destination.kind is DestinationKind.HANGUP:
            return HANGUP
        return {"kind": "transfer", "to": self.destination.shown}

    def add_to(self, result: FunctionResult) -> None:
        """The SDK actions for this handoff, after the answer's other actions."""
        destination = self.destination
        result.set_post_process(True)
        if destination.kind is DestinationKind.HANGUP:
            result.hangup()
            return
        connect: dict[str, Any] = {"to": destination.address}
        if destination.kind is DestinationKind.SIP and self.sip_headers:
            connect["headers"] = [{"name": n, "value": v} for n, v in self.sip_headers]
        result.add_actions([transfer_action(connect)])


def transfer_action(connect: dict[str, Any]) -> dict[str, Any]:
    """``{"transfer": true, "SWML": ...}``: ``transfer`` first and boolean, as SignalWire's
    guide "Executing SWML from a SWAIG function" shows for SWML that moves the call."""
    swml = {"version": "1.0.0", "sections": {"main": [{"connect": connect}]}}
    return {"transfer": True, "SWML": swml}


def sip_headers(
    *, verified: bool, outcome: str, call_id: str, masked_number: str, account: str | None
) -> tuple[tuple[str, str], ...]:
    """What a SIP desk learns on the INVITE. Values come partly from the request body
    (the call id): anything but a small safe alphabet is dropped, so no header can be
    split or injected."""
    headers = [
        ("X-MFA-Verified", "true" if verified else "false"),
        ("X-MFA-Outcome", outcome),
        ("X-MFA-Call-ID", call_id),
        ("X-MFA-Number", masked_number),
    ]
    if account:
        headers.append(("X-MFA-Account", account))
    return tuple((name, _HEADER_SAFE.sub("", value)[:128]) for name, value in headers)
