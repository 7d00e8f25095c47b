"""The MFA skill: registers ``send_mfa`` and ``verify_mfa`` and explains them to the model.

The composition root (``agent/app.py``) builds the provider, the policy and the
event publisher from the settings and hands them over as skill params; the
skill validates them in ``setup()`` and wires the tools. Both tools are
``secure`` (per-call tokens) and share one ``meta_data_token`` so the pending
request id that ``send_mfa`` stores is visible to ``verify_mfa`` alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from signalwire.core.skill_base import SkillBase

from skills.mfa.delivery.providers.base import CodeProvider
from skills.mfa.events import EventPublisher
from skills.mfa.flow.channels import ChannelPolicy
from skills.mfa.flow.next_step import NextStep
from skills.mfa.flow.recipient import AccountRecipients
from skills.mfa.flow.tools import CodePolicy, MfaTools
from skills.mfa.limits.send_limits import SendLimiter
from skills.mfa.speech.number_words import primary_subtag

META_DATA_TOKEN = "mfa_skill"

SEND_FILLERS = ["One moment, I'm texting you a code now.", "Sending that code now."]
VERIFY_FILLERS = ["Let me check that code.", "Checking that now."]


class MfaSkill(SkillBase):
    SKILL_NAME = "mfa"
    SKILL_DESCRIPTION = "Text a one-time code to the caller's phone and verify it"
    SKILL_VERSION = "0.1.0"
    REQUIRED_PACKAGES: ClassVar[list[str]] = ["httpx", "phonenumbers", "text_to_num"]

    @classmethod
    def get_parameter_schema(cls) -> dict[str, dict[str, Any]]:
        schema = super().get_parameter_schema()
        schema.update(
            {
                "provider": {
                    "type": "object",
                    "description": "The CodeProvider (SignalWire or sandbox) chosen at start-up",
                    "required": True,
                },
                "policy": {
                    "type": "object",
                    "description": "CodePolicy: token_length, valid_for, max_attempts, ...",
                    "required": True,
                },
                "publisher": {
                    "type": "object",
                    "description": "EventPublisher that receives every outcome",
                    "required": True,
                },
                "agent_id": {
                    "type": "string",
                    "description": "Names the agent in events",
                    "required": True,
                },
                "limiter": {
                    "type": "object",
                    "description": "SendLimiter enforcing the abuse limits (optional)",
                    "required": False,
                },
                "accounts": {
                    "type": "object",
                    "description": "AccountRecipients: text the number on file for an account "
                    "(optional; set when a directory is configured)",
                    "required": False,
                },
                "binding_key": {
                    "type": "string",
                    "description": "bytes that seal meta_data to its call (binding.binding_key); "
                    "random per process when absent",
                    "required": False,
                    "hidden": True,
                },
                "replay_pending_seconds": {
                    "type": "number",
                    "description": "How long a request in flight holds its fingerprint",
                    "default": 15.0,
                },
                "next_step": {
                    "type": "object",
                    "description": "NextStep: speech timing, history and the handoff (optional)",
                    "required": False,
                },
                "recorder": {
                    "type": "object",
                    "description": "OutcomeRecorder: a final outcome is written before the "
                    "tool answers (optional; the agent's durable outbox)",
                    "required": False,
                },
                "channels": {
                    "type": "object",
                    "description": "ChannelPolicy: line type looked up before a send, a voice "
                    "code to a landline on file (optional; without it, always a text)",
                    "required": False,
                },
                "language_code": {
                    "type": "string",
                    "description": "Language the spoken fillers are keyed by (one language)",
                    "default": "en-US",
                },
                "languages": {
                    "type": "object",
                    "description": "{code: name} of every language the agent speaks, the "
                    "first first; with several, send_mfa takes the caller's language",
                    "required": False,
                },
            }
        )
        return schema

    def setup(self) -> bool:
        provider = self.params.get("provider")
        policy = self.params.get("policy")
        publisher = self.params.get("publisher")
        agent_id = self.params.get("agent_id")
        if not isinstance(provider, CodeProvider):
            self.logger.error("mfa skill needs a CodeProvider in params['provider']")
            return False
        if not isinstance(policy, CodePolicy) or not isinstance(publisher, EventPublisher):
            self.logger.error("mfa skill needs params['policy'] and params['publisher']")
            return False
        if not isinstance(agent_id, str) or not agent_id:
            self.logger.error("mfa skill needs params['agent_id']")
            return False
        self.policy = policy
        self.language_code = str(self.params.get("language_code") or "en-US")
        languages = self.params.get("languages") or {self.language_code: "English"}
        if not isinstance(languages, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in languages.items()
        ):
            self.logger.error("mfa skill: params['languages'] must be {code: name}")
            return False
        self.languages: dict[str, str] = dict(languages)
        limiter = self.params.get("limiter")
        if limiter is not None and not isinstance(limiter, SendLimiter):
            self.logger.error("mfa skill: params['limiter'] must be a SendLimiter")
            return False
        accounts = self.params.get("accounts")
        if accounts is not None and not isinstance(accounts, AccountRecipients):
            self.logger.error("mfa skill: params['accounts'] must be AccountRecipients")
            return False
        self.accounts = accounts
        key = self.params.get("binding_key")
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            self.logger.error("mfa skill: params['binding_key'] must be at least 16 bytes")
            return False
        pending_seconds = self.params.get("replay_pending_seconds", 15.0)
        if not isinstance(pending_seconds, int | float) or not 1 <= pending_seconds <= 300:
            self.logger.error("mfa skill: params['replay_pending_seconds'] must be 1..300")
            return False
        next_step = self.params.get("next_step")
        if next_step is not None and not isinstance(next_step, NextStep):
            self.logger.error("mfa skill: params['next_step'] must be a NextStep")
            return False
        channels = self.params.get("channels")
        if channels is not None and not isinstance(channels, ChannelPolicy):
            self.logger.error("mfa skill: params['channels'] must be a ChannelPolicy")
            return False
        self.tools = MfaTools(
            provider=provider,
            policy=policy,
            publisher=publisher,
            agent_id=agent_id,
            limiter=limiter,
            accounts=accounts,
            binding_key=key,
            pending_seconds=float(pending_seconds),
            next_step=next_step,
            recorder=self.params.get("recorder"),
            channels=channels,
        )
        return True

    def register_tools(self) -> None:
        number_hint = (
            "Leave it out to text the number the caller is calling from. Fill it only when "
            "the caller asks for another number."
            if self.policy.allow_other_numbers
            else "Leave it out: codes only go to the number the caller is calling from."
        )
        parameters = {"phone_number": {"type": "string", "description": number_hint}}
        description = (
            "Text a one-time verification code to the caller's phone. Call it once the "
            "caller agrees to receive a code, or when they ask for a new one."
        )
        if self.accounts is not None:
            parameters["account_number"] = {
                "type": "string",
                "description": "The caller's account number exactly as they said or typed it, "
                "e.g. 'four oh seven two two' or '40722'; do not guess missing digits.",
            }
            description = (
                "Text a one-time verification code to the phone number on file for the "
                "caller's account. Call it with the account number once the caller gives it, "
                "or again when they ask for a new code."
            )
            if not self.accounts.policy.caller_number_allowed:
                parameters = {"account_number": parameters["account_number"]}
        if len(self.languages) > 1:
            spoken = ", ".join(f"{code} ({name})" for code, name in self.languages.items())
            parameters["language"] = {
                "type": "string",
                "enum": list(self.languages),
                "description": f"The language the caller speaks: one of {spoken}. The text "
                "message is written in it.",
            }
        self.define_tool(
            name="send_mfa",
            description=description,
            parameters=parameters,
            handler=self.tools.send_mfa,
            secure=True,
            fillers=self._fillers("send_mfa"),
            meta_data_token=META_DATA_TOKEN,
        )
        self.define_tool(
            name="verify_mfa",
            description=(
                "Check the code the caller read back or typed. Pass exactly what they said, "
                "words or digits; do not guess missing digits."
            ),
            parameters={
                "token": {
                    "type": "string",
                    "description": "The code as the caller said or typed it, e.g. '4 8 1 2 2 9'",
                },
            },
            required=["token"],
            handler=self.tools.verify_mfa,
            secure=True,
            fillers=self._fillers("verify_mfa"),
            meta_data_token=META_DATA_TOKEN,
        )

    def _fillers(self, tool: str) -> dict[str, list[str]] | None:
        """The tool's own fillers: English, for an English-only agent. A SWAIG function's
        fillers hold one language (the SDK's SWML schema, ``FunctionFillers``), so with
        several languages each language's ``function_fillers`` speak instead."""
        if len(self.languages) > 1 or primary_subtag(self.language_code) != "en":
            return None
        return {self.language_code: SEND_FILLERS if tool == "send_mfa" else VERIFY_FILLERS}

    def get_hints(self) -> list[str]:
        return ["code", "verification", "oh", "double", "triple", "text me"]

    def _get_prompt_sections(self) -> list[dict[str, Any]]:
        length = self.policy.token_length
        return [
            {
                "title": "Verification tools",
                "body": (
                    f"You verify callers with a {length}-digit code texted to their phone. "
                    "You never see the code and must never make one up or repeat one back."
                ),
                "bullets": [
                    *self._account_bullets(),
                    "Use send_mfa to text the code, only after the caller agrees.",
                    f"Use verify_mfa with what the caller says or types; it must hold {length} "
                    "digits. If the caller types digits on the keypad, pass those digits.",
                    "Only verify_mfa can mark a caller as verified. Never say someone is "
                    "verified unless verify_mfa said so in this call.",
                    "If the code is wrong, say how many tries are left; if it has expired or "
                    "ran out of tries, offer to send a new one with send_mfa.",
                ],
            }
        ]

    def _account_bullets(self) -> list[str]:
        if self.accounts is None:
            return []
        return [
            "Codes go to the phone number on file for the caller's account, not necessarily "
            "the phone they are calling from: ask for their account number first and pass it "
            "to send_mfa as account_number.",
            "If send_mfa says no code was sent for that account number, say exactly that; "
            "never suggest whether the account exists.",
        ]
