"""Answers from outside are read with a limit while they stream (issue 19, item 1).

The directory server and SignalWire's API are played by loopback servers that answer with
a 64 MB body. Before, httpx read the whole body and only then was its size checked: four
such answers in parallel took the agent from 134 MB to 1.65 GB. Now the agent stops
reading past its limit and closes the connection: the server sees the client go long
before its body is out, the caller hears the outage apology, and nothing is texted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from testkit.servers import ServerThread
from tests.support.calls import new_call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CHUNK = b"1" * 65536
CHUNKS = 1024  # 64 MB
SECRET = "dirsec-0123456789abcdef"
CALLER = "+15557770001"


class HugeAnswers:
    """Answers every POST with 200 and a 64 MB JSON-looking body, counting what went out."""

    def __init__(self) -> None:
        self.sent = 0
        self.requests = 0

    async def _body(self) -> AsyncIterator[bytes]:
        yield b'{"phone_number": "'
        for _ in range(CHUNKS):
            self.sent += len(CHUNK)
            yield CHUNK
            await asyncio.sleep(0)
        yield b'"}'

    async def answer(self, request: Request) -> StreamingResponse:
        self.requests += 1
        await request.body()
        return StreamingResponse(self._body(), media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.answer, methods=["POST"])])


@pytest.fixture
def huge() -> Iterator[tuple[HugeAnswers, str]]:
    server = HugeAnswers()
    with ServerThread(server.app()) as thread:
        yield server, thread.url


async def test_a_huge_directory_answer_is_abandoned_early_and_is_an_outage(
    fake_signalwire, make_settings, serve_agent, huge
):
    fake, sw_url = fake_signalwire
    server, base = huge
    settings = make_settings(
        signalwire_url=sw_url,
        config={"directory": {"neutral_answer_seconds": 0}},
        MFA_DIRECTORY_URL=base + "/lookup",
        MFA_DIRECTORY_SECRET=SECRET,
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=30) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke("send_mfa", account_number="12345678")
    assert reply.status_code == 200
    assert "did not answer in time" in reply.response  # the directory counts as down
    assert fake.texts == []
    assert server.requests == 1
    # Socket buffers hold a few MB at most; reading it all would have taken 64 MB.
    assert server.sent < 16 * 1024 * 1024, server.sent


async def test_a_huge_provider_answer_is_abandoned_early_and_is_an_outage(
    make_settings, serve_agent, huge
):
    server, base = huge
    url = serve_agent(make_settings(signalwire_url=base))
    async with httpx.AsyncClient(timeout=30) as http:
        call = await new_call(http, url, caller=CALLER)
        reply = await call.invoke("send_mfa")
    assert reply.status_code == 200
    assert "did not confirm the text" in reply.response  # an outage: it may have arrived
    assert "mfa_request_id" not in str(call.meta_data)  # no code pending from it
    assert server.requests == 1  # it may have arrived: never sent twice
    assert server.sent < 16 * 1024 * 1024, server.sent
