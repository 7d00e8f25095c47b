"""200 calls at once through send and verify, with SignalWire answering in 0.2 s.

With the agent's send cap at 150 a minute, exactly 150 calls get a code and verify with
it, and 50 hear that the service is busy. Every call gets an answer: none is lost, none
errors, none gets another call's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.support.defaults import AUTH

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.slow]

CALLS = 200
CLIENTS = 20
CAP = 150
SENT = "A code was texted to the phone number ending in"
BUSY = "The verification service is very busy right now, so no code was sent."


async def test_200_calls_at_once(fake_signalwire, make_settings, serve_agent):
    fake, sw_url = fake_signalwire
    fake.latency = 0.2
    settings = make_settings(
        signalwire_url=sw_url,
        config={
            "upstream": {"max_connections": 400},
            "limits": {"agent_sends_per_minute": CAP},
            # 200 callers in one number range: the agent-wide cap is under test, not pumping.
            "pumping": {"per_prefix_per_hour": 100_000, "per_country_per_hour": 100_000},
        },
    )
    agent = build_agent(settings)
    events: list[dict] = []
    agent.publisher.subscribe(lambda event: events.append(event.to_dict()))
    url = serve_agent(agent)

    answer_times: list[float] = []
    by_kind: dict[str, list[float]] = {"swml": [], "send": [], "verify": []}

    async def timed(work, kind: str):
        started = time.perf_counter()
        result = await work
        answer_times.append(time.perf_counter() - started)
        by_kind[kind].append(answer_times[-1])
        return result

    async def one_call(http: httpx.AsyncClient, i: int) -> str:
        caller = f"+1555{i:07d}"
        call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=caller)
        await timed(call.start(), "swml")
        sent = await timed(call.invoke("send_mfa"), "send")
        assert sent.status_code == 200
        if BUSY in sent.response:
            assert call.meta_data.get("mfa_skill", {}).get("mfa_request_id") is None
            return "busy"
        assert SENT in sent.response, sent.response
        assert f"ending in {' '.join(caller[-4:])}" in sent.response
        reply = await timed(call.invoke("verify_mfa", token=fake.last_code_for(caller)), "verify")
        assert reply.status_code == 200
        assert "caller is verified" in reply.response, reply.response
        assert call.global_data["mfa_verified"] is True
        assert call.global_data["mfa_verified_number_last4"] == caller[-4:]
        return "verified"

    # SignalWire's requests come from many independent clients. One test client with 250
    # connections would spend most of the CPU in httpcore's pool bookkeeping, which grows
    # with connections x waiting requests, and measure the test instead of the agent.
    limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
    started = time.perf_counter()
    cpu_started = time.process_time()
    async with contextlib.AsyncExitStack() as stack, asyncio.timeout(60):
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, limits=limits))
            for _ in range(CLIENTS)
        ]
        results = await asyncio.gather(*(one_call(clients[i % CLIENTS], i) for i in range(CALLS)))
    wall = time.perf_counter() - started

    assert len(results) == CALLS
    assert results.count("verified") == CAP
    assert results.count("busy") == CALLS - CAP
    assert len(fake.texts) == CAP
    assert len({t["to"] for t in fake.texts}) == CAP
    sends = [e["outcome"] for e in events if e["tool"] == "send_mfa"]
    verifies = [e["outcome"] for e in events if e["tool"] == "verify_mfa"]
    assert sends.count("code_sent") == CAP
    assert sends.count("rate_limited") == CALLS - CAP
    assert verifies.count("verified") == CAP
    assert len(verifies) == CAP
    assert len(answer_times) == CALLS * 2 + CAP

    worst = max(answer_times)
    cpu = time.process_time() - cpu_started
    print(
        f"\nload: {CALLS} calls at once, {CAP} verified, {CALLS - CAP} busy; "
        f"{len(answer_times)} answers, worst {worst:.3f} s, wall {wall:.2f} s, "
        f"process CPU {cpu:.2f} s; worst by kind: "
        + ", ".join(f"{k} {max(v):.3f} s" for k, v in by_kind.items())
    )
