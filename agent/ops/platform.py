"""What SignalWire's platform does around the agent during a call, as a small client.

It fetches the SWML like the platform does on an incoming call, calls each
SWAIG function through the ``web_hook_url`` that SWML names (its per-call
token included), and keeps ``meta_data`` (per ``meta_data_token``) and
``global_data`` between requests by applying the returned actions the way the
platform applies them. It also plays what ends the AI's part of a call: a
``hangup`` action, or SWML that ``connect``s the caller elsewhere (refused, as the
platform does, when the SWML's ``swaig_allow_swml`` is false); the call's ``ending``
then says where it went.

A transfer is played strictly, as SignalWire's guide "Executing SWML from a SWAIG
function" documents it (signalwire/docs,
``fern/products/swml/pages/guides/swaig/executing_swml.mdx``): SWML that moves the call
needs ``"transfer": true`` (a boolean) in the same action object, *before* ``"SWML"``.
Any other shape (the key after ``SWML``, the string ``"true"``, or no ``transfer``) is
a failed handoff: the AI stays on the call beside the destination, so ``ending`` stays
``None`` and ``failed_handoffs`` says why.
A per-turn ``end_of_speech_timeout`` action is kept in ``end_of_speech_timeouts``.
The end-to-end tests, the benchmarks and the ``python -m agent call`` simulator
all drive the agent through it.

``watch(watcher)`` shows every SWML document fetched and every 200 SWAIG reply, as
received, to ``watcher(kind, body)`` (``kind`` is ``"swml"`` or ``"reply"``): the tests
check each against SignalWire's own JSON schema for SWML (``tests/support/swml_schema.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpx

#: ``watcher(kind, body)``: ``kind`` is ``"swml"`` (a SWML document) or ``"reply"`` (a SWAIG
#: reply answered 200).
Watcher = Callable[[str, dict[str, Any]], None]
_watchers: list[Watcher] = []


def watch(watcher: Watcher) -> Callable[[], None]:
    """Show ``watcher`` what every ``PlatformCall`` receives; returns the function that stops
    it."""
    _watchers.append(watcher)
    return lambda: _watchers.remove(watcher)


def _show(kind: str, body: dict[str, Any]) -> None:
    for watcher in list(_watchers):
        watcher(kind, body)


@dataclass
class ToolReply:
    status_code: int
    body: dict[str, Any]

    @property
    def response(self) -> str:
        """The text the model reads; the split form (SDK 3.4+) as its two parts joined."""
        value = self.body.get("response", "")
        if isinstance(value, dict):
            parts = (value.get("tool_result"), value.get("tool_prompt"))
            return "\n".join(part for part in parts if isinstance(part, str) and part)
        return value if isinstance(value, str) else ""

    @property
    def tool_prompt(self) -> str:
        """What the model is told to say (the whole response when it is not split)."""
        value = self.body.get("response", "")
        if isinstance(value, dict):
            prompt = value.get("tool_prompt")
            return prompt if isinstance(prompt, str) else ""
        return self.response

    @property
    def actions(self) -> list[dict[str, Any]]:
        value = self.body.get("action", [])
        return value if isinstance(value, list) else []


@dataclass(frozen=True)
class CallEnding:
    """How the AI's part of the call ended: ``hangup``, or ``transfer`` to ``to``."""

    kind: str
    to: str = ""
    sip_headers: dict[str, str] = field(default_factory=dict)
    after_reply: bool = False  # post_process: the model spoke once more before it landed


