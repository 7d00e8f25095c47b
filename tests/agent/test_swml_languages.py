"""The SWML of the languages Jim speaks, fetched the way the platform fetches it.

With several languages the document follows SignalWire's SWML reference for a call that
moves between languages (``ai.multilingual``: a voice per language, the first opening the
call, the agent kept to the configured ones) and carries no ``ai.languages`` (the two are
mutually exclusive); with one, one ``ai.languages`` entry as before. The expected shapes
are written out here from the reference, not from the product's builder.
"""

from __future__ import annotations

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.support.defaults import AUTH

pytestmark = pytest.mark.anyio

EN_TEXT = "From {company}: only say this code on the call you made to us. Your code:"
ES_TEXT = "De {company}: diga este codigo solo en la llamada que usted nos hizo. Su codigo:"
BILINGUAL = {
    "languages": [
        {"code": "en", "name": "English", "voice": "rime.spore"},
        {
            "code": "es",
            "name": "Spanish",
            "voice": "rime.luna",
            "speech_fillers": ["Pues..."],
            "function_fillers": ["Un momento."],
        },
    ],
    "code": {"message": {"en": EN_TEXT, "es": ES_TEXT}},
}


async def _swml(make_settings, serve_agent, config):
    agent = build_agent(make_settings(config=config))
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
    ai = next(v["ai"] for v in call.swml["sections"]["main"] if "ai" in v)
    return agent, call, ai


async def test_two_languages_follow_the_caller_turn_by_turn(make_settings, serve_agent):
    agent, call, ai = await _swml(make_settings, serve_agent, BILINGUAL)
    assert "languages" not in ai
    assert ai["multilingual"] == {
        "start_language": "en",
        "allowed": ["en", "es"],
        "languages": [
            {"language": "default", "voice": "rime.spore"},
            {"language": "en", "voice": "rime.spore"},
            {"language": "es", "voice": "rime.luna"},
        ],
        "fillers": {"es": ["Pues..."]},
        "function_fillers": {"es": ["Un momento."]},
    }
    valid, errors = agent.schema_utils.validate_document(call.swml)
    assert valid, errors
    language = call.functions["send_mfa"]["parameters"]["properties"]["language"]
    assert language["enum"] == ["en", "es"]
    assert "es (Spanish)" in language["description"]
    assert "fillers" not in call.functions["verify_mfa"]  # one language per function (schema)
    prompt = str(ai["prompt"])
    assert "Answer in the language the caller speaks" in prompt
    assert "English or Spanish" in prompt


async def test_one_language_is_one_languages_entry_as_before(make_settings, serve_agent):
    _, call, ai = await _swml(make_settings, serve_agent, {})
    assert ai["languages"] == [{"name": "English", "code": "en-US", "voice": "rime.spore"}]
    assert "multilingual" not in ai
    assert "language" not in call.functions["send_mfa"]["parameters"]["properties"]
    assert "Answer in the language the caller speaks" not in str(ai["prompt"])
    assert call.functions["send_mfa"]["fillers"] == {
        "en-US": ["One moment, I'm texting you a code now.", "Sending that code now."]
    }


async def test_a_lone_list_of_speech_fillers_stays_speech_fillers(make_settings, serve_agent):
    """The SDK's add_language would write it as ``fillers``, a deprecated spelling of
    ``function_fillers`` that SignalWire never uses for speech fillers."""
    config = {"languages": [{"code": "en-US", "voice": "rime.spore", "speech_fillers": ["Hmm..."]}]}
    _, _, ai = await _swml(make_settings, serve_agent, config)
    assert ai["languages"] == [
        {"name": "English", "code": "en-US", "voice": "rime.spore", "speech_fillers": ["Hmm..."]}
    ]
