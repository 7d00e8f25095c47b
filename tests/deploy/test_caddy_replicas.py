"""The operator's guide's replicas recipe, run as written: two agents on one Redis behind one Caddy.

The test takes the shell block marked ``replicas-recipe`` (in docs/operators-guide/replicas.md;
found by name, wherever it is) and runs it with bash, changing only what cannot be the same on
a test machine: the host name and ports (free loopback ports), the certificate (made at test
time), the env file (this test's sandbox secrets and Redis) and ``.venv/bin`` (the venv running
the tests). Then calls play through Caddy over HTTPS as SignalWire would, and each replica's log
(the recipe gives each its own) shows the requests it served.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.ops.platform import PlatformCall
from tests.support.caddy import (
    CADDY_RUN,
    SANDBOX_CODE,
    answers,
    distinct_free_ports,
    make_certificate,
    proxy_environ,
    substituted,
    wait_until,
)
from tests.support.defaults import AUTH
from tests.support.process_group import ShellRun
from tests.support.shown import shown_block, venv_bin

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RECIPE = shown_block("replicas-recipe").body
SHARED_SECRET = "replicas-behind-caddy-share-this"
TOOL_REQUEST = re.compile(r'"POST /swaig/\?__token=\[redacted\] HTTP/1\.1\\?" 200')


def test_the_readme_shows_the_replicas_recipe():
    assert 'MFA_AGENT_UPSTREAMS="127.0.0.1:3000 127.0.0.1:3001"' in RECIPE
    assert "deploy/caddy-run" in RECIPE
    assert RECIPE.count(".venv/bin/python -m agent") == 2


def process_state(pid: int) -> str:
    """The state letter in /proc (``Z`` for an exited process not yet reaped), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


class Deployment:
    """The recipe running in its own process group: bash, two agents and Caddy."""

    def __init__(self, tmp_path: Path, redis_url: str, cert: Path, key: Path) -> None:
        replica_a, replica_b, self.https_port, http_port = distinct_free_ports(4)
        self.ports = {"3000": replica_a, "3001": replica_b}
        self.url = f"https://127.0.0.1:{self.https_port}"
        env_file = tmp_path / "env"
        # As the README writes it: NAME='value', one a line.
        env_file.write_text(
            f"SWML_BASIC_AUTH_USER='{AUTH[0]}'\nSWML_BASIC_AUTH_PASSWORD='{AUTH[1]}'\n"
            f"SIGNALWIRE_SWAIG_SECRET='{SHARED_SECRET}'\nREDIS_URL='{redis_url}'\n"
            f"MFA_AGENT_CONFIG='{REPO / 'agent' / 'config.yaml'}'\n"
        )
        script = substituted(
            RECIPE,
            {
                "/etc/mfa-agent/env": str(env_file),
                "/etc/ssl/mfa/cert.pem": str(cert),
                "/etc/ssl/mfa/key.pem": str(key),
                "agent.example.com": "127.0.0.1",
                "8443": str(self.https_port),
                "8080": str(http_port),
                "3000": str(replica_a),
                "3001": str(replica_b),
                ".venv/bin/": venv_bin(),
                "deploy/caddy-run": str(CADDY_RUN),
            },
        )
        self.dir = tmp_path
        self.run = ShellRun(script, tmp_path, proxy_environ(tmp_path), tmp_path / "caddy.log")
        self.shell = self.run.process

    def log(self, shown_port: str) -> str:
        path = self.dir / f"agent-{self.ports[shown_port]}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def replica_pid(self, shown_port: str) -> int:
        """The agent the recipe started on that port: a child of the recipe's bash."""
        children = Path(f"/proc/{self.shell.pid}/task/{self.shell.pid}/children").read_text()
        for pid in map(int, children.split()):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"PORT={self.ports[shown_port]}".encode() in environ:
                return pid
        raise AssertionError(f"no replica on port {self.ports[shown_port]}")

    def stop_replica(self, shown_port: str) -> None:
        """SIGTERM to one replica, then wait until it has exited (gone or a zombie)."""
        pid = self.replica_pid(shown_port)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while process_state(pid) not in ("gone", "Z"):
            assert time.monotonic() < deadline, "the replica did not stop on SIGTERM"
            time.sleep(0.05)

    def wait_ready(self, tls: ssl.SSLContext, timeout: float = 60) -> None:
        def ready() -> bool:
            replicas = [answers(f"http://127.0.0.1:{port}/ready") for port in self.ports.values()]
            return all(replicas) and answers(self.url + "/health", verify=tls)

        logs = [self.dir / f"agent-{port}.log" for port in self.ports.values()]
        wait_until(ready, [self.run], logs, timeout)

    def stop(self) -> None:
        self.run.stop()


