"""The outbox survives the process: ``python -m agent`` killed with SIGKILL while it retries
a delivery, then started again on the same files, delivers the outcome once, with the
same ``X-MFA-Delivery`` id. With replicas on Redis, the replica that held the outcome
dies and another one delivers it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.ops.platform import PlatformCall
from agent.ops.simulator import first_event
from testkit.servers import ServerThread
from tests.agent.test_outcome_webhook import SECRET, Receiver
from tests.support.agent_process import AgentProcess
from tests.support.defaults import AUTH, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Retries every 0.2 to 0.4 s at first; replicas take over a dead one's after 1 s idle.
FAST = {"webhook": {"retry_base_seconds": 0.2, "retry_max_interval_seconds": 0.4}}


async def verify_on(agent_url: str, caller: str) -> str:
    """A verified sandbox call on ``agent_url``; the code is read from the live stream."""
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=agent_url, auth=AUTH, caller=caller)
        await call.start()
        sent_at = time.time()
        assert "was texted" in (await call.invoke("send_mfa")).response
        text = await first_event(
            http,
            agent_url,
            DASHBOARD,
            lambda e: e.get("kind") == "sandbox_text" and e.get("at", 0) >= sent_at - 1,
            10,
        )
        assert text is not None, "no sandbox text on the stream"
        code = text["body"].rsplit(" ", 1)[-1]
        reply = await call.invoke("verify_mfa", token=code)
        assert "caller is verified" in reply.response
        return call.call_id


async def wait_for(check: Any, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def successes(hook: Receiver) -> list[dict[str, Any]]:
    return [r for r in hook.received if r.get("status") == 200]


class CountingReceiver(Receiver):
    """The test's receiver, noting the status it answered each time."""

    async def _hook(self, request: Any) -> Any:
        with self._lock:
            status = self.answers[0] if self.answers else 200
        response = await super()._hook(request)
        with self._lock:
            self.received[-1]["status"] = status
        return response


def outcomes_of(url: str) -> dict[str, Any]:
    return httpx.get(url + "/outcomes", auth=DASHBOARD, timeout=5).json()


def metric_value(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", auth=DASHBOARD, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_sigkill_during_a_retry_then_a_restart_delivers_once(tmp_path: Path):
    hook = CountingReceiver()
    hook.answers = [503] * 10_000  # down until the test says otherwise
    with ServerThread(hook.app()) as server:
        env = {
            "MFA_OUTCOME_WEBHOOK_URL": server.url + "/hook",
            "MFA_OUTCOME_WEBHOOK_SECRET": SECRET,
        }
        first = AgentProcess(tmp_path, FAST, **env)
        try:
            first.wait_ready()
            call_id = await verify_on(first.url, "+15551230001")
            await wait_for(lambda: hook.count() >= 2)  # retrying
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
        finally:
            first.stop()
        tried = hook.count()
        with hook._lock:
            hook.answers.clear()  # the receiver is back

        second = AgentProcess(tmp_path, FAST, **env)  # the same files: the outbox survives
        try:
            second.wait_ready()
            await wait_for(lambda: len(successes(hook)) >= 1)
            await asyncio.sleep(1.0)  # nothing more follows a delivery
            rows = await asyncio.to_thread(outcomes_of, second.url)
        finally:
            second.stop()

    assert len(successes(hook)) == 1
    assert hook.count() > tried  # the restarted process made the delivery
    assert len({r["delivery"] for r in hook.received}) == 1  # the same id on every attempt
    assert all(r["valid"] for r in hook.received)
    [row] = rows["outcomes"]
    assert row["call_id"] == call_id and row["outcome"] == "verified"
    assert row["delivery"]["state"] == "delivered"
    assert row["delivery"]["attempts"] >= 2  # attempts before the kill were recorded


async def test_a_dead_replicas_outcome_is_delivered_by_another(tmp_path: Path, redis_url: str):
    hook = CountingReceiver()
    hook.answers = [503] * 10_000
    config = {"webhook": {**FAST["webhook"], "claim_idle_seconds": 1.0}}
    with ServerThread(hook.app()) as server:
        env = {
            "REDIS_URL": redis_url,
            "SIGNALWIRE_SWAIG_SECRET": "replicas-share-this",
            "MFA_OUTCOME_WEBHOOK_URL": server.url + "/hook",
            "MFA_OUTCOME_WEBHOOK_SECRET": SECRET,
        }
        replicas = [AgentProcess(tmp_path, config, **env) for _ in range(2)]
        try:
            for replica in replicas:
                replica.wait_ready()
            writer = replicas[0]
            call_id = await verify_on(writer.url, "+15551230002")
            await wait_for(lambda: hook.count() >= 2)
            # The replica retrying it holds it (either may have read it from the stream).
            holder = next(
                r
                for r in replicas
                if metric_value(r.url, "mfa_outbox_deliveries_total", result="retry") > 0
            )
            survivor = next(r for r in replicas if r is not holder)
            holder.process.send_signal(signal.SIGKILL)
            holder.process.wait(timeout=10)
            tried = hook.count()
            with hook._lock:
                hook.answers.clear()
            await wait_for(lambda: len(successes(hook)) >= 1)
            await asyncio.sleep(1.5)  # past another claim interval: no second delivery
            rows = await asyncio.to_thread(outcomes_of, survivor.url)
            delivered_here = metric_value(
                survivor.url, "mfa_outbox_deliveries_total", result="delivered"
            )
        finally:
            for replica in replicas:
                replica.stop()

    assert len(successes(hook)) == 1 and delivered_here == 1
    assert hook.count() > tried
    assert len({r["delivery"] for r in hook.received}) == 1
    [row] = rows["outcomes"]
    assert row["call_id"] == call_id and row["delivery"]["state"] == "delivered"


def json_lines(output: str, msg: str) -> list[dict[str, Any]]:
    import json

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == msg]


async def test_a_replica_with_redis_down_says_so_once_then_once_when_it_is_back(
    tmp_path: Path, own_redis_server
):
    """The outbox polls its store every second: with Redis down, a line a second per
    replica buried the log. Now one line when it goes (later ones once a minute, with
    a count) and one when it is back, with the outage's count of failed polls."""
    hook = CountingReceiver()
    with ServerThread(hook.app()) as server:
        replica = AgentProcess(
            tmp_path,
            capture=True,
            REDIS_URL=own_redis_server.url,
            SIGNALWIRE_SWAIG_SECRET="replicas-share-this",
            MFA_OUTCOME_WEBHOOK_URL=server.url + "/hook",
            MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
        )
        try:
            replica.wait_ready()
            own_redis_server.stop()
            await asyncio.sleep(6)  # five or more polls fail
            own_redis_server.start()
            replica.wait_ready(timeout=20)
            await asyncio.sleep(2)  # the outbox's next poll succeeds
        finally:
            output = replica.stop()

    [down] = json_lines(output, "outbox_unavailable")
    assert down["level"] == "warning" and down["logger"] == "mfa.outcome_webhook"
    assert "suppressed" not in down  # nothing held back before the first line
    [back] = json_lines(output, "outbox_back")
    assert back["failures"] >= 4
