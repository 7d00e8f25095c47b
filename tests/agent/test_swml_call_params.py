"""The ai.params of an OTP call in the rendered SWML, and the SWML a handoff returns, both
checked with the SDK's own schema validator (``signalwire/schema.json``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from signalwire.core.function_result import FunctionResult

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from skills.mfa.handoff import Handoff, parse_destination
from tests.support.defaults import AUTH

pytestmark = pytest.mark.anyio


async def rendered(make_settings, serve_agent, config: dict[str, Any]) -> tuple[Any, dict]:
    agent = build_agent(make_settings(config=config))
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
    return agent, call.swml


def ai_of(swml: dict) -> dict:
    return next(v["ai"] for v in swml["sections"]["main"] if "ai" in v)


async def test_default_call_params_are_in_the_swml_and_pass_the_schema(make_settings, serve_agent):
    agent, swml = await rendered(make_settings, serve_agent, {})
    valid, errors = agent.schema_utils.validate_document(swml)
    assert valid, errors
    ai = ai_of(swml)
    params = ai["params"]
    assert params["hard_stop_time"] == "15m"
    assert "time limit" in params["hard_stop_prompt"]
    assert params["attention_timeout"] == 30000
    assert params["inactivity_timeout"] == 120000
    assert params["end_of_speech_timeout"] == 700
    assert params["swaig_allow_swml"] is False
    assert params["swaig_set_global_data"] is True
    conscience = params["conscience"]
    for word in ("invent", "repeat", "guess", "confirm", "verify_mfa"):
        assert word in conscience
    assert ai["post_prompt"]["temperature"] == 0.1


@pytest.mark.parametrize(
    ("config", "hard_stop", "allow_swml"),
    [
        (
            {"call": {"hard_stop_seconds": 930}, "handoff": {"on_verified": "+14155550123"}},
            "15m30s",
            True,
        ),
        (
            {"call": {"hard_stop_seconds": 45 * 60}, "handoff": {"on_failed": "hangup"}},
            "45m",
            False,
        ),
        ({"handoff": {"on_failed": "sip:desk@example.com"}}, "15m", True),
    ],
)
async def test_configured_params_reach_the_swml(
    make_settings, serve_agent, config, hard_stop, allow_swml
):
    agent, swml = await rendered(make_settings, serve_agent, config)
    valid, errors = agent.schema_utils.validate_document(swml)
    assert valid, errors
    params = ai_of(swml)["params"]
    assert params["hard_stop_time"] == hard_stop
    assert params["swaig_allow_swml"] is allow_swml


@pytest.mark.parametrize(
    "destination",
    ["+14155550123", "sip:desk@example.sip.signalwire.com"],
)
def test_the_swml_a_transfer_returns_passes_the_schema(make_settings, destination):
    agent = build_agent(make_settings())
    headers = (("X-MFA-Verified", "true"), ("X-MFA-Call-ID", "c-1"))
    result = FunctionResult("x")
    Handoff(parse_destination(destination, hangup_allowed=False), headers).add_to(result)
    (action,) = result.to_dict()["action"]
    assert list(action) == ["transfer", "SWML"] and action["transfer"] is True
    valid, errors = agent.schema_utils.validate_document(action["SWML"])
    assert valid, errors


def test_the_validator_refuses_a_malformed_header(make_settings):
    """The check above means something: a header without a value is refused."""
    agent = build_agent(make_settings())
    swml = {
        "version": "1.0.0",
        "sections": {
            "main": [{"connect": {"to": "sip:a@example.com", "headers": [{"name": "X"}]}}]
        },
    }
    valid, _ = agent.schema_utils.validate_document(swml)
    assert not valid