@dataclass
class PlatformCall:
    """One call's view of the agent: SWML, functions, and the data the platform keeps."""

    http: httpx.AsyncClient
    base_url: str
    auth: tuple[str, str]
    caller: str = "+15551230001"
    called: str = "+15559870000"
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    swml: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    global_data: dict[str, Any] = field(default_factory=dict)
    transcript: list[tuple[str, dict[str, Any], ToolReply]] = field(default_factory=list)
    ending: CallEnding | None = None
    end_of_speech_timeouts: list[int] = field(default_factory=list)
    refused_swml: int = 0
    failed_handoffs: list[str] = field(default_factory=list)
    # SIGNALWIRE_SIGNING_KEY: sign every POST as SignalWire does (the agent refuses
    # unsigned webhooks when it has the key).
    signing_key: str | None = None

    async def start(self) -> dict[str, Any]:
        """POST the call to ``/`` as SignalWire does and read the SWML's AI section."""
        payload = {
            "call": {
                "call_id": self.call_id,
                "from": self.caller,
                "to": self.called,
                "direction": "inbound",
                "type": "phone",
            },
            "vars": {},
        }
        response = await self._post_json(self.base_url + "/", payload, self.auth)
        response.raise_for_status()
        self.swml = response.json()
        _show("swml", self.swml)
        ai = _ai_section(self.swml)
        self.global_data = dict(ai.get("global_data") or {})
        self.functions = {f["function"]: f for f in ai.get("SWAIG", {}).get("functions", [])}
        return self.swml

    async def invoke(self, function: str, **arguments: Any) -> ToolReply:
        """Call ``function`` through its ``web_hook_url`` and apply the returned actions."""
        spec = self.functions[function]
        token = spec.get("meta_data_token") or spec["web_hook_url"]
        body = self.request_body(function, arguments, token)
        if self.ending is not None:
            raise RuntimeError(f"the call already ended ({self.ending.kind})")
        reply = await self.post_to_webhook(spec["web_hook_url"], body)
        if reply.status_code == 200:
            self.apply_actions(token, reply.actions, after_reply=reply.body.get("post_process"))
        self.transcript.append((function, arguments, reply))
        return reply

    def request_body(
        self, function: str, arguments: dict[str, Any], meta_data_token: str
    ) -> dict[str, Any]:
        """The body SignalWire POSTs to a function's ``web_hook_url``: the shape of
        ``Webhooks.AI.AiSwaigToolWebhookPayload`` in its REST OpenAPI, which allows nothing
        else (``tests/e2e/test_swaig_payload_spec.py`` validates it against the vendored
        spec), so the tests drive the agent with what the platform sends. The SDK reads
        ``function``, ``argument``, ``call_id``, ``meta_data`` and ``global_data`` from it;
        the agent also ``caller_id_num``. (The spec has no ``substituted`` when the whole
        argument is JSON, and no ``purpose``: it names the description ``description``.)"""
        declared = self.functions.get(function, {})
        return {
            "app_name": "swml app",
            "function": function,
            "description": declared.get("description", ""),
            "argument": {"parsed": [arguments], "raw": json.dumps(arguments)},
            "argument_desc": declared.get("parameters", {}),
            "call_id": self.call_id,
            "ai_session_id": f"ai-{self.call_id}",
            "caller_id_num": self.caller,
            "caller_id_name": "",
            "meta_data_token": meta_data_token,
            "meta_data": dict(self.meta_data.get(meta_data_token, {})),
            "global_data": dict(self.global_data),
            "project_id": "00000000-0000-0000-0000-000000000000",
            "space_id": "00000000-0000-0000-0000-000000000001",
            "channel_active": True,
            "channel_offhook": True,
            "channel_ready": True,
            "conversation_type": "voice",
            "content_type": "text/swaig",
            "content_disposition": "SWAIG Function",
            "version": "2.0",
        }

    async def post_to_webhook(self, web_hook_url: str, body: dict[str, Any]) -> ToolReply:
        """POST to the webhook's path and query on ``base_url``, with the URL's credentials."""
        parts = urlsplit(web_hook_url)
        target = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        response = await self._post_json(target, body, _url_auth(parts, self.auth))
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 200:
            _show("reply", data)
        return ToolReply(response.status_code, data if isinstance(data, dict) else {})

    def apply_actions(
        self, meta_data_token: str, actions: list[dict[str, Any]], *, after_reply: Any = False
    ) -> None:
        meta = self.meta_data.setdefault(meta_data_token, {})
        for action in actions:
            if not isinstance(action, dict):
                continue
            if "SWML" in action:
                self._run_swml(action, after_reply=after_reply is True)
                continue
            for name, value in action.items():
                if name == "set_meta_data" and isinstance(value, dict):
                    meta.update(value)
                elif name == "unset_meta_data":
                    for key in [value] if isinstance(value, str) else list(value or []):
                        meta.pop(key, None)
                elif name == "set_global_data" and isinstance(value, dict):
                    self.global_data.update(value)
                elif name == "unset_global_data":
                    for key in [value] if isinstance(value, str) else list(value or []):
                        self.global_data.pop(key, None)
                elif name == "end_of_speech_timeout" and isinstance(value, int):
                    self.end_of_speech_timeouts.append(value)
                elif name == "hangup" and value:
                    self.ending = CallEnding("hangup", after_reply=after_reply is True)

    def _run_swml(self, action: dict[str, Any], *, after_reply: bool) -> None:
        """SWML from a tool: here only ``connect`` in the documented transfer shape."""
        params = _ai_section(self.swml).get("params") or {}
        if params.get("swaig_allow_swml") is False:
            self.refused_swml += 1
            return
        verbs = (action.get("SWML") or {}).get("sections", {}).get("main", [])
        for verb in verbs:
            connect = verb.get("connect") if isinstance(verb, dict) else None
            if not isinstance(connect, dict):
                continue
            problem = transfer_shape_problem(action)
            if problem is not None:
                self.failed_handoffs.append(problem)
                continue
            headers = {
                h["name"]: h["value"]
                for h in connect.get("headers", [])
                if isinstance(h, dict) and "name" in h and "value" in h
            }
            self.ending = CallEnding(
                "transfer", str(connect.get("to", "")), headers, after_reply=after_reply
            )

    async def post_summary(self, summary: dict[str, Any]) -> int:
        """Send the post-prompt summary to the URL the SWML names."""
        url = _ai_section(self.swml).get("post_prompt_url", "")
        parts = urlsplit(url)
        target = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        auth = _url_auth(parts, self.auth)
        body = {
            "call_id": self.call_id,
            "ai_session_id": f"ai-{self.call_id}",
            "post_prompt_data": {"raw": json.dumps(summary), "parsed": [summary]},
            "global_data": dict(self.global_data),
            "content_type": "text/swaig",
            "version": "2.0",
        }
        response = await self._post_json(target, body, auth)
        return response.status_code

    async def _post_json(
        self, url: str, body: dict[str, Any], auth: tuple[str, str]
    ) -> httpx.Response:
        """POST ``body`` as JSON bytes, signed over exactly ``url`` and those bytes when the
        call has a signing key."""
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if self.signing_key:
            headers.update(signalwire_signature(self.signing_key, url, content))
        return await self.http.post(url, content=content, headers=headers, auth=auth)


