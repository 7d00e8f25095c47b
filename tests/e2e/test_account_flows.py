"""Account calls over real HTTP: the agent on loopback, SignalWire faked on loopback, the
directory a CSV file or the business's server (a signed receiver on loopback).

The fake SignalWire's ``texts`` is the phone side: where a code really went.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.app import build_agent
from agent.config.settings import SettingsError
from agent.http.logging_setup import JsonFormatter
from agent.ops.simulator import first_event
from skills.mfa.delivery.signing import verify_signature
from testkit.servers import ServerThread
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CALLER = "+15557770001"  # not on file for any account
ON_FILE = "+12025550199"
ACCOUNT = "12345678"
NEUTRAL = (
    "No code was sent for that account number. Do not say whether the account exists. "
    "If a code was already sent on this call, ask the caller to use it; otherwise ask "
    "them to check their account number."
)
LOCKED = (
    "No more account numbers can be looked up on this call, so no code was sent. "
    "Apologise and suggest the caller calls back with their account number at hand."
)
#: Standard Webhooks' form (whsec_ and the base64 of 24 bytes), as the README makes one.
SECRET = "whsec_" + base64.b64encode(b"directory-test-key-01234").decode()


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text(
        f"account_number,phone_number\n{ACCOUNT},(202) 555-0199\n8765-4321,+1 202 555 0288\n"
    )
    return path


def directory_config(tmp_path: Path, **extra) -> dict:
    return {
        "directory": {"path": str(csv_file(tmp_path)), "neutral_answer_seconds": 0, **extra},
    }


@pytest.fixture
def served(fake_signalwire, make_settings, serve_agent, tmp_path):
    def serve(limits: dict | None = None, **directory) -> str:
        config = directory_config(tmp_path, **directory)
        if limits:
            config["limits"] = limits
        _, sw_url = fake_signalwire
        return serve_agent(make_settings(signalwire_url=sw_url, config=config))

    return serve


async def test_the_code_goes_to_the_number_on_file_and_verifies_the_account(
    fake_signalwire, served
):
    fake, _ = fake_signalwire
    url = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        sent = await call.invoke("send_mfa", account_number="one two three four 5678")
        assert [text["to"] for text in fake.texts] == [ON_FILE]  # not the caller's phone
        assert "ending in 0 1 9 9" in sent.response
        digits = "".join(ch for ch in json.dumps(sent.body) if ch.isdigit())
        assert "2025550199" not in digits and "5550199" not in digits  # last four only

        code = fake.last_code_for(ON_FILE)
        wrong = await call.invoke("verify_mfa", token=wrong_code(code))
        assert "2 tries left" in wrong.response
        reply = await call.invoke("verify_mfa", token=code)
        assert "caller is verified" in reply.response
        assert call.global_data["mfa_verified"] is True
        assert call.global_data["mfa_verified_account"] == ACCOUNT
        assert call.global_data["mfa_verified_number_last4"] == "0199"
        assert "mfa_account" not in call.meta_data["mfa_skill"]


async def test_an_unknown_account_reads_exactly_like_a_refused_found_one(fake_signalwire, served):
    fake, _ = fake_signalwire
    url = served(limits={"per_recipient_per_hour": 1})
    async with httpx.AsyncClient(timeout=15) as http:
        first = await new_call(http, url, caller=CALLER)
        assert "was texted" in (await first.invoke("send_mfa", account_number=ACCOUNT)).response
        texts = len(fake.texts)

        other = await new_call(http, url, caller="+15557770002")
        unknown = await other.invoke("send_mfa", account_number="99999999")
        refused = await other.invoke("send_mfa", account_number=ACCOUNT)  # the number's hour
        assert unknown.status_code == refused.status_code == 200
        assert unknown.body == refused.body == {"response": NEUTRAL}
        assert len(fake.texts) == texts  # nothing sent for either


async def test_three_unknown_accounts_end_lookups_for_the_call(fake_signalwire, served):
    fake, _ = fake_signalwire
    url = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        for guess in ("11111111", "22222222", "33333333"):
            assert (await call.invoke("send_mfa", account_number=guess)).response == NEUTRAL
        locked = await call.invoke("send_mfa", account_number=ACCOUNT)
        assert locked.response == LOCKED
        assert fake.texts == []
        # The caller's next call starts afresh.
        fresh = await new_call(http, url, caller=CALLER)
        assert "was texted" in (await fresh.invoke("send_mfa", account_number=ACCOUNT)).response


async def test_per_recipient_limits_apply_to_the_number_on_file_across_callers(
    fake_signalwire, served
):
    fake, _ = fake_signalwire
    url = served(limits={"per_recipient_per_hour": 2})
    async with httpx.AsyncClient(timeout=15) as http:
        answers = []
        for i in range(3):
            call = await new_call(http, url, caller=f"+1555777100{i}")
            answers.append((await call.invoke("send_mfa", account_number=ACCOUNT)).response)
        assert ["was texted" in a for a in answers] == [True, True, False]
        assert answers[2] == NEUTRAL
        assert [t["to"] for t in fake.texts] == [ON_FILE, ON_FILE]


async def test_without_the_account_the_caller_is_asked_for_it(fake_signalwire, served):
    fake, _ = fake_signalwire
    url = served()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        assert set(call.functions["send_mfa"]["parameters"]["properties"]) == {"account_number"}
        reply = await call.invoke("send_mfa")
        assert "Ask the caller for their account number" in reply.response
        reply = await call.invoke("send_mfa", phone_number=CALLER)
        assert "Ask the caller for their account number" in reply.response
        assert fake.texts == []
        prompt = json.dumps(call.swml)
        assert "ask for their account number" in prompt


async def test_the_caller_number_path_can_stay_open(fake_signalwire, served):
    fake, _ = fake_signalwire
    url = served(caller_number_allowed=True)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        assert "was texted" in (await call.invoke("send_mfa")).response
        assert fake.texts[-1]["to"] == CALLER


# -- the business's server ------------------------------------------------------------------


class Business:
    """The business's side: a directory endpoint and an outcome receiver, both checking
    signatures with the ``standardwebhooks`` library, as the README shows (and the earlier
    ``X-MFA-Signature``, still sent for one release)."""

    def __init__(self) -> None:
        self.lookups: list[dict] = []
        self.outcomes: list[dict] = []
        self.delivered = threading.Event()

    async def _checked(self, request: Request) -> dict | None:
        body = await request.body()
        headers = request.headers
        try:
            payload = Webhook(SECRET).verify(body, dict(headers))
        except WebhookVerificationError:
            return None
        legacy = verify_signature(
            SECRET, headers.get("X-MFA-Timestamp", ""), body, headers.get("X-MFA-Signature")
        )
        return payload if legacy else None

    async def directory(self, request: Request) -> Response:
        payload = await self._checked(request)
        if payload is None:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.lookups.append(payload)
        number = {ACCOUNT: "+1 (202) 555-0199"}.get(payload.get("account_number"))
        if number is None:
            return JSONResponse({"error": "unknown"}, status_code=404)
        return JSONResponse({"phone_number": number})

    async def outcome(self, request: Request) -> Response:
        payload = await self._checked(request)
        if payload is None:
            return Response(status_code=401)
        self.outcomes.append(payload)
        self.delivered.set()
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/lookup", self.directory, methods=["POST"]),
                Route("/outcome", self.outcome, methods=["POST"]),
            ]
        )


@pytest.fixture
def business() -> Iterator[tuple[Business, str]]:
    receiver = Business()
    with ServerThread(receiver.app()) as server:
        yield receiver, server.url


async def test_the_business_server_names_the_number_and_hears_the_account(
    fake_signalwire, make_settings, serve_agent, business
):
    fake, sw_url = fake_signalwire
    receiver, base = business
    settings = make_settings(
        signalwire_url=sw_url,
        config={"directory": {"neutral_answer_seconds": 0}},
        MFA_DIRECTORY_URL=base + "/lookup",
        MFA_DIRECTORY_SECRET=SECRET,
        MFA_OUTCOME_WEBHOOK_URL=base + "/outcome",
        MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        unknown = await call.invoke("send_mfa", account_number="4 4 4 4")
        assert unknown.response == NEUTRAL
        sent = await call.invoke("send_mfa", account_number="1234 5678")
        assert "ending in 0 1 9 9" in sent.response
        assert receiver.lookups == [{"account_number": "4444"}, {"account_number": ACCOUNT}]
        assert [t["to"] for t in fake.texts] == [ON_FILE]
        await call.invoke("verify_mfa", token=fake.last_code_for(ON_FILE))
        assert call.global_data["mfa_verified_account"] == ACCOUNT
    assert receiver.delivered.wait(10)
    outcome = receiver.outcomes[0]
    assert (outcome["outcome"], outcome["account"]) == ("verified", ACCOUNT)
    assert outcome["masked_number"] == "***0199"


async def test_a_wrong_secret_is_a_setup_apology_never_a_500(
    fake_signalwire, make_settings, serve_agent, business
):
    fake, sw_url = fake_signalwire
    _, base = business
    settings = make_settings(
        signalwire_url=sw_url,
        MFA_DIRECTORY_URL=base + "/lookup",
        MFA_DIRECTORY_SECRET="not-the-business-secret",
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke("send_mfa", account_number=ACCOUNT)
        assert reply.status_code == 200 and "setup problem" in reply.response
        assert fake.texts == []


async def test_a_directory_that_is_down_is_an_apology(fake_signalwire, make_settings, serve_agent):
    _, sw_url = fake_signalwire
    settings = make_settings(
        signalwire_url=sw_url,
        MFA_DIRECTORY_URL="http://127.0.0.1:9/lookup",  # discard port: refused
        MFA_DIRECTORY_SECRET=SECRET,
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke("send_mfa", account_number=ACCOUNT)
        assert reply.status_code == 200 and "did not answer in time" in reply.response


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.formatter_ = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.formatter_.format(record)
        if line not in self.lines:  # one record may reach several of the loggers
            self.lines.append(line)


async def test_logs_and_the_live_stream_never_hold_the_number_or_the_whole_account(
    fake_signalwire, served
):
    fake, _ = fake_signalwire
    handler = Lines()
    loggers = [logging.getLogger(name) for name in ("", "mfa", "skills", "signalwire")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        url = served()
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url, caller=CALLER)
            await call.invoke("send_mfa", account_number="99999999")
            await call.invoke("send_mfa", account_number=ACCOUNT)
            await call.invoke("verify_mfa", token=fake.last_code_for(ON_FILE))
            unknown = await first_event(
                http, url, DASHBOARD, lambda e: e.get("lookup") == "unknown", within=5
            )
            found = await first_event(
                http, url, DASHBOARD, lambda e: e.get("outcome") == "code_sent", within=5
            )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert unknown is not None and found is not None
    assert (unknown["account"], unknown["masked_number"]) == ("***9999", "unknown")
    assert (found["account"], found["masked_number"]) == ("***5678", "***0199")
    text = "\n".join([*handler.lines, json.dumps([unknown, found])])
    lookups = [line for line in handler.lines if "directory_lookup" in line]
    assert len(lookups) == 2 and all("***5678" in line or "***9999" in line for line in lookups)
    for secret in ("2025550199", "5550199", ACCOUNT, "99999999"):
        assert secret not in text


# -- start-up ---------------------------------------------------------------------------------


def test_a_bad_row_stops_start_up_naming_the_line(tmp_path, make_settings):
    bad = tmp_path / "bad.csv"
    bad.write_text("account_number,phone_number\n1,+12025550199\n2,call me maybe\n")
    settings = make_settings(config={"directory": {"path": str(bad)}})
    with pytest.raises(SettingsError, match=r"directory\.path .*bad\.csv: line 3: phone_number"):
        build_agent(settings)


@pytest.mark.parametrize(
    ("env", "config", "says"),
    [
        ({"MFA_DIRECTORY_URL": "https://d.example.com"}, {}, "MFA_DIRECTORY_SECRET"),
        ({"MFA_DIRECTORY_SECRET": SECRET}, {}, "MFA_DIRECTORY_URL"),
        ({"MFA_DIRECTORY_URL": "ftp://d.example.com", "MFA_DIRECTORY_SECRET": SECRET}, {}, "URL"),
        ({"MFA_DIRECTORY_URL": "https://d.example.com", "MFA_DIRECTORY_SECRET": "short"}, {}, "16"),
        (
            {"MFA_DIRECTORY_URL": "https://d.example.com", "MFA_DIRECTORY_SECRET": SECRET},
            {"directory": {"path": "a.csv"}},
            "not both",
        ),
        ({}, {"directory": {"unknown_accounts_per_call": 0}}, "unknown_accounts_per_call"),
    ],
)
def test_directory_settings_are_checked_at_start_up(make_settings, env, config, says):
    with pytest.raises(SettingsError, match=says):
        make_settings(config=config, **env)
