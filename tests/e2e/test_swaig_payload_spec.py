"""What the simulator's platform (``PlatformCall``) POSTs to the tools, judged by SignalWire's
REST OpenAPI: ``Webhooks.AI.AiSwaigToolWebhookPayload`` (vendored under
``tests/schemas/signalwire/``), whose ``unevaluatedProperties: false`` refuses any field it does
not declare. Every end-to-end test drives the agent through ``PlatformCall``, so this keeps
them driving it with the body the platform sends: here the bodies are taken off the wire (an
httpx request hook on the client the call posts with) during a whole call against the fake
space, each validated, and the call must verify (the SDK and the agent read that shape).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from testkit.openapi_subset import load_document
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER
from tests.support.prism import SPEC

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PAYLOAD = "Webhooks.AI.AiSwaigToolWebhookPayload"


@cache
def payload_validator() -> Draft202012Validator:
    components = load_document(SPEC)["components"]
    schema = {"$ref": f"#/components/schemas/{PAYLOAD}", "components": components}
    return Draft202012Validator(schema)


def problems(body: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in payload_validator().iter_errors(body)
    )


def test_the_validator_refuses_what_the_spec_refuses():
    """The detector fires: a field the spec does not declare, and one it requires left out."""
    assert any("purpose" in p for p in problems({"purpose": "x"}))
    assert any("'description' is a required property" in p for p in problems({}))


async def test_every_swaig_body_of_a_call_is_the_specs_payload(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    url = serve_agent(make_settings(signalwire_url=sw_url))
    posted: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.startswith("/swaig"):
            posted.append(json.loads(request.content))

    async with httpx.AsyncClient(timeout=15, event_hooks={"request": [record]}) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        await call.invoke("verify_mfa", token=wrong_code(fake.last_code_for(CALLER)))
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    assert "caller is verified" in reply.response
    assert [body["function"] for body in posted] == ["send_mfa", "verify_mfa", "verify_mfa"]
    for body in posted:
        assert problems(body) == [], body["function"]
    # The declared function's description and parameters, as the spec describes them.
    assert posted[0]["description"] == call.functions["send_mfa"]["description"]
    assert posted[0]["argument_desc"] == call.functions["send_mfa"]["parameters"]
    assert posted[1]["meta_data"], "the sealed pending code, kept by the platform"
