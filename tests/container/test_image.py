"""The shipped Containerfile, built and run: health, a verified call, replicas, the user,
and a stop that loses nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from agent.ops.platform import PlatformCall
from agent.ops.simulator import first_event
from testkit import container
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread
from tests.support.agent_container import AgentContainer, readme_command, run_shell
from tests.support.defaults import AUTH, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.container]

UID = "10001"


async def sandbox_code(http: httpx.AsyncClient, url: str, caller: str) -> str:
    """The code of the sandbox text to ``caller``, read from an agent's live stream."""
    event = await first_event(
        http,
        url,
        DASHBOARD,
        lambda e: e.get("kind") == "sandbox_text" and e.get("to") == f"***{caller[-4:]}",
        within=15,
    )
    assert event is not None, "no sandbox text on the live stream"
    return str(event["body"]).rsplit(" ", 1)[1]


def test_health_answers_and_the_image_health_check_passes(agent_image):
    with AgentContainer(agent_image) as agent:
        agent.wait_healthy()
        assert httpx.get(agent.url + "/health", timeout=5).json()["status"] == "healthy"
        # The HEALTHCHECK kept in the image (--format docker), run as the engine runs it.
        check = container.podman("healthcheck", "run", agent.name, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        assert json.loads(agent.inspect("{{json .Config.Healthcheck.Test}}")) == [
            "CMD",
            "python",
            "-m",
            "agent.healthcheck",
        ]


def test_the_agent_runs_as_a_user_without_privileges(agent_image):
    assert (
        container.podman(
            "image", "inspect", agent_image, "--format", "{{.Config.User}}"
        ).stdout.strip()
        == f"{UID}:{UID}"
    )
    with AgentContainer(agent_image) as agent:
        agent.wait_healthy()
        # PID 1 is the agent itself (no shell in between): real, effective, saved and fs uid.
        status = agent.exec("cat", "/proc/1/status")
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert uids == [UID] * 4
        assert "mfa-agent" in agent.exec("cat", "/proc/1/cmdline").replace("\0", " ")
        assert agent.exec("id", "-u").strip() == UID


def test_a_simulated_call_verifies_through_the_container(agent_image):
    with AgentContainer(agent_image) as agent:
        agent.wait_healthy()
        result = subprocess.run(
            [
                *(sys.executable, "-m", "agent", "call", "--url", agent.url),
                *("--user", AUTH[0], "--password", AUTH[1], "--say", "my code is {code}"),
                *("--dashboard-password", DASHBOARD[1]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr + agent.logs()
        assert "global_data.mfa_verified = true" in result.stdout


def test_the_readme_run_and_call_commands_verify(agent_image, volume_name):
    """The README's ``podman run``, simulator and ``podman stop``, on a free port and this
    test's volume and name instead of 3000, mfa-data and mfa-agent."""
    run = readme_command("podman --runtime runc run ")
    call = readme_command(".venv/bin/python -m agent call ")
    stop = readme_command("podman --runtime runc stop ")
    probe = AgentContainer(agent_image)  # only for a free port and a unique name
    probe.remove()
    name, port = probe.name, str(probe.port)
    run = (
        run.replace("--name mfa-agent", f"--name {name}")
        .replace("mfa-data:", f"{volume_name}:")
        .replace(" localhost/mfa-agent", f" -e PORT={port} {agent_image}")
    )
    try:
        run_shell(run)
        probe.wait_healthy()
        called = run_shell(call.replace("127.0.0.1:3000", f"127.0.0.1:{port}"), timeout=120)
        assert "global_data.mfa_verified = true" in called.stdout
        run_shell(stop.replace("mfa-agent", name), timeout=120)
        assert probe.exit_code() == 0
    finally:
        probe.remove()


async def test_two_containers_on_one_redis_share_a_call(agent_image, redis_url):
    """A sends the code, B verifies it: the tool tokens, the sealed meta_data and the
    sandbox code cross from one container to the other (shared secret, shared Redis)."""
    shared = {"REDIS_URL": redis_url, "swaig_secret": "replicas-share-this-secret"}
    with AgentContainer(agent_image, **shared) as a, AgentContainer(agent_image, **shared) as b:
        a.wait_healthy()
        b.wait_healthy()
        async with httpx.AsyncClient(timeout=20) as http:
            call = PlatformCall(http=http, base_url=a.url, auth=AUTH, caller="+15551110021")
            await call.start()
            sent = await call.invoke("send_mfa")
            assert "texted" in sent.response, sent.response
            code = await sandbox_code(http, b.url, call.caller)  # A's text on B's stream
            call.base_url = b.url
            reply = await call.invoke("verify_mfa", token=code)
        assert "caller is verified" in reply.response, reply.response + b.logs()
        assert call.global_data["mfa_verified"] is True
        assert '"outcome": "verified"' in b.logs()
        assert '"outcome": "verified"' not in a.logs()


class HeldSends:
    """ASGI wrapper around the fake SignalWire: a send is held until ``release`` is set,
    so that the test decides when the agent's request is in flight."""

    def __init__(self, app) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/mfa/sms"):
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
        await self.app(scope, receive, send)


async def test_sigterm_lets_an_in_flight_send_finish_then_stops_cleanly(agent_image, tmp_path):
    """``podman stop`` while a send is at SignalWire: the send completes (the text went, the
    caller hears so), the process exits 0 within the grace period (SIGKILL would give 137),
    and the stop hooks ran."""
    fake = FakeSignalWire()
    held = HeldSends(fake.app())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"upstream": {"deadline_seconds": 9.5}}))
    config.chmod(0o644)
    with ServerThread(held) as upstream:
        account = {
            "MFA_PROVIDER": "signalwire",
            "SIGNALWIRE_PROJECT_ID": "11111111-2222-3333-4444-555555555555",
            "SIGNALWIRE_API_TOKEN": "PTfake0123456789abcdef",
            "SIGNALWIRE_SPACE": upstream.url,
            "MFA_FROM_NUMBER": "+15559870000",
            "MFA_TRUSTED_PROXIES": "127.0.0.1",
        }
        with AgentContainer(agent_image, config=config, **account) as agent:
            agent.wait_healthy()
            async with httpx.AsyncClient(timeout=30) as http:
                call = PlatformCall(http=http, base_url=agent.url, auth=AUTH, caller="+15551110031")
                await call.start()
                sending = asyncio.create_task(call.invoke("send_mfa"))
                assert await asyncio.to_thread(held.arrived.wait, 30), "the send never arrived"
                stopping = asyncio.create_task(asyncio.to_thread(agent.stop, 30))
                await asyncio.to_thread(wait_for_log, agent, "Shutting down")
                held.release.set()
                reply = await sending
                await stopping
            logs = agent.logs()
            assert "texted" in reply.response, reply.response + logs
            assert [text["to"] for text in fake.texts] == [call.caller]
            assert agent.exit_code() == 0, logs
            assert "Application shutdown complete." in logs


def wait_for_log(agent: AgentContainer, text: str, attempts: int = 300) -> None:
    for _ in range(attempts):
        if text in agent.logs():
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"{text!r} never logged:\n{agent.logs()}")


async def test_sandbox_codes_in_the_volume_survive_a_restart(agent_image, volume_name):
    """A code sent before a stop verifies after a start of a new container on the volume."""
    async with httpx.AsyncClient(timeout=20) as http:
        with AgentContainer(agent_image, volume=volume_name) as first:
            first.wait_healthy()
            call = PlatformCall(http=http, base_url=first.url, auth=AUTH, caller="+15551110041")
            await call.start()
            await call.invoke("send_mfa")
            code = await sandbox_code(http, first.url, call.caller)
            first.stop()
            assert first.exit_code() == 0
        mountpoint = Path(
            container.podman(
                "volume", "inspect", volume_name, "--format", "{{.Mountpoint}}"
            ).stdout.strip()
        )
        database = mountpoint / "sandbox.sqlite3"
        assert database.is_file() and database.stat().st_uid == int(UID)
        with AgentContainer(agent_image, volume=volume_name) as second:
            second.wait_healthy()
            call.base_url = second.url
            reply = await call.invoke("verify_mfa", token=code)
        assert "caller is verified" in reply.response, reply.response
