"""Bad input gets a 4xx or a polite spoken answer: never a 500, never exception text."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.ops.platform import PlatformCall
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


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
async def test_deeply_nested_bodies_get_400_not_500(call_and_url, depth):
    """100,000 nested arrays ended in a RecursionError (a 500 the platform retries)."""
    call, _, http = call_and_url
    nested = "[" * depth + "]" * depth
    raw = '{"function": "verify_mfa", "argument": {"parsed": [{"token": ' + nested + "}]}}"
    response = await http.post(
        verify_url(call), content=raw, auth=AUTH, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


async def test_a_body_nested_like_a_real_request_is_served(call_and_url):
    call, _, _ = call_and_url
    reply = await call.invoke("verify_mfa", token={"a": {"b": {"c": [[["1"]]]}}})
    assert reply.status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/swaig/extra/thing", "/admin", "/.env", "/events2"])
@pytest.mark.parametrize("with_auth", [True, False])
async def test_unknown_paths_are_404(call_and_url, path, with_auth):
    """The SDK's catch-all answered 200 {"error": "Path not found"}: a 404 here."""
    _, url, http = call_and_url
    for method in ("GET", "POST"):
        response = await http.request(method, url + path, auth=AUTH if with_auth else None)
        # Without credentials the ingress answers 401 before any route is looked up.
        assert response.status_code == (404 if with_auth else 401), (method, path, response.text)


async def test_known_paths_still_answer_without_a_trailing_slash(call_and_url):
    _, url, http = call_and_url
    assert (await http.post(url + "/swaig", json={}, auth=AUTH)).status_code != 404
    assert (await http.post(url, json={}, auth=AUTH)).status_code == 200


async def test_a_token_counts_only_for_the_call_it_was_minted_for(call_and_url):
    """SDK 3.7.4+ accepts a token that matches the body's conversation_id. With it, one
    call's token served any number of fresh call ids, each with a fresh per-call budget."""
    call, _, _ = call_and_url
    spec = call.functions["send_mfa"]
    body = call.request_body("send_mfa", {}, spec["meta_data_token"])
    body["conversation_id"] = call.call_id
    body["call_id"] = "another-call-0001"
    reply = await call.post_to_webhook(spec["web_hook_url"], body)
    assert reply.status_code == 200
    assert "security token" in reply.response  # the SDK's refusal: nothing was sent
    assert not reply.actions

    body["call_id"] = call.call_id  # the same token for its own call still works
    reply = await call.post_to_webhook(spec["web_hook_url"], body)
    assert "texted" in reply.response


async def test_an_overlong_call_id_is_refused_before_it_names_logs_or_limit_keys(call_and_url):
    call, _, http = call_and_url
    body = call.request_body("verify_mfa", {"token": "123456"}, "mfa_skill")
    body["call_id"] = "c" * 20_000
    response = await http.post(verify_url(call), json=body, auth=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "call_id longer than 128 characters"}
