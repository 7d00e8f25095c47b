"""Finished means finished, over HTTP: the agent on loopback, SignalWire faked on loopback.

Upstream checks are counted at the fake SignalWire (``/verify`` requests it received);
final outcomes are counted among the events the agent published. Both backends: the
in-process state and Redis. Expected numbers come from the config written here
(``max_attempts`` 3), never from the product.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from skills.mfa.events import MfaEvent
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MAX_ATTEMPTS = 3
FINAL = {"verified", "exhausted", "expired"}
VERIFIED = "caller is verified"
TRY_AGAIN = "did not answer in time, so nothing changed"
EXPIRED = "expired, was already used"
NO_CODE_PENDING = "No code is waiting to be checked"


def checks(fake) -> int:
    return sum(1 for request in fake.requests if request["path"].endswith("/verify"))


def texts(fake) -> int:
    return sum(1 for request in fake.requests if request["path"].endswith("/mfa/sms"))


@pytest.fixture(params=["in-process", "redis"])
def backend(request) -> dict[str, str]:
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
def agent_with_events(fake_signalwire, make_settings, serve_agent):
    """Serve an agent built from ``config``/``env``; returns its URL and its events."""

    def serve(config: dict | None = None, **env: str) -> tuple[str, list[MfaEvent]]:
        _, sw_url = fake_signalwire
        agent = build_agent(make_settings(signalwire_url=sw_url, config=config, **env))
        events: list[MfaEvent] = []
        agent.publisher.subscribe(events.append)
        return serve_agent(agent), events

    return serve


def finals(events: list[MfaEvent], call: PlatformCall) -> list[str]:
    return [str(e.outcome) for e in events if e.call_id == call.call_id and e.outcome in FINAL]


async def verify_with(call: PlatformCall, meta: dict, code: str) -> str:
    """A verify_mfa carrying ``meta`` whatever the call holds now (a claim, as any request
    is), its actions not applied: what a looping model or a replaying client sends."""
    spec = call.functions["verify_mfa"]
    body = call.request_body("verify_mfa", {"token": code}, spec["meta_data_token"])
    body["meta_data"] = dict(meta)
    reply = await call.post_to_webhook(spec["web_hook_url"], body)
    assert reply.status_code == 200
    return reply.response


FLOOD = [f"{n:06d}" for n in range(200)]  # 000000-000199, one sealed state


async def test_a_parallel_flood_on_one_code_makes_at_most_three_checks_and_one_final(
    fake_signalwire, agent_with_events, backend
):
    fake, _ = fake_signalwire
    url, events = agent_with_events(**backend)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        sealed = dict(call.meta_data["mfa_skill"])
        replies = await asyncio.gather(*(verify_with(call, sealed, code) for code in FLOOD))
        after = await verify_with(call, sealed, fake.last_code_for(CALLER))
    assert checks(fake) <= MAX_ATTEMPTS
    assert len(finals(events, call)) == 1
    assert not any(EXPIRED in reply for reply in replies)
    assert NO_CODE_PENDING in after or VERIFIED in after  # the flood may hold the code


async def test_a_sequential_flood_on_one_code_makes_three_checks_and_one_final(
    fake_signalwire, agent_with_events, backend
):
    fake, _ = fake_signalwire
    url, events = agent_with_events(**backend)
    async with httpx.AsyncClient(timeout=30) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        sealed = dict(call.meta_data["mfa_skill"])
        replies = [await verify_with(call, sealed, c) for c in FLOOD if c != code]
    assert checks(fake) == MAX_ATTEMPTS
    assert finals(events, call) == ["exhausted"]
    assert ["1 try left" in r for r in replies[:3]] == [False, True, False]
    assert all(NO_CODE_PENDING in reply for reply in replies[MAX_ATTEMPTS:])


async def test_an_older_code_after_a_resend_is_refused_without_a_check(
    fake_signalwire, agent_with_events, backend
):
    fake, _ = fake_signalwire
    url, events = agent_with_events(config={"limits": {"resend_cooldown_seconds": 0}}, **backend)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        first_code, first_state = fake.last_code_for(CALLER), dict(call.meta_data["mfa_skill"])
        assert "replaces the earlier one" in (await call.invoke("send_mfa")).response
        refused = await verify_with(call, first_state, first_code)
        assert "only the newest code counts" in refused
        assert checks(fake) == 0
        newest = await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        assert VERIFIED in newest.response
    assert checks(fake) == 1
    assert finals(events, call) == ["verified"]


async def test_a_retry_with_redis_paused_never_contradicts_verified(
    fake_signalwire, agent_with_events, own_redis_server
):
    fake, _ = fake_signalwire
    url, events = agent_with_events(REDIS_URL=own_redis_server.url)
    async with httpx.AsyncClient(timeout=30) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code, sealed = fake.last_code_for(CALLER), dict(call.meta_data["mfa_skill"])
        assert VERIFIED in await verify_with(call, sealed, code)

        own_redis_server.pause()
        try:
            during = [
                await verify_with(call, sealed, code),  # the platform's retry
                await verify_with(call, sealed, wrong_code(code)),  # a looping model
            ]
        finally:
            own_redis_server.resume()
        after = [
            await verify_with(call, sealed, code),
            await verify_with(call, sealed, wrong_code(code)),
        ]
    assert all(TRY_AGAIN in reply for reply in during), during
    assert VERIFIED in after[0]  # the recorded answer
    assert NO_CODE_PENDING in after[1]
    assert not any(EXPIRED in reply for reply in during + after)
    assert checks(fake) == 1
    assert finals(events, call) == ["verified"]


async def test_a_send_counter_still_counts_seconds_later_in_redis(
    fake_signalwire, agent_with_events, redis_url
):
    # A window given to PEXPIRE in seconds instead of ms would be gone after about 4.6 s.
    fake, _ = fake_signalwire
    url, _ = agent_with_events(
        config={"limits": {"per_recipient_per_hour": 1}}, REDIS_URL=redis_url
    )
    async with httpx.AsyncClient(timeout=15) as http:
        first = await new_call(http, url)
        assert "A code was texted" in (await first.invoke("send_mfa")).response
        time.sleep(5.0)  # noqa: ASYNC251 - the agent runs in its own thread; this waits on Redis
        second = await new_call(http, url)
        refused = await second.invoke("send_mfa")
    assert "A code was texted" not in refused.response
    assert texts(fake) == 1


# -- global_data names the subject of the latest verification ----------------------------

ACCOUNT = "12345678"
ON_FILE = "+12025550199"


def directory(tmp_path: Path) -> dict:
    path = tmp_path / "accounts.csv"
    path.write_text(f"account_number,phone_number\n{ACCOUNT},(202) 555-0199\n")
    return {
        "directory": {
            "path": str(path),
            "neutral_answer_seconds": 0,
            "caller_number_allowed": True,
        },
        "limits": {"resend_cooldown_seconds": 0},
    }


async def test_a_send_for_another_subject_clears_verified_and_a_failure_leaves_it_cleared(
    fake_signalwire, agent_with_events, backend, tmp_path
):
    fake, _ = fake_signalwire
    url, events = agent_with_events(config=directory(tmp_path), **backend)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")  # the caller's own phone
        assert (
            VERIFIED in (await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))).response
        )
        assert call.global_data["mfa_verified"] is True
        assert call.global_data["mfa_verified_number_last4"] == CALLER[-4:]

        await call.invoke("send_mfa", account_number=ACCOUNT)
        assert [t["to"] for t in fake.texts][-1] == ON_FILE
        for key in ("mfa_verified", "mfa_verified_at", "mfa_verified_number_last4"):
            assert key not in call.global_data, key
        wrong = wrong_code(fake.last_code_for(ON_FILE))
        for _ in range(MAX_ATTEMPTS):
            await call.invoke("verify_mfa", token=wrong)
        assert "mfa_verified" not in call.global_data
        assert "mfa_verified_account" not in call.global_data

    # Each outcome names its subject: the caller's phone, then the account's.
    outcomes = [
        (str(e.outcome), e.masked_number, e.account) for e in events if e.call_id == call.call_id
    ]
    assert outcomes[1] == ("verified", f"***{CALLER[-4:]}", "")
    assert outcomes[2] == ("code_sent", f"***{ON_FILE[-4:]}", ACCOUNT)
    assert outcomes[-1] == ("exhausted", f"***{ON_FILE[-4:]}", ACCOUNT)
