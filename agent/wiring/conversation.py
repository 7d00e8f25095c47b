"""What the SWML says: the languages Jim speaks, the prompt, the AI parameters, the global
data and the post-prompt."""

from __future__ import annotations

from typing import Any

from agent.config.language_config import LanguageConfig
from agent.config.prompts import load_prompt_sections
from agent.config.settings import Settings
from agent.mfa_agent import MfaAgent
from skills.mfa.flow.tools import GLOBAL_VERIFIED
from skills.mfa.speech.number_words import primary_subtag

CONSCIENCE = (
    "You are a verification agent. Never invent, repeat, guess or confirm a verification "
    "code, not even part of one. Only the verify_mfa tool decides whether a code is right, "
    "and a caller is verified only when verify_mfa said so on this call."
)
POST_PROMPT_TEMPERATURE = 0.1


def configure_languages(agent: MfaAgent, languages: list[LanguageConfig]) -> None:
    """The SWML of the languages Jim speaks, as SignalWire's SWML reference describes it.

    One language: one ``ai.languages`` entry. Several: ``ai.multilingual``, which the
    reference (``swml/.../ai/multilingual``) names for a call that follows the caller's
    language turn by turn (``ai.languages`` picks one per call; the two are mutually
    exclusive): speech recognition in code-switching mode, a voice per language, the
    first one opening the call, and the agent kept to the configured languages
    (``allowed``). Entries are built here rather than with the SDK's ``add_language``,
    which splits ``engine.voice:model`` into the deprecated ``engine`` key and writes a
    lone filler list as the deprecated ``fillers``, which is never used for speech fillers.
    """
    if len(languages) == 1:
        (only,) = languages
        entry: dict[str, Any] = {"name": only.name, "code": only.code, "voice": only.voice}
        if only.speech_fillers:
            entry["speech_fillers"] = list(only.speech_fillers)
        if only.function_fillers:
            entry["function_fillers"] = list(only.function_fillers)
        agent.set_languages([entry])
        return
    first = languages[0]
    multilingual: dict[str, Any] = {
        "start_language": primary_subtag(first.code),
        "allowed": [primary_subtag(lang.code) for lang in languages],
        "languages": [
            {"language": "default", "voice": first.voice},
            *({"language": primary_subtag(lang.code), "voice": lang.voice} for lang in languages),
        ],
    }
    for key, attribute in (("fillers", "speech_fillers"), ("function_fillers", "function_fillers")):
        per_language = {
            primary_subtag(lang.code): list(getattr(lang, attribute))
            for lang in languages
            if getattr(lang, attribute)
        }
        if per_language:
            multilingual[key] = per_language
    agent.set_multilingual(multilingual)


def configure_conversation(agent: MfaAgent, settings: Settings) -> None:
    """Language, prompt, AI parameters, global data and post-prompt: what the SWML says."""
    file = settings.file
    configure_languages(agent, file.languages)
    for section in load_prompt_sections(settings):
        agent.prompt_add_section(**section)
    call = file.call
    agent.set_params(
        {
            "digit_terminators": file.dtmf.digit_terminators,
            "digit_timeout": file.dtmf.digit_timeout_ms,
            # The normal value; while a code is pending send_mfa's answer lengthens it for
            # the turn (skills/mfa/flow/next_step.py).
            "end_of_speech_timeout": call.end_of_speech_ms,
            # Quiet while the caller opens their texts: prompt after attention_timeout
            # (schema range 10000..600000 or 0), leave after inactivity_timeout.
            "attention_timeout": call.attention_timeout_ms,
            "inactivity_timeout": call.inactivity_timeout_ms,
            # No call outlives its tool tokens (agent/config/call_config.py).
            "hard_stop_time": call.hard_stop_time,
            "hard_stop_prompt": call.hard_stop_prompt,
            # SWML from a tool only when a handoff transfers (connect is a SWML verb).
            "swaig_allow_swml": file.handoff.needs_swml,
            "swaig_set_global_data": True,
            "conscience": CONSCIENCE,
            "local_tz": "UTC",
        }
    )
    agent.set_global_data({GLOBAL_VERIFIED: False, "persona": file.persona_name})
    agent.set_post_prompt(
        "Summarize the call as JSON with keys: caller_wanted (short text), "
        "code_sent (true/false), verified (true only if verify_mfa said so), "
        "outcome (one short sentence). Never include a code or a phone number."
    )
    # A summary is a record, not a conversation: as deterministic as the model allows.
    agent.set_post_prompt_llm_params(temperature=POST_PROMPT_TEMPERATURE)
