"""Bad input gets a 4xx or a polite spoken answer: never a 500, never exception text."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.platform import PlatformCall
from tests.support.defaults import AUTH

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
async def call_and_url(make_settings, serve_agent):
    url = serve_agent(make_settings())
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
        yield call, url, http


def verify_url(call: PlatformCall) -> str:
    hook = call.functions["verify_mfa"]["web_hook_url"]
    return call.base_url + hook[hook.index("/swaig") :]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"not json at all", 400),
        (b"[1, 2, 3]", 400),
        (b'"just a string"', 400),
        (b"null", 400),
        (b'{"function": 42}', 400),
        (b'{"function": ["verify_mfa"]}', 400),
        (b'{"function": "verify_mfa", "call_id": 7}', 400),
        (b'{"function": "verify_mfa", "argument": "token"}', 400),
        (b'{"function": "verify_mfa", "meta_data": [1]}', 400),
        (b"{}", 400),
    ],
)
async def test_malformed_bodies_get_400(call_and_url, raw, status):
    call, _, http = call_and_url
    response = await http.post(
        verify_url(call), content=raw, auth=AUTH, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert "Traceback" not in response.text


async def test_huge_body_is_refused_without_500(call_and_url):
    call, _, http = call_and_url
    body = call.request_body("verify_mfa", {"token": "1" * 2_000_000}, "mfa_skill")
    response = await http.post(verify_url(call), json=body, auth=AUTH)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"token": 123456.5},
        {"token": None},
        {"token": ["1", "2"]},
        {"token": {"digits": "123456"}},
        {"token": "9" * 100_000},
        {"token": "🙂🙂🙂🙂🙂🙂"},
        {"token": "'; DROP TABLE pending_codes; --"},
    ],
)
async def test_odd_arguments_get_a_polite_answer(call_and_url, arguments):
    call, _, _ = call_and_url
    await call.invoke("send_mfa")
    reply = await call.invoke("verify_mfa", **arguments)
    assert reply.status_code == 200
    assert "no try was used" in reply.response
    assert call.meta_data["mfa_skill"]["mfa_attempts_left"] == 3


async def test_missing_argument_object_is_answered(call_and_url):
    call, _, _ = call_and_url
    body = call.request_body("send_mfa", {}, "mfa_skill")
    del body["argument"]
    reply = await call.post_to_webhook(call.functions["send_mfa"]["web_hook_url"], body)
    assert reply.status_code == 200
    assert "texted to the phone number ending in" in reply.response


async def test_wrong_types_in_platform_fields_are_answered(call_and_url):
    call, _, _ = call_and_url
    body = call.request_body("send_mfa", {"phone_number": 5551230001}, "mfa_skill")
    reply = await call.post_to_webhook(call.functions["send_mfa"]["web_hook_url"], body)
    assert reply.status_code == 200
    assert "only be texted to the phone number the caller is calling from" in reply.response


async def test_unknown_function_is_not_a_500(call_and_url):
    call, _, http = call_and_url
    body = call.request_body("drop_database", {}, "mfa_skill")
    response = await http.post(verify_url(call), json=body, auth=AUTH)
    assert response.status_code < 500
    assert "Traceback" not in response.text


async def test_swml_request_with_odd_body_is_not_a_500(call_and_url):
    _, url, http = call_and_url
    for raw in (b"[]", b"garbage", json.dumps({"call": "x"}).encode()):
        response = await http.post(
            url + "/", content=raw, auth=AUTH, headers={"content-type": "application/json"}
        )
        assert response.status_code < 500
