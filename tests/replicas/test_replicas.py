"""Several agent processes behind a (simulated) load balancer, sharing one real Redis.

SignalWire may send the SWML request to one replica and each SWAIG request of the same
call to another; these tests do exactly that, with ``python -m agent`` processes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.ops.platform import PlatformCall
from agent.ops.simulator import first_event
from tests.support.agent_process import AgentProcess
from tests.support.defaults import AUTH, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def Replica(tmp_path: Path, redis_url: str, config: dict[str, Any]) -> AgentProcess:
    return AgentProcess(
        tmp_path, config, REDIS_URL=redis_url, SIGNALWIRE_SWAIG_SECRET="replicas-share-this"
    )


@pytest.fixture
def replicas(tmp_path, redis_url) -> Iterator[Callable[..., list[AgentProcess]]]:
    started: list[AgentProcess] = []

    def start(count: int = 2, config: dict[str, Any] | None = None) -> list[AgentProcess]:
        group = [Replica(tmp_path, redis_url, config or {}) for _ in range(count)]
        started.extend(group)
        for replica in group:
            replica.wait_ready()
        return group

    yield start
    for replica in started:
        replica.stop()


async def next_event(
    http: httpx.AsyncClient, url: str, match: Callable[[dict], bool], within: float = 10
) -> dict:
    """Read ``/events`` until an event matches (replay included)."""
    event = await first_event(http, url, DASHBOARD, match, within)
    assert event is not None, "no matching event on the stream"
    return event


def sandbox_text_to(last4: str) -> Callable[[dict], bool]:
    return lambda e: e.get("kind") == "sandbox_text" and e.get("to") == f"***{last4}"


def code_of(event: dict) -> str:
    return event["body"].rsplit(" ", 1)[1]


async def test_a_call_moves_between_replicas(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110001")
        await call.start()  # SWML from A: the tokens it mints must open B's tools
        await call.invoke("send_mfa")  # on A
        # The sandbox text published on A shows on B's stream (shared event stream).
        event = await next_event(http, b.url, sandbox_text_to("0001"))
        call.base_url = b.url
        reply = await call.invoke("verify_mfa", token=code_of(event))  # on B
        assert "caller is verified" in reply.response
        assert call.global_data["mfa_verified"] is True
        verified = await next_event(
            http, a.url, lambda e: e.get("outcome") == "verified" and e["call_id"] == call.call_id
        )
        assert verified["tool"] == "verify_mfa"


async def test_rate_limits_are_counted_across_replicas(replicas):
    a, b = replicas(2, {"limits": {"per_recipient_per_hour": 3}})
    async with httpx.AsyncClient(timeout=15) as http:
        answers = []
        for i in range(5):
            replica = (a, b)[i % 2]
            call = PlatformCall(http=http, base_url=replica.url, auth=AUTH, caller="+15551110002")
            await call.start()
            answers.append((await call.invoke("send_mfa")).response)
        sent = [text for text in answers if "was texted" in text]
        refused = [text for text in answers if "Too many codes have gone" in text]
        assert (len(sent), len(refused)) == (3, 2)


async def test_a_replica_killed_mid_call_loses_nothing(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110003")
        await call.start()
        await call.invoke("send_mfa")
        code = code_of(await next_event(http, b.url, sandbox_text_to("0003")))
        a.process.send_signal(signal.SIGKILL)
        a.process.wait(timeout=10)
        call.base_url = b.url  # the load balancer routes around the dead replica
        assert "caller is verified" in (await call.invoke("verify_mfa", token=code)).response


async def test_two_copies_of_a_right_answer_on_two_replicas_verify_once(replicas):
    a, b = replicas(2)
    async with httpx.AsyncClient(timeout=15) as http:
        first = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110004")
        await first.start()
        await first.invoke("send_mfa")
        code = code_of(await next_event(http, a.url, sandbox_text_to("0004")))
        twin = PlatformCall(
            http=http, base_url=b.url, auth=AUTH, caller=first.caller, call_id=first.call_id
        )
        twin.swml, twin.functions = first.swml, first.functions
        twin.meta_data = {k: dict(v) for k, v in first.meta_data.items()}
        twin.global_data = dict(first.global_data)
        replies = await asyncio.gather(
            first.invoke("verify_mfa", token=code), twin.invoke("verify_mfa", token=code)
        )
        # A platform retry landing on another replica: the one answer, checked once.
        assert replies[0].body == replies[1].body
        assert "caller is verified" in replies[0].response
        seen: list[dict] = []
        await first_event(
            http,
            a.url,
            DASHBOARD,
            lambda e: e.get("call_id") == first.call_id and seen.append(e) and False,
            within=1.5,
        )
        verify_outcomes = sorted(e["outcome"] for e in seen if e["tool"] == "verify_mfa")
        assert verify_outcomes == ["replayed", "verified"]


async def test_redis_outage_is_polite_and_recovers(tmp_path, own_redis_server):
    redis = own_redis_server
    replica = Replica(tmp_path, redis.url, {})
    try:
        replica.wait_ready()
        async with httpx.AsyncClient(timeout=15) as http:
            call = PlatformCall(http=http, base_url=replica.url, auth=AUTH, caller="+15551110005")
            await call.start()
            await call.invoke("send_mfa")
            code = code_of(await next_event(http, replica.url, sandbox_text_to("0005")))
            redis.stop()
            assert (await http.get(replica.url + "/ready")).status_code == 503
            assert (await http.get(replica.url + "/health")).status_code == 200
            # The right code: nothing can be verified while the pending codes are unreachable.
            verify = await call.invoke("verify_mfa", token=code)
            assert verify.status_code == 200 and "did not answer in time" in verify.response
            assert call.global_data["mfa_verified"] is False
            other = PlatformCall(http=http, base_url=replica.url, auth=AUTH, caller="+15551110006")
            await other.start()
            send = await other.invoke("send_mfa")
            assert send.status_code == 200 and "nothing changed" in send.response

            redis.start()
            deadline = time.monotonic() + 15
            while (await http.get(replica.url + "/ready")).status_code != 200:
                assert time.monotonic() < deadline, "/ready did not recover"
                await asyncio.sleep(0.2)
            fresh = PlatformCall(http=http, base_url=replica.url, auth=AUTH, caller="+15551110007")
            await fresh.start()
            assert "was texted" in (await fresh.invoke("send_mfa")).response
            code = code_of(await next_event(http, replica.url, sandbox_text_to("0007")))
            assert "caller is verified" in (await fresh.invoke("verify_mfa", token=code)).response
    finally:
        replica.stop()


async def test_events_still_cross_replicas_after_a_quiet_spell(replicas):
    """A reader blocked on a quiet stream must not be taken for a Redis outage."""
    a, b = replicas(2)
    await asyncio.sleep(2.5)  # longer than the Redis client's socket timeout
    async with httpx.AsyncClient(timeout=15) as http:
        assert (await http.get(a.url + "/ready")).status_code == 200
        call = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110008")
        await call.start()
        await call.invoke("send_mfa")
        event = await next_event(http, b.url, sandbox_text_to("0008"), within=5)
        assert code_of(event).isdigit()


def account_config(tmp_path: Path, **limits: Any) -> dict[str, Any]:
    book = tmp_path / "accounts.csv"
    book.write_text("account_number,phone_number\n12345678,(202) 555-0199\n")
    config: dict[str, Any] = {"directory": {"path": str(book), "neutral_answer_seconds": 0}}
    if limits:
        config["limits"] = limits
    return config


async def test_the_unknown_account_lockout_holds_across_replicas(replicas, tmp_path):
    a, b = replicas(2, account_config(tmp_path))
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110009")
        await call.start()
        for i, guess in enumerate(("111", "222", "333")):
            call.base_url = (a, b)[i % 2].url
            assert (
                "No code was sent" in (await call.invoke("send_mfa", account_number=guess)).response
            )
        call.base_url = b.url
        locked = await call.invoke("send_mfa", account_number="12345678")
        assert "No more account numbers can be looked up" in locked.response


async def test_limits_per_number_on_file_hold_across_replicas(replicas, tmp_path):
    a, b = replicas(2, account_config(tmp_path, per_recipient_per_hour=2))
    async with httpx.AsyncClient(timeout=15) as http:
        answers = []
        for i in range(3):
            caller = f"+1555111002{i}"  # a different phone each time: the number on file counts
            call = PlatformCall(http=http, base_url=(a, b)[i % 2].url, auth=AUTH, caller=caller)
            await call.start()
            answers.append((await call.invoke("send_mfa", account_number="12345678")).response)
        assert ["was texted" in text for text in answers] == [True, True, False]
        event = await next_event(http, b.url, sandbox_text_to("0199"))
        assert code_of(event).isdigit()