def signalwire_signature(key: str, url: str, body: bytes) -> dict[str, str]:
    """The headers SignalWire signs a JSON webhook with: hex HMAC-SHA1 and HMAC-SHA256 of
    the full URL followed by the raw body, under the space's signing key (the scheme the
    SDK's ``signalwire/core/security/webhook_validator.py`` checks)."""
    message = url.encode() + body
    return {
        "X-SignalWire-Signature": hmac.new(key.encode(), message, hashlib.sha1).hexdigest(),
        "X-SignalWire-Sha256-Signature": hmac.new(
            key.encode(), message, hashlib.sha256
        ).hexdigest(),
    }


def _url_auth(parts: SplitResult, default: tuple[str, str]) -> tuple[str, str]:
    """The credentials a URL names, percent-decoded as HTTP clients decode userinfo."""
    if not parts.username:
        return default
    return unquote(parts.username), unquote(parts.password or "")


def transfer_shape_problem(action: dict[str, Any]) -> str | None:
    """Why an action whose SWML moves the call would not leave the AI, or ``None``."""
    keys = list(action)
    if "transfer" not in action:
        return "no 'transfer' beside the SWML: the AI stays on the call"
    if action["transfer"] is not True:
        return f"'transfer' is {action['transfer']!r}, not the boolean true"
    if keys.index("transfer") > keys.index("SWML"):
        return "'transfer' comes after 'SWML': it must come before it in the action"
    return None


def _ai_section(swml: dict[str, Any]) -> dict[str, Any]:
    for verb in swml.get("sections", {}).get("main", []):
        if isinstance(verb, dict) and "ai" in verb:
            return dict(verb["ai"])
    raise ValueError("the SWML has no ai verb")
