"""Two replicas on Redis Sentinel: the primary killed mid-call, and the call still verifies.

Debian's ``redis-server`` and ``redis-sentinel`` on loopback (``testkit/redis_sentinel.py``:
one primary, one replica, three sentinels). A code is sent on replica A and tried once
wrongly, the primary is SIGKILLed, ``/ready`` is polled on both replicas while the
sentinels promote the replica, and the right code is then checked on replica B. The call
verifies, exactly one final outcome reaches the webhook receiver (one ``webhook-id``, no
second one) and the history, and ``/ready`` says what happened meanwhile. The failover
time measured here (kill to promoted primary) is printed and written to
``/tmp/sentinel-failover-seconds.txt`` (docs/reference/redis-sentinel.md quotes it).

Nothing here judges speed: every wait is generous and bounded, so a loaded 2-core machine
is slower but not red.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.config.settings import SettingsError, load_settings
from agent.ops.preflight.lines import OK
from agent.ops.preflight.redis_check import check_redis
from testkit.redis_sentinel import SentinelCluster
from testkit.servers import ServerThread, free_port
from tests.support.agent_process import sandbox_env
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER, DASHBOARD
from tests.support.required_servers import require_redis_sentinel
from tests.support.shown import shown_block

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECRET = "whsec_" + base64.b64encode(b"sentinel-failover-test-key-01234").decode()
FAILOVER_FILE = Path("/tmp/sentinel-failover-seconds.txt")
SENT = "A code was texted to the phone number ending in"
VERIFIED = "caller is verified"
#: Kill to both replicas ready again; the sentinels alone need about 2 to 8 s here.
RECOVERY_BOUND = 40.0


@dataclass
class Hook:
    """A loopback outcome receiver: every POST, with its ``webhook-id``, answered 200."""

    received: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append(
                {"webhook_id": request.headers.get("webhook-id"), "body": json.loads(body)}
            )
        return Response(status_code=200)

    def for_call(self, call_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if r["body"].get("call_id") == call_id]


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    require_redis_sentinel()
    with SentinelCluster() as cluster:
        yield cluster


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    receiver = Hook()
    with ServerThread(receiver.app()) as server:
        yield receiver, server.url + "/hook"


async def ready(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    try:
        answer = await http.get(url + "/ready", timeout=5)
    except httpx.HTTPError as exc:
        return 0, {"error": type(exc).__name__}
    return answer.status_code, answer.json()


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@dataclass
class ReadySeen:
    """What ``/ready`` said on one replica, each change once: (seconds after the kill,
    status, checks)."""

    changes: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def note(self, at: float, status: int, body: dict[str, Any]) -> None:
        checks = body.get("checks", body)
        if not self.changes or self.changes[-1][1:] != (status, checks):
            self.changes.append((round(at, 2), status, checks))

    @property
    def went_down(self) -> bool:
        return any(status != 200 for _, status, _ in self.changes)


async def test_a_call_verifies_across_a_failover_with_one_final_outcome(
    sentinel_cluster, fake_signalwire, make_settings, serve_agent, hook, caplog
):
    cluster = sentinel_cluster
    caplog.set_level("INFO")
    fake, signalwire_url = fake_signalwire
    receiver, hook_url = hook
    settings = make_settings(
        signalwire_url=signalwire_url,
        # Fast retries, and entries a replica holds claimed by another after 1 s idle, so
        # an outcome left pending by the failover would be delivered (again) in this test.
        config={"webhook": {"retry_base_seconds": 0.05, "claim_idle_seconds": 1}},
        REDIS_SENTINELS=cluster.sentinels,
        REDIS_SENTINEL_MASTER=cluster.master,
        MFA_OUTCOME_WEBHOOK_URL=hook_url,
        MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
    )
    a, b = serve_agent(settings), serve_agent(settings)
    old_primary = cluster.primary
    async with httpx.AsyncClient(timeout=15) as http:

        async def both_ready() -> bool:
            return all([(await ready(http, url))[0] == 200 for url in (a, b)])

        await until(both_ready, 20, "both replicas ready on the sentinels' primary")
        (before,) = await check_redis(settings)  # `python -m agent check` names the primary
        assert before.status == OK and f"(primary now {old_primary})" in before.detail, before
        call = await new_call(http, a)
        assert SENT in (await call.invoke("send_mfa")).response  # on A
        code = fake.last_code_for(CALLER)
        wrong = await call.invoke("verify_mfa", token=wrong_code(code))  # a try counted
        assert "2 tries left" in wrong.response, wrong.response

        killed = cluster.kill_primary()
        failover = asyncio.create_task(asyncio.to_thread(cluster.wait_for_failover, within=35))
        seen = {"A": ReadySeen(), "B": ReadySeen()}
        back_at: float | None = None
        while True:
            now = time.monotonic() - killed
            states = [await ready(http, url) for url in (a, b)]
            for name, (status, body) in zip(seen, states, strict=True):
                seen[name].note(time.monotonic() - killed, status, body)
            if failover.done() and all(status == 200 for status, _ in states):
                back_at = now
                break
            assert now < RECOVERY_BOUND, f"/ready not back on both replicas: {seen}"
            await asyncio.sleep(0.1)
        try:
            failover_seconds = await failover
        except RuntimeError:
            pytest.fail("the sentinels did not fail over:\n" + cluster.logs())
        new_primary = cluster.primary
        (after,) = await check_redis(settings)
        assert after.status == OK and f"(primary now {new_primary})" in after.detail, after

        call.base_url = b  # the load balancer sends the next request to B
        reply = await call.invoke("verify_mfa", token=code)
        assert VERIFIED in reply.response, reply.response
        assert call.global_data["mfa_verified"] is True

        await until(
            lambda: _async(bool(receiver.for_call(call.call_id))), 15, "the outcome webhook"
        )
        # Longer than the claim idle time: an entry left pending anywhere would come again.
        await asyncio.sleep(3)
        deliveries = receiver.for_call(call.call_id)
        history = {
            name: (
                await http.get(url + "/outcomes", params={"call_id": call.call_id}, auth=DASHBOARD)
            ).json()["outcomes"]
            for name, url in (("A", a), ("B", b))
        }

    report = (
        f"failover {failover_seconds:.2f} s (kill -> promoted primary {new_primary}, "
        f"was {old_primary}); both replicas ready again {back_at:.2f} s after the kill; "
        f"/ready seen: {json.dumps({k: v.changes for k, v in seen.items()})}"
    )
    print("\n" + report)
    await asyncio.to_thread(FAILOVER_FILE.write_text, f"{failover_seconds:.2f}\n")

    # Exactly one final outcome: one delivery id, for the verified outcome.
    assert {d["webhook_id"] for d in deliveries} == {deliveries[0]["webhook_id"]}, deliveries
    assert [d["body"]["outcome"] for d in deliveries] == ["verified"] * len(deliveries)
    assert len(deliveries) == 1, f"delivered {len(deliveries)} times (same id): {deliveries}"
    for rows in history.values():
        assert [row["outcome"] for row in rows] == ["verified"], rows
        assert rows[0]["delivery"]["state"] == "delivered"

    # /ready said what happened: down while no primary answered (unless the failover was
    # quicker than a poll, which the report above would show), then ok on both.
    # The event relay's reader comes back a moment after Redis (it retries every second).
    for name, replica in seen.items():
        assert replica.changes[-1][1:] == (200, {"redis": "ok", "event_relay": "ok"}), (
            name,
            replica.changes,
        )
        down = [checks for _, status, checks in replica.changes if status != 200]
        assert all(status in (200, 503) for _, status, _ in replica.changes), replica.changes
        assert all("down" in checks.values() for checks in down), (name, replica.changes)
        if down:
            assert down[0]["redis"] == "down", (name, replica.changes)
    messages = [(r.getMessage(), getattr(r, "dependency", None)) for r in caplog.records]
    if any(replica.went_down for replica in seen.values()):
        assert ("dependency_down", "redis") in messages
        assert ("dependency_back", "redis") in messages
    failovers = [r for r in caplog.records if r.getMessage() == "redis_failover"]
    assert failovers, "no redis_failover logged"
    assert {(r.old_primary, r.new_primary) for r in failovers} == {(old_primary, new_primary)}


async def _async(value: bool) -> bool:
    return value


# -- bad settings stop start-up -----------------------------------------------------------


def settings_error(tmp_path: Path, **env: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(sandbox_env(tmp_path, **env))
    return str(info.value)


@pytest.mark.parametrize(
    ("sentinels", "problem"),
    [
        ("127.0.0.1", "'127.0.0.1' has no port"),
        ("127.0.0.1:26379,,127.0.0.1:26380", "has an empty entry"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:port", "the port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:26379", "is a list of host:port, not a URL"),
        ("::1:26379", "write an IPv6 address in brackets"),
        ("[zz::1]:26379", "is not an IPv6 address"),
        ("bad_host!:26379", "is not a host name or an IP address"),
        ("127.0.0.1:26379,127.0.0.1:26379", "names 127.0.0.1:26379 twice"),
    ],
)
def test_a_bad_sentinel_list_names_the_variable(tmp_path, sentinels, problem):
    message = settings_error(tmp_path, REDIS_SENTINELS=sentinels, REDIS_SENTINEL_MASTER="m")
    assert message.startswith("REDIS_SENTINELS: ") and problem in message, message


def test_sentinel_settings_come_together_and_never_beside_redis_url(tmp_path):
    assert settings_error(tmp_path, REDIS_SENTINELS="127.0.0.1:26379").startswith(
        "REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set"
    )
    assert settings_error(tmp_path, REDIS_SENTINEL_MASTER="mymaster").startswith(
        "REDIS_SENTINELS is required when REDIS_SENTINEL_MASTER is set"
    )
    both = settings_error(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:6379/0",
        REDIS_SENTINELS="127.0.0.1:26379",
        REDIS_SENTINEL_MASTER="mymaster",
    )
    assert both.startswith("REDIS_URL and REDIS_SENTINELS: set one, not both")
    bad_name = settings_error(
        tmp_path, REDIS_SENTINELS="127.0.0.1:26379", REDIS_SENTINEL_MASTER="my master"
    )
    assert bad_name.startswith("REDIS_SENTINEL_MASTER: must be the name the sentinels monitor")


def test_good_sentinel_settings_name_the_primary_to_follow(tmp_path):
    settings = load_settings(
        sandbox_env(
            tmp_path,
            REDIS_SENTINELS=" 10.0.0.5:26379, sentinel-2.internal:26380,[fd00::7]:26379 ",
            REDIS_SENTINEL_MASTER="mymaster",
        )
    )
    target = settings.redis_target
    assert target.sentinels == (
        ("10.0.0.5", 26379),
        ("sentinel-2.internal", 26380),
        ("fd00::7", 26379),
    )
    assert target.master == "mymaster" and settings.redis_url is None


def test_the_documented_settings_load(tmp_path):
    """docs/reference/redis-sentinel.md's two lines, as a shell would set them."""
    shown = dict(
        shlex.split(command)[0].split("=", 1) for command in shown_block("sentinel-env").commands
    )
    assert set(shown) == {"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"}
    target = load_settings(sandbox_env(tmp_path, **shown)).redis_target
    assert [port for _, port in target.sentinels] == [26379] * 3
    assert target.master == "mymaster"


def test_python_m_agent_with_a_bad_sentinel_list_stops_naming_it(tmp_path):
    environ = sandbox_env(
        tmp_path,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        REDIS_SENTINELS="127.0.0.1:26379,127.0.0.1",
        REDIS_SENTINEL_MASTER="mymaster",
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "agent"],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the agent started instead of stopping")
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "mfa-agent: configuration error: REDIS_SENTINELS: '127.0.0.1' has no port; write "
        "host:port (a sentinel listens on 26379 by default)"
    ]
