"""The README's one-agent proxy block, run as written: Caddy in front of one agent on loopback.

The block is two commands a reader runs side by side (Caddy stays in the foreground), so each
runs in its own bash, as in two terminals. What cannot be the same here is changed, and only
that: the ACME e-mail in ``MFA_TLS`` becomes a certificate made at test time (no internet),
ports 443, 80 and 3000 become free ones (``CADDY_HTTPS_PORT``, ``CADDY_HTTP_PORT``,
``PORT``, and ``MFA_AGENT_UPSTREAMS`` for the Caddyfile's default upstream
``127.0.0.1:3000``), so ``MFA_PUBLIC_HOST`` and ``SWML_PROXY_URL_BASE`` carry the https
port, and ``.venv/bin`` is the venv running the tests. The agent is a sandbox agent with the
tests' credentials and a signing key, as an account's agent has one. ``agent.example.com``
stays: the test's client resolves it to 127.0.0.1, so Caddy sees the host name (and TLS server
name) the block names, as SignalWire's requests would carry it. A call then plays over HTTPS
through Caddy, each request signed over the public URL as SignalWire signs it: the SWML names
that URL, the agent checks the signatures against it (``SWML_PROXY_URL_BASE``; another URL
there and every request gets 403) and the code texted by ``send_mfa`` verifies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.ops.platform import PlatformCall
from testkit.agent_env import agent_env, write_config
from tests.support.caddy import (
    CADDY_RUN,
    SANDBOX_CODE,
    AsyncLoopbackTransport,
    LoopbackTransport,
    answers,
    distinct_free_ports,
    make_certificate,
    next_code,
    proxy_environ,
    require_caddy_and_openssl,
    substituted,
    wait_until,
)
from tests.support.defaults import AUTH, CALLER, SWAIG_SECRET
from tests.support.process_group import ShellRun
from tests.support.shown import shown_block, venv_bin

pytestmark = [pytest.mark.slow]

BLOCK = shown_block("one-agent-proxy")
PUBLIC_HOST = "agent.example.com"
SIGNING_KEY = "one-agent-behind-caddy-signing-key"


@pytest.fixture(autouse=True)
def _proxy_installed() -> None:
    require_caddy_and_openssl()


def test_the_readme_shows_caddy_then_one_agent_on_loopback():
    proxy, agent = BLOCK.commands
    assert proxy == (f"MFA_PUBLIC_HOST={PUBLIC_HOST} MFA_TLS=ops@example.com deploy/caddy-run")
    assert agent.startswith("HOST=127.0.0.1 PORT=3000 MFA_TRUSTED_PROXIES=127.0.0.1 ")
    assert agent.endswith(f"SWML_PROXY_URL_BASE=https://{PUBLIC_HOST} .venv/bin/python -m agent")


class OneAgent:
    """The block's two commands, each in its own bash, with this machine's values."""

    def __init__(self, tmp_path: Path, cert: Path, key: Path) -> None:
        https_port, http_port, agent_port = distinct_free_ports(3)
        self.https_port = https_port
        self.url = f"https://{PUBLIC_HOST}:{https_port}"
        self.agent_url = f"http://127.0.0.1:{agent_port}"
        body = substituted(
            BLOCK.body,
            {
                PUBLIC_HOST: f"{PUBLIC_HOST}:{https_port}",
                "ops@example.com": shlex.quote(f"{cert} {key}"),
                "3000": str(agent_port),
                ".venv/bin/": venv_bin(),
                "deploy/caddy-run": str(CADDY_RUN),
            },
        )
        proxy, agent = dataclasses.replace(BLOCK, body=body).commands
        environ = proxy_environ(tmp_path)
        proxy_env = environ | {
            "CADDY_HTTPS_PORT": str(https_port),
            "CADDY_HTTP_PORT": str(http_port),
            "MFA_AGENT_UPSTREAMS": f"127.0.0.1:{agent_port}",
        }
        agent_environ = agent_env(
            write_config(tmp_path),
            auth=AUTH,
            swaig_secret=SWAIG_SECRET,
            base=environ,
            SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
        )
        self.agent = ShellRun(agent, tmp_path, agent_environ, tmp_path / "agent.log")
        self.proxy = ShellRun(proxy, tmp_path, proxy_env, tmp_path / "caddy.log")

    def wait_ready(self, tls: ssl.SSLContext) -> None:
        def ready() -> bool:
            through = answers(self.url + "/health", transport=LoopbackTransport(verify=tls))
            return answers(self.agent_url + "/ready") and through

        wait_until(ready, [self.agent, self.proxy])

    def stop(self) -> None:
        self.proxy.stop()
        self.agent.stop()


@pytest.fixture
def one_agent(tmp_path: Path) -> Iterator[tuple[OneAgent, ssl.SSLContext]]:
    cert, key = make_certificate(tmp_path, PUBLIC_HOST)
    tls = ssl.create_default_context(cafile=str(cert))
    site = OneAgent(tmp_path, cert, key)
    try:
        site.wait_ready(tls)
        yield site, tls
    finally:
        site.stop()


async def play_verified_call(site: OneAgent, tls: ssl.SSLContext) -> None:
    """One call as SignalWire plays it: every request signed, to the public URL, through Caddy."""
    transport = AsyncLoopbackTransport(verify=tls)
    async with httpx.AsyncClient(transport=transport, timeout=20) as http:
        call = PlatformCall(
            http=http, base_url=site.url, auth=AUTH, caller=CALLER, signing_key=SIGNING_KEY
        )
        await call.start()
        assert call.functions.keys() >= {"send_mfa", "verify_mfa"}
        for spec in call.functions.values():
            assert spec["web_hook_url"].startswith(f"https://{AUTH[0]}:"), spec["web_hook_url"]
            assert f"@{PUBLIC_HOST}:{site.https_port}/" in spec["web_hook_url"]
        before = len(SANDBOX_CODE.findall(site.agent.log_text()))
        sent = await call.invoke("send_mfa")
        assert sent.status_code == 200, sent.body
        code = await next_code(site.agent.log_text, before)
        verified = await call.invoke("verify_mfa", token=" ".join(code))
        assert verified.status_code == 200, verified.body
        assert call.global_data["mfa_verified"] is True, verified.body


def test_a_call_through_caddy_names_the_public_url_and_verifies(one_agent):
    site, tls = one_agent
    asyncio.run(play_verified_call(site, tls))
    log = site.agent.log_text()
    assert "Traceback" not in log
    assert AUTH[1] not in log
    # Only loopback: the agent is not reachable on another address of this host.
    assert not answers(site.agent_url.replace("127.0.0.1", "127.0.0.2") + "/health")
