"""The account path under probing (issue 19, items 3 and 4), over real HTTP.

The business's directory is a loopback server that counts lookups; SignalWire is the
loopback fake. Found on the directory: 12345678 (at +1 555 123 0199); everything else
is unknown.

* 50 parallel ``send_mfa(account_number=...)`` in one call make at most
  ``unknown_accounts_per_call`` lookups, in-process and on Redis. Before: the count was
  read, then the directory asked, then the miss added, so the 50 all read "0 misses" (16
  lookups against a limit of 3).
* While the provider fails or its breaker is open, a found account reads exactly like an
  unknown one and counts toward the lockout. Before: "the service did not answer" for a
  found account only, with no miss counted: an outage listed which accounts exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testkit.servers import ServerThread
from tests.support.calls import new_call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SECRET = "dirsec-0123456789abcdef"
CALLER = "+15557770001"
ACCOUNT = "12345678"
ON_FILE = "+15551230199"
NEUTRAL = (
    "No code was sent for that account number. Do not say whether the account exists. "
    "If a code was already sent on this call, ask the caller to use it; otherwise ask "
    "them to check their account number."
)
LOCKED = (
    "No more account numbers can be looked up on this call, so no code was sent. "
    "Apologise and suggest the caller calls back with their account number at hand."
)


class CountingDirectory:
    """The business's directory; ``lookups`` counts every request that reached it."""

    def __init__(self) -> None:
        self.lookups = 0

    async def lookup(self, request: Request) -> Response:
        self.lookups += 1
        payload = json.loads(await request.body())
        await asyncio.sleep(0.05)  # a real server takes a moment: requests overlap
        if payload.get("account_number") == ACCOUNT:
            return JSONResponse({"phone_number": ON_FILE})
        return JSONResponse({"error": "unknown"}, status_code=404)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/lookup", self.lookup, methods=["POST"])])


@pytest.fixture
def directory() -> Iterator[tuple[CountingDirectory, str]]:
    server = CountingDirectory()
    with ServerThread(server.app()) as thread:
        yield server, thread.url + "/lookup"


@pytest.fixture(params=["in-process", "redis"])
def backend(request) -> dict[str, str]:
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


def agent_url(make_settings, serve_agent, sw_url, directory_url, env, **config) -> str:
    settings = make_settings(
        signalwire_url=sw_url,
        config={
            "directory": {"neutral_answer_seconds": 0, "unknown_accounts_per_call": 3},
            "limits": {"agent_sends_per_minute": 10_000},
            **config,
        },
        MFA_DIRECTORY_URL=directory_url,
        MFA_DIRECTORY_SECRET=SECRET,
        **env,
    )
    return serve_agent(settings)


async def test_fifty_parallel_lookups_in_one_call_make_at_most_the_limit(
    fake_signalwire, make_settings, serve_agent, directory, backend
):
    fake, sw_url = fake_signalwire
    server, directory_url = directory
    url = agent_url(make_settings, serve_agent, sw_url, directory_url, backend)
    async with httpx.AsyncClient(timeout=60) as http:
        call = await new_call(http, url, caller=CALLER)
        replies = await asyncio.gather(
            *(call.invoke("send_mfa", account_number=f"9000{i:04d}") for i in range(50))
        )
    assert server.lookups <= 3, server.lookups
    assert all(reply.status_code == 200 for reply in replies)
    answers = [reply.response for reply in replies]
    assert answers.count(NEUTRAL) == server.lookups
    assert answers.count(LOCKED) == 50 - server.lookups
    assert fake.texts == []


async def test_parallel_requests_for_a_found_account_never_pass_the_limit_either(
    fake_signalwire, make_settings, serve_agent, directory, backend
):
    fake, sw_url = fake_signalwire
    server, directory_url = directory
    url = agent_url(make_settings, serve_agent, sw_url, directory_url, backend)
    async with httpx.AsyncClient(timeout=60) as http:
        call = await new_call(http, url, caller=CALLER)
        await asyncio.gather(
            *(call.invoke("send_mfa", account_number=ACCOUNT) for _ in range(20)),
            *(call.invoke("send_mfa", account_number=f"9000{i:04d}") for i in range(20)),
        )
    # One code can go out (then the cooldown refuses); each refusal is a miss. The
    # budget is 3 misses, plus the one lookup whose code went out and gave its place back.
    assert len(fake.texts) <= 1
    assert server.lookups <= 3 + len(fake.texts), server.lookups


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_a_provider_outage_reads_like_an_unknown_account_and_counts_as_a_miss(
    fake_signalwire, make_settings, serve_agent, directory, fault
):
    fake, sw_url = fake_signalwire
    fake.fault = fault
    _, directory_url = directory
    url = agent_url(
        make_settings,
        serve_agent,
        sw_url,
        directory_url,
        {},
        upstream={"deadline_seconds": 1.0, "connect_timeout_seconds": 0.5},
    )
    async with httpx.AsyncClient(timeout=60) as http:
        call = await new_call(http, url, caller=CALLER)
        found = await call.invoke("send_mfa", account_number=ACCOUNT)
        unknown = await call.invoke("send_mfa", account_number="90000001")
        assert found.body == unknown.body == {"response": NEUTRAL}
        # The found account's failed send was a miss: two misses so far, one left.
        assert (await call.invoke("send_mfa", account_number="90000002")).response == NEUTRAL
        assert (await call.invoke("send_mfa", account_number=ACCOUNT)).response == LOCKED


async def test_with_the_breaker_open_a_found_account_reads_like_an_unknown_one(
    fake_signalwire, make_settings, serve_agent, directory
):
    fake, sw_url = fake_signalwire
    _, directory_url = directory
    url = agent_url(
        make_settings,
        serve_agent,
        sw_url,
        directory_url,
        {},
        breaker={"failure_threshold": 1, "open_seconds": 600},
        directory={
            "neutral_answer_seconds": 0,
            "unknown_accounts_per_call": 3,
            "caller_number_allowed": True,
        },
    )
    async with httpx.AsyncClient(timeout=60) as http:
        fake.fault = "500"
        opener = await new_call(http, url, caller="+15557770009")
        await opener.invoke("send_mfa")  # the caller's own number: the breaker opens
        fake.fault = None
        sent_before = len(fake.texts)

        call = await new_call(http, url, caller=CALLER)
        found = await call.invoke("send_mfa", account_number=ACCOUNT)
        unknown = await call.invoke("send_mfa", account_number="90000001")
        assert found.body == unknown.body == {"response": NEUTRAL}
        assert len(fake.texts) == sent_before
        await call.invoke("send_mfa", account_number="90000002")
        assert (await call.invoke("send_mfa", account_number=ACCOUNT)).response == LOCKED
