"""The SWML the platform fetches: valid against the SDK's schema, consistent with the prompts."""

from __future__ import annotations

import re

import httpx
import pytest

from agent.app import build_agent
from agent.config.prompts import DEFAULT_PROMPTS_DIR
from agent.ops.platform import PlatformCall
from tests.support.defaults import AUTH

pytestmark = pytest.mark.anyio


@pytest.fixture
def agent_and_swml(make_settings, serve_agent):
    agent = build_agent(make_settings())
    url = serve_agent(agent)

    async def fetch() -> PlatformCall:
        async with httpx.AsyncClient(timeout=15) as http:
            call = PlatformCall(http=http, base_url=url, auth=AUTH)
            await call.start()
            return call

    return agent, fetch


async def test_swml_passes_the_sdk_schema(agent_and_swml):
    agent, fetch = agent_and_swml
    call = await fetch()
    valid, errors = agent.schema_utils.validate_document(call.swml)
    assert valid, errors


async def test_swml_enables_keypad_input_and_secure_shared_tools(agent_and_swml):
    _, fetch = agent_and_swml
    call = await fetch()
    ai = next(v["ai"] for v in call.swml["sections"]["main"] if "ai" in v)
    assert ai["params"]["digit_terminators"] == "#"
    assert 2000 <= ai["params"]["digit_timeout"] <= 10000
    tokens = {f["meta_data_token"] for f in call.functions.values()}
    assert tokens == {"mfa_skill"}
    for spec in call.functions.values():
        assert "__token=" in spec["web_hook_url"]
    assert ai["global_data"]["mfa_verified"] is False
    prompt_text = str(ai["prompt"])
    assert "keypad" in prompt_text and "Jim" in prompt_text


async def test_every_tool_the_prompts_name_exists(agent_and_swml):
    _, fetch = agent_and_swml
    call = await fetch()
    ai = next(v["ai"] for v in call.swml["sections"]["main"] if "ai" in v)
    texts = [p.read_text() for p in DEFAULT_PROMPTS_DIR.glob("*.md")] + [str(ai["prompt"])]
    named = {name for text in texts for name in re.findall(r"\b[a-z]+_mfa\b", text)}
    assert named, "the prompts should name the tools they rely on"
    assert named <= set(call.functions)
