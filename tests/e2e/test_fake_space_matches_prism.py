"""The fake space refuses what SignalWire's OpenAPI refuses, and accepts what it accepts.

Most tests talk to ``testkit.fake_signalwire``; a fake laxer than SignalWire would let them
pass on requests the real space refuses. So the same requests go to Stoplight Prism serving
the spec (``tests/support/prism.py``) and to the fake, and each must be accepted by both
(2xx) or refused by both (Prism's 422 or 401, the fake's 422 or 401 with SignalWire's
documented bodies). Where the fake is deliberately stricter than the spec's schemas, the
case says why, and the test holds it there. The fake reads its schemas from a committed
extraction of the vendored spec; the last test keeps that extraction equal to the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from testkit.agent_env import FROM_NUMBER
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID
from testkit.mfa_request_schemas import SCHEMA_FILE, extract, render
from tests.support.calls import new_call
from tests.support.defaults import CALLER
from tests.support.prism import Window, vendored_spec

pytestmark = pytest.mark.e2e

MFA = "/api/relay/rest/mfa"
CREDENTIALS = (PROJECT_ID, API_TOKEN)
#: A send shaped as the agent shapes it (tests/e2e/test_signalwire_flows.py shows its body).
SEND = {
    "to": CALLER,
    "from": FROM_NUMBER,
    "message": "Your code:",
    "token_length": 6,
    "valid_for": 600,
    "max_attempts": 3,
    "allow_alphas": False,
}
WITHOUT_TO = {key: value for key, value in SEND.items() if key != "to"}


@dataclass(frozen=True)
class Case:
    """One request: ``operation`` is ``sms``, ``call`` or ``verify``; a verify goes to an id
    the same side issued unless ``request_id`` names one."""

    operation: str
    body: Any
    auth: tuple[str, str] | None = CREDENTIALS
    request_id: str | None = None

    def send(self, base: str) -> httpx.Response:
        if self.operation == "verify":
            request_id = self.request_id or issued_id(base)
            path = f"{MFA}/{request_id}/verify"
        else:
            path = f"{MFA}/{self.operation}"
        return httpx.post(base + path, json=self.body, auth=self.auth, timeout=10)


def issued_id(base: str) -> str:
    answer = httpx.post(f"{base}{MFA}/sms", json=SEND, auth=CREDENTIALS, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


ACCEPTED = {
    "the agent's send": Case("sms", SEND),
    "a send of to alone": Case("sms", {"to": CALLER}),
    "a code by voice call": Case("call", {"to": CALLER, "token_length": 8}),
    "a verify": Case("verify", {"token": "123456"}),
}
REFUSED = {
    "an unknown field": Case("sms", {**SEND, "channel": "sms"}),
    "a misspelled field (allow_alpha)": Case("sms", {"to": CALLER, "allow_alpha": False}),
    "token_length as a string": Case("sms", {**SEND, "token_length": "6"}),
    "token_length beyond 32 bits": Case("sms", {**SEND, "token_length": 2**31}),
    "allow_alphas as a string": Case("sms", {**SEND, "allow_alphas": "false"}),
    "a null message": Case("sms", {**SEND, "message": None}),
    "a send without to": Case("sms", WITHOUT_TO),
    "a call without to": Case("call", {}),
    "a list for a body": Case("sms", [SEND]),
    "a send without basic auth": Case("sms", SEND, auth=None),
    "a verify without token": Case("verify", {}),
    "a verify whose token is a number": Case("verify", {"token": 123456}),
    "a verify with an unknown field": Case("verify", {"token": "123456", "to": CALLER}),
    "a verify without basic auth": Case("verify", {"token": "123456"}, auth=None),
    # The spec types the id as a uuid: Prism answers 422, the fake 404 (no such request,
    # as SignalWire documents for an unknown id). Both refuse.
    "a verify of an id that is not a uuid": Case("verify", {"token": "1"}, request_id="abc"),
}
#: Refused by the fake, accepted by Prism: what the spec says in words, not in a schema.
STRICTER = {
    # Prism checks that basic auth is there, not whose it is: no mock can.
    "another project's credentials": Case("sms", SEND, auth=("someone", "else")),
    # "from 4 to 20", "from 1 to 20", "a maximum of 604800", "E164": descriptions only.
    "token_length 3": Case("sms", {**SEND, "token_length": 3}),
    "max_attempts 0": Case("sms", {**SEND, "max_attempts": 0}),
    "valid_for 604801": Case("sms", {**SEND, "valid_for": 604801}),
    "a to without the +": Case("sms", {**SEND, "to": CALLER[1:]}),
}


def signalwire_422(answer: httpx.Response) -> bool:
    """SignalWire's documented 422 body: a list of ``{detail, status, title, code}``."""
    errors = answer.json().get("errors")
    return bool(errors) and all(
        set(item) == {"detail", "status", "title", "code"} and item["status"] == "422"
        for item in errors
    )


def both(case: Case, prism: Window, fake_url: str) -> tuple[httpx.Response, httpx.Response]:
    return case.send(prism.url), case.send(fake_url)


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_by_both(name, prism, fake_signalwire):
    by_prism, by_fake = both(ACCEPTED[name], prism, fake_signalwire[1])
    assert prism.violations() == []
    assert (by_prism.status_code, by_fake.status_code) == (200, 200), by_fake.text


@pytest.mark.parametrize("name", REFUSED)
def test_refused_by_both(name, prism, fake_signalwire):
    by_prism, by_fake = both(REFUSED[name], prism, fake_signalwire[1])
    assert prism.violations(), f"Prism took {name}"
    assert by_prism.status_code in (401, 422)
    if REFUSED[name].request_id:
        assert by_fake.status_code == 404
    elif by_prism.status_code == 401:
        assert (by_fake.status_code, by_fake.json()) == (401, {"error": "Unauthorized"})
    else:
        assert by_fake.status_code == 422, by_fake.text
        assert signalwire_422(by_fake), by_fake.text


@pytest.mark.parametrize("name", STRICTER)
def test_where_the_fake_is_stricter_it_is_what_the_spec_says_in_words(name, prism, fake_signalwire):
    by_prism, by_fake = both(STRICTER[name], prism, fake_signalwire[1])
    assert (by_prism.status_code, prism.violations()) == (200, [])
    assert by_fake.status_code in (401, 422), by_fake.text


@pytest.mark.anyio
async def test_the_agents_own_requests_are_accepted_by_both(
    prism, fake_signalwire, make_settings, serve_agent
):
    """A call on the fake (which texts a code and verifies it only when it accepted both
    requests), and each body the agent sent it, sent again to Prism: both accept all."""
    fake, fake_url = fake_signalwire
    agent_url = serve_agent(make_settings(signalwire_url=fake_url))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        await call.invoke("send_mfa")
        code = fake.texts[-1]["code"] if fake.texts else "000000"
        verified = "caller is verified" in (await call.invoke("verify_mfa", token=code)).response
        sent = [(request["path"], request["body"]) for request in fake.requests]
        by_prism = [
            (await http.post(prism.url + path, json=body, auth=CREDENTIALS)).status_code
            for path, body in sent
        ]
    assert prism.violations() == [], sent
    assert by_prism == [200] * len(sent), sent
    assert [path.rsplit("/", 1)[-1] for path, _ in sent] == ["sms", "verify"], sent
    assert verified, f"the fake refused the agent's requests: {sent}"


def test_the_fakes_schemas_are_the_vendored_specs():
    """``testkit/mfa_request_schemas.json`` is what extracting it from the vendored spec
    gives now (after updating the spec, run the command in its module's docstring)."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(extract(vendored_spec()))
