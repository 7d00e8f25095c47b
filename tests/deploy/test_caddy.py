"""deploy/Caddyfile for real: Caddy terminates TLS in front of the agent and takes the load.

Caddy (Debian's package; ``.ci/run`` installs it) and ``python -m agent`` run as
processes on free loopback ports; the certificate is made at test time with
openssl. While a few thousand idle connections sit on Caddy, calls verify through
it over HTTPS, the SWML's webhook URLs name Caddy's https URL (the agent trusts
Caddy's forwarded headers because it is named in ``MFA_TRUSTED_PROXIES``), and
the agent's log stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from agent.ops.local_server import free_port
from agent.ops.platform import PlatformCall
from tests.support.caddy import (
    CADDYFILE,
    SANDBOX_CODE,
    make_certificate,
    next_code,
    require_caddy_and_openssl,
)
from tests.support.defaults import AUTH
from tests.support.limited_agent import LimitedAgent

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _proxy_installed() -> None:
    require_caddy_and_openssl()


IDLE_CONNECTIONS = 3000


class Caddy:
    def __init__(self, tmp_path: Path, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HOME": str(tmp_path),  # Caddy keeps its state under $HOME
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "CADDY_ADMIN": "off",
            "CADDY_HTTP_PORT": str(free_port()),
            "CADDY_HTTPS_PORT": str(self.port),
            "MFA_PUBLIC_HOST": self.url,
            "MFA_TLS": f"{cert} {key}",
            "MFA_AGENT_UPSTREAMS": f"127.0.0.1:{upstream_port}",
        }
        self.log_path = tmp_path / "caddy.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            ["caddy", "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            cwd=tmp_path,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, tls: ssl.SSLContext, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", verify=tls, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("caddy did not start: " + self.log_path.read_text()[-2000:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def deployment(tmp_path):
    cert, key = make_certificate(tmp_path)
    tls = ssl.create_default_context(cafile=str(cert))
    agent = LimitedAgent(tmp_path, MFA_TRUSTED_PROXIES="127.0.0.1")
    caddy = None
    try:
        agent.wait_ready()
        caddy = Caddy(tmp_path, agent.port, cert, key)
        caddy.wait_ready(tls)
        yield agent, caddy, tls
    finally:
        if caddy is not None:
            caddy.stop()
        agent.stop()


def hold_idle_connections(port: int, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (count + 200, hard))
    count = min(count, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    held = []
    for number in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        held.append(sock)
        if number % 500 == 499:
            time.sleep(0.05)  # bounded rate: the kernel's accept queue keeps up
    return held


async def verified_call(url: str, tls: ssl.SSLContext, agent: LimitedAgent, n: int) -> None:
    async with httpx.AsyncClient(timeout=20, verify=tls) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=f"+1555123{n:04d}")
        await call.start()
        for spec in call.functions.values():
            assert spec["web_hook_url"].startswith(f"https://{AUTH[0]}:"), spec["web_hook_url"]
            assert f"@127.0.0.1:{url.rsplit(':', 1)[1]}/" in spec["web_hook_url"]
        before = len(SANDBOX_CODE.findall(agent.log_text()))
        sent = await call.invoke("send_mfa")
        assert sent.status_code == 200, sent.body
        code = await next_code(agent.log_text, before)
        verified = await call.invoke("verify_mfa", token=" ".join(code))
        assert verified.status_code == 200, verified.body
        assert call.global_data["mfa_verified"] is True, verified.body


def test_calls_verify_through_caddy_while_idle_connections_sit_on_it(deployment):
    agent, caddy, tls = deployment
    held = hold_idle_connections(caddy.port, IDLE_CONNECTIONS)
    try:
        time.sleep(1)
        for n in range(3):
            asyncio.run(verified_call(caddy.url, tls, agent, n))
        assert httpx.get(caddy.url + "/health", verify=tls, timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
    assert len(held) >= 1000
    log = agent.log_text()
    assert len(log) < 100_000, log[-2000:]
    assert "Traceback" not in log


def test_caddy_refuses_big_bodies_and_plain_http(deployment):
    agent, caddy, tls = deployment
    response = httpx.post(
        caddy.url + "/swaig/", content=b"x" * 2_000_000, auth=AUTH, verify=tls, timeout=10
    )
    assert response.status_code == 413

    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    with httpx.stream(
        "POST", caddy.url + "/swaig/", content=chunks(), auth=AUTH, verify=tls, timeout=10
    ) as streamed:
        # Caddy 2.6 buffers a body before proxying it (so that a retry can resend it); when
        # the buffering hits the 1 MB cut it passes on what it read, which the agent
        # refuses with 400 (413 without buffering). Either way nothing past 1 MB is taken.
        assert streamed.status_code in (400, 413)
    assert '"POST /swaig/ HTTP/1.1\\" 200' not in agent.log_text()
    plain = caddy.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/health", timeout=5).raise_for_status()
