"""What the agent and ``python -m agent check`` send SignalWire, judged by SignalWire's OpenAPI.

Stoplight Prism mocks the REST spec (``tests/support/prism.py``) and logs a violation for
each request that breaks it. A whole call and a ``check`` run against Prism must break
none, and Prism must have seen their requests (an empty log would pass for the wrong
reason); the last tests prove the detector fires: requests that break the spec on purpose
are flagged.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from testkit.agent_env import FROM_NUMBER, agent_env, write_config
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID
from tests.support.calls import new_call
from tests.support.defaults import AUTH, CALLER, SWAIG_SECRET
from tests.support.prism import PRISM_ENV, Window
from tests.support.required_servers import REQUIRE_TEST_SERVERS, find_prism
from tests.support.shown import venv_bin

pytestmark = pytest.mark.e2e

MFA = "/api/relay/rest/mfa"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CREDENTIALS = (PROJECT_ID, API_TOKEN)


def prisms_request_id(prism: Window) -> str:
    """The id Prism answers every conforming send with (the spec's example, always the same)."""
    answer = httpx.post(f"{prism.url}{MFA}/sms", json={"to": CALLER}, auth=CREDENTIALS)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


@pytest.mark.anyio
async def test_a_whole_call_sends_and_verifies_within_the_spec(prism, make_settings, serve_agent):
    """send_mfa then verify_mfa with a 6-digit code, the agent's space being Prism: no
    violation, both requests seen, and the call went by Prism's answers (the example id
    came back in the verify path, the example ``{"success": true}`` verified the caller)."""
    request_id = prisms_request_id(prism)
    call_window = prism.prism.window()
    # Prism answers every lookup with the spec's example, a landline: this call texts
    # without one (the next test sends the lookup).
    config = {"channels": {"lookup": False}}
    agent_url = serve_agent(make_settings(signalwire_url=prism.url, config=config))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        sent = await call.invoke("send_mfa")
        reply = await call.invoke("verify_mfa", token="123456")
    assert call_window.violations() == []
    assert call_window.requests_seen() == [f"POST {MFA}/sms", f"POST {MFA}/{request_id}/verify"]
    assert sent.status_code == 200
    assert "caller is verified" in reply.response, reply.body
    assert call.global_data["mfa_verified"] is True


@pytest.mark.anyio
async def test_the_line_type_lookup_before_a_send_is_within_the_spec(
    prism, make_settings, serve_agent
):
    """With an account the number is looked up before a send (``include=carrier``): Prism
    flags nothing, and the agent went by its answer, the spec's example ``linetype``
    (``landline``): the caller's own landline gets no text."""
    window = prism.prism.window()
    agent_url = serve_agent(make_settings(signalwire_url=prism.url))
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, agent_url)
        sent = await call.invoke("send_mfa")
    assert window.violations() == []
    assert window.requests_seen() == [f"GET /api/relay/rest/lookup/phone_number/{CALLER}"]
    assert "landline" in sent.response and "no code was sent" in sent.response


def test_check_sends_only_requests_the_spec_allows(prism, tmp_path: Path):
    """``python -m agent check`` as a process: its number list and its verify probe pass
    Prism's validation, and check reads Prism's answers as the spec means them. Prism
    answers from the spec's examples: the probe of a random request id gets 200
    ``{"success": true}``, an answer the spec declares, which proves the token's scope
    (``MFA API`` is ok); the number list holds the example number, not ``MFA_FROM_NUMBER``,
    so ``from number`` fails and check exits 1."""
    env = agent_env(
        write_config(tmp_path),
        auth=AUTH,
        swaig_secret=SWAIG_SECRET,
        signalwire_url=prism.url,
        # PYTHONPATH, where the tests set it, names the checkout under test.
        base={
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    )
    done = subprocess.run(
        [f"{venv_bin()}python", "-m", "agent", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prism.violations() == []
    seen = prism.requests_seen()
    assert len(seen) == 3, seen
    assert seen[0] == "GET /api/relay/rest/phone_numbers"
    assert re.fullmatch(f"POST {MFA}/{UUID}/verify", seen[1]), seen
    # The line-type lookup, without include=carrier (the billable part).
    assert seen[2] == "GET /api/relay/rest/lookup/phone_number/+15559870000", seen
    lines = done.stdout.splitlines()
    assert any(line.startswith("ok    space: ") for line in lines), done.stdout + done.stderr
    failed = {line[6:].split(":", 1)[0] for line in lines if line.startswith("FAIL")}
    assert failed == {"from number"}, done.stdout
    assert "ok    MFA API: the token is accepted by the MFA API (scope Management)" in lines
    assert done.returncode == 1


AGENT_SEND = {
    "to": CALLER,
    "from": FROM_NUMBER,
    "message": "Your code:",
    "token_length": 6,
    "valid_for": 600,
    "max_attempts": 3,
    "allow_alphas": False,
}
BROKEN = [
    pytest.param(
        {**AGENT_SEND, "channel": "sms"}, CREDENTIALS, 422, "request.body.channel", id="extra"
    ),
    pytest.param({**AGENT_SEND, "token_length": "6"}, CREDENTIALS, 422, "token_length", id="type"),
    pytest.param(AGENT_SEND, None, 401, "Invalid security scheme", id="no-auth"),
]


@pytest.mark.parametrize(("body", "auth", "status", "named"), BROKEN)
def test_prism_flags_a_request_that_breaks_the_spec(prism, body, auth, status, named):
    """The detector fires: an unknown field (the spec's ``unevaluatedProperties``, which
    Prism checks only with the 2020-12 dialect named), a wrong type, no basic auth."""
    answer = httpx.post(f"{prism.url}{MFA}/sms", json=body, auth=auth)
    assert answer.status_code == status
    (violation,) = prism.violations()
    assert named in violation


def test_prism_flags_nothing_in_a_request_that_keeps_the_spec(prism):
    """The same request, conforming: the detector does not fire on everything."""
    answer = httpx.post(f"{prism.url}{MFA}/sms", json=AGENT_SEND, auth=CREDENTIALS)
    assert answer.status_code == 200
    assert prism.violations() == []
    assert prism.requests_seen() == [f"POST {MFA}/sms"]


def test_prism_missing_is_a_skip_here_and_a_failure_where_required(monkeypatch, tmp_path):
    monkeypatch.setenv(PRISM_ENV, str(tmp_path / "no-prism"))
    monkeypatch.delenv(REQUIRE_TEST_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Stoplight Prism is not installed"):
        find_prism()
    monkeypatch.setenv(REQUIRE_TEST_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="Stoplight Prism is not installed"):
        find_prism()


def test_ci_installs_prism_where_the_tests_look_for_it():
    """Where ``find_prism`` looks, before the tests run, with node and npm from Debian when
    the machine has none."""
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    install = script.index("npm install --prefix .prism @stoplight/prism-cli@5")
    assert script.index("apt_packages+=(nodejs npm)") < install < script.index("\nmake test\n")