@pytest.fixture
def deployment(tmp_path, redis_url) -> Iterator[tuple[Deployment, ssl.SSLContext]]:
    cert, key = make_certificate(tmp_path)
    tls = ssl.create_default_context(cafile=str(cert))
    recipe = Deployment(tmp_path, redis_url, cert, key)
    try:
        recipe.wait_ready(tls)
        yield recipe, tls
    finally:
        recipe.stop()


def codes_sent(recipe: Deployment) -> dict[str, list[str]]:
    return {port: SANDBOX_CODE.findall(recipe.log(port)) for port in recipe.ports}


async def sent_code(recipe: Deployment, before: dict[str, list[str]]) -> tuple[str, str]:
    """The new sandbox text and the replica (its shown port) that sent it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for port, codes in codes_sent(recipe).items():
            if len(codes) > len(before[port]):
                return codes[-1], port
        await asyncio.sleep(0.05)
    raise AssertionError("no sandbox text in either replica's log")


def start_call(http: httpx.AsyncClient, recipe: Deployment, n: int) -> PlatformCall:
    return PlatformCall(http=http, base_url=recipe.url, auth=AUTH, caller=f"+1555321{n:04d}")


async def play_verified_calls(recipe: Deployment, tls: ssl.SSLContext, count: int) -> None:
    async with httpx.AsyncClient(timeout=20, verify=tls) as http:
        for n in range(count):
            call = start_call(http, recipe, n)
            await call.start()
            for spec in call.functions.values():  # SignalWire is sent back through Caddy
                assert f"@127.0.0.1:{recipe.https_port}/" in spec["web_hook_url"]
            before = codes_sent(recipe)
            assert (await call.invoke("send_mfa")).status_code == 200
            code, _ = await sent_code(recipe, before)
            verified = await call.invoke("verify_mfa", token=" ".join(code))
            assert verified.status_code == 200, verified.body
            assert call.global_data["mfa_verified"] is True, verified.body


def test_calls_through_caddy_reach_both_replicas_and_verify(deployment):
    recipe, tls = deployment
    asyncio.run(play_verified_calls(recipe, tls, 3))
    # Round robin over two replicas: 3 calls x 2 tool requests land on both of them.
    served = {port: len(TOOL_REQUEST.findall(recipe.log(port))) for port in recipe.ports}
    assert sum(served.values()) == 6, served
    assert min(served.values()) >= 1, served
    for port in recipe.ports:
        assert "Traceback" not in recipe.log(port)


async def verify_after_the_sender_stops(recipe: Deployment, tls: ssl.SSLContext) -> str:
    async with httpx.AsyncClient(timeout=30, verify=tls) as http:
        call = start_call(http, recipe, 99)
        await call.start()
        before = codes_sent(recipe)
        assert (await call.invoke("send_mfa")).status_code == 200
        code, sender = await sent_code(recipe, before)
        # Mid-call, the replica that texted the code stops (as `systemctl stop` would).
        recipe.stop_replica(sender)
        survivor = next(port for port in recipe.ports if port != sender)
        served_before = len(TOOL_REQUEST.findall(recipe.log(survivor)))
        # Several turns, so that round robin would pick the stopped replica at least once.
        wrong = await call.invoke("verify_mfa", token="000000" if code != "000000" else "111111")
        assert wrong.status_code == 200, wrong.body
        assert call.global_data["mfa_verified"] is False
        verified = await call.invoke("verify_mfa", token=" ".join(code))
        assert verified.status_code == 200, verified.body
        assert call.global_data["mfa_verified"] is True, verified.body
        assert len(TOOL_REQUEST.findall(recipe.log(survivor))) == served_before + 2
        return sender


def test_a_call_verifies_through_the_other_replica_when_the_sender_stops(deployment):
    recipe, tls = deployment
    sender = asyncio.run(verify_after_the_sender_stops(recipe, tls))
    assert recipe.shell.poll() is None, "Caddy (and the recipe) kept running"
    assert "Traceback" not in recipe.log(sender)
