"""Any password works: the SWML's URLs carry it percent-encoded, the agent takes it back.

A generated password is full of ``@ / : # ?``. Written into a URL as it is, the first
``@`` or ``/`` ends the userinfo early and every tool call gets a 401. The expected
URL form here is computed with the standard library, not the product's helper.
"""

from __future__ import annotations

import string
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.support.defaults import CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

# Every printable ASCII punctuation character, 32 of them: over the 16 an account needs.
PUNCTUATION_PASSWORD = string.punctuation
USER = "mfa ops@desk"


@pytest.fixture
def agent_url(fake_signalwire, make_settings, serve_agent):
    fake, sw_url = fake_signalwire
    settings = make_settings(
        signalwire_url=sw_url,
        SWML_BASIC_AUTH_USER=USER,
        SWML_BASIC_AUTH_PASSWORD=PUNCTUATION_PASSWORD,
    )
    return fake, serve_agent(build_agent(settings))


async def test_a_whole_call_verifies_with_a_password_of_every_punctuation_character(agent_url):
    fake, url = agent_url
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=(USER, PUNCTUATION_PASSWORD))
        await call.start()
        for function in ("send_mfa", "verify_mfa"):
            parts = urlsplit(call.functions[function]["web_hook_url"])
            # The URL still parses: the host is the agent's, the credentials come back whole.
            assert parts.hostname in {"127.0.0.1", "localhost"}
            assert parts.port is not None
            assert parts.username == quote(USER, safe="")
            assert parts.password == quote(PUNCTUATION_PASSWORD, safe="")
            assert unquote(parts.password) == PUNCTUATION_PASSWORD
        sent = await call.invoke("send_mfa")
        assert sent.status_code == 200
        verified = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
    assert verified.status_code == 200
    assert call.global_data["mfa_verified"] is True


async def test_a_client_that_does_not_decode_the_userinfo_is_let_in_too(agent_url):
    """Some HTTP clients put the URL's userinfo into the header as written (encoded)."""
    _, url = agent_url
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=(USER, PUNCTUATION_PASSWORD))
        await call.start()
        spec = call.functions["send_mfa"]
        parts = urlsplit(spec["web_hook_url"])
        body = call.request_body("send_mfa", {}, spec["meta_data_token"])
        answer = await http.post(
            f"{url}{parts.path}?{parts.query}",
            json=body,
            auth=(parts.username or "", parts.password or ""),  # still percent-encoded
        )
    assert answer.status_code == 200
    assert "status: code sent" in answer.text


@pytest.mark.parametrize(
    "password",
    [
        PUNCTUATION_PASSWORD[:-1],
        quote(PUNCTUATION_PASSWORD[:-1], safe=""),
        PUNCTUATION_PASSWORD + "x",
        "",
    ],
)
async def test_a_wrong_password_in_either_form_is_refused(agent_url, password):
    _, url = agent_url
    async with httpx.AsyncClient(timeout=15) as http:
        answer = await http.post(f"{url}/", json={}, auth=(USER, password))
    assert answer.status_code == 401
