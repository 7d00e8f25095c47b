"""The sandbox provider behind the real HTTP surface: the flow a newcomer tries locally."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.support.calls import wrong_code
from tests.support.defaults import AUTH, CALLER

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def outbox_and_url(make_settings, serve_agent):
    outbox: list = []
    agent = build_agent(make_settings(), sandbox_deliver=outbox.append)
    return outbox, serve_agent(agent)


async def test_sandbox_send_and_verify(outbox_and_url):
    outbox, url = outbox_and_url
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
        sent = await call.invoke("send_mfa")
        assert "ending in 0 0 0 1" in sent.response
        text = outbox[-1]
        assert text.to == CALLER and text.body.endswith(text.code)
        assert text.code not in str(sent.body)

        wrong = wrong_code(text.code)
        assert "2 tries left" in (await call.invoke("verify_mfa", token=wrong)).response
        words = " ".join(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][int(d)]
            for d in text.code
        )
        assert "caller is verified" in (await call.invoke("verify_mfa", token=words)).response
        assert call.global_data["mfa_verified"] is True


async def test_two_simultaneous_copies_of_a_right_answer_verify_once(make_settings, serve_agent):
    outbox: list = []
    agent = build_agent(make_settings(), sandbox_deliver=outbox.append)
    events: list = []
    agent.publisher.subscribe(events.append)
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        first = PlatformCall(http=http, base_url=url, auth=AUTH)
        await first.start()
        await first.invoke("send_mfa")
        code = outbox[-1].code
        # The platform retries a request it thinks failed: the same request twice at once.
        twin = PlatformCall(http=http, base_url=url, auth=AUTH, call_id=first.call_id)
        twin.swml, twin.functions = first.swml, first.functions
        twin.meta_data = {k: dict(v) for k, v in first.meta_data.items()}
        twin.global_data = dict(first.global_data)
        replies = await asyncio.gather(
            first.invoke("verify_mfa", token=code), twin.invoke("verify_mfa", token=code)
        )
        # Both copies get the one answer; the code was checked (and used) once.
        assert replies[0].body == replies[1].body
        assert "caller is verified" in replies[0].response
        assert first.global_data == twin.global_data
        verify_outcomes = sorted(e.outcome for e in events if e.tool == "verify_mfa")
        assert verify_outcomes == ["replayed", "verified"]


async def test_codes_survive_an_agent_restart(make_settings, serve_agent):
    outbox: list = []
    settings = make_settings()
    url = serve_agent(build_agent(settings, sandbox_deliver=outbox.append))
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
        await call.invoke("send_mfa")
        # A new agent process (same settings, same SQLite file) serves the rest of the call.
        call.base_url = serve_agent(build_agent(settings, sandbox_deliver=outbox.append))
        assert (
            "caller is verified"
            in (await call.invoke("verify_mfa", token=outbox[-1].code)).response
        )
