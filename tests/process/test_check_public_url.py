"""``python -m agent check`` and a wrong public URL, as a process, against real servers.

Before the agents start, nothing answering at ``SWML_PROXY_URL_BASE`` is a warning. After
(``check --running``, or this agent answering ``/health`` on its own HOST:PORT) it is a
failure: the old warning and exit 0 said "ready for a call" while SignalWire would reach
nothing. A TLS handshake that fails and a proxy's 5xx each get their own line with the fix,
the proxy a real Caddy: a site whose upstream is down (502), and an https site without a
certificate for the name asked (a TLS alert).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.app import build_agent
from agent.config.settings import load_settings
from testkit.agent_env import agent_env, write_config
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread, free_port
from tests.support.caddy import (
    distinct_free_ports,
    make_certificate,
    proxy_environ,
    require_caddy_and_openssl,
    wait_until,
)
from tests.support.defaults import AUTH, SWAIG_SECRET
from tests.support.process_group import ShellRun


@pytest.fixture
def space() -> Iterator[str]:
    with ServerThread(FakeSignalWire().app()) as server:
        yield server.url


def environment(tmp_path: Path, space: str, public: str, agent_port: int) -> dict[str, str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_", "REDIS_"))
    }
    return agent_env(
        write_config(tmp_path),
        auth=AUTH,
        swaig_secret=SWAIG_SECRET,
        signalwire_url=space,
        base=inherited,
        SWML_PROXY_URL_BASE=public,
        MFA_TRUSTED_PROXIES="",
        HOST="127.0.0.1",
        PORT=str(agent_port),
    )


def check(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """The process, and its public URL line and last line."""
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if line.split(None, 1)[1].startswith("public URL:")]
    return result.returncode, line, lines[-1]


@pytest.fixture
def agent_at():
    servers: list[ServerThread] = []

    def serve(env: dict[str, str]) -> None:
        app = build_agent(load_settings(env)).get_app()
        servers.append(ServerThread(app, port=int(env["PORT"])).__enter__())

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


def test_nothing_at_the_public_url_fails_once_the_agent_runs(tmp_path, space, agent_at):
    public = f"http://127.0.0.1:{free_port()}"
    env = environment(tmp_path, space, public, free_port())
    # Before start: a warning, as before.
    status, line, last = check(env)
    assert status == 0 and line.startswith(f"warn  public URL: nothing answers at {public} yet")
    # "--running": the operator says the agents are up.
    status, line, last = check(env, "--running")
    assert status == 1, line
    assert line.startswith(
        f"FAIL  public URL: nothing answers at {public} (ConnectError), and the agent is "
        "started. Fix: start the tunnel or reverse proxy in front of the agent, or set "
        "SWML_PROXY_URL_BASE to the address it publishes"
    ), line
    assert "ready for a call" not in last
    # Without --running, the agent answering on its own HOST:PORT says as much.
    agent_at(env)
    status, line, _ = check(env)
    assert status == 1, line
    assert line.startswith(
        f"FAIL  public URL: nothing answers at {public} (ConnectError), and the agent answers "
        f"on 127.0.0.1:{env['PORT']}. Fix: "
    ), line


def test_https_in_front_of_a_plain_http_agent_is_a_tls_line(tmp_path, space, agent_at):
    port = free_port()
    env = environment(tmp_path, space, f"https://127.0.0.1:{port}", port)
    agent_at(env)
    status, line, _ = check(env)
    assert status == 1, line
    assert line == (
        f"FAIL  public URL: the TLS handshake with 127.0.0.1:{port} failed "
        "(WRONG_VERSION_NUMBER). Fix: the server there speaks plain HTTP: put a TLS proxy in "
        "front of it (SignalWire needs https), or write http:// in SWML_PROXY_URL_BASE for a "
        "test on this machine"
    )


def test_a_caddy_without_the_agent_and_without_the_name(tmp_path, space, agent_at):
    """A real Caddy: an http site whose upstream is not started answers 502; an https site
    with a certificate for another name ends the handshake with an alert."""
    require_caddy_and_openssl()
    plain, tls, upstream = distinct_free_ports(3)
    cert, key = make_certificate(tmp_path, "agent.example.com")
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "{\n  admin off\n  auto_https disable_redirects\n  skip_install_trust\n}\n"
        f"http://127.0.0.1:{plain} {{\n  reverse_proxy 127.0.0.1:{upstream}\n}}\n"
        f"https://agent.example.com:{tls} {{\n  tls {cert} {key}\n"
        f"  reverse_proxy 127.0.0.1:{upstream}\n}}\n"
    )
    run = ShellRun(
        f"exec caddy run --config {caddyfile} --adapter caddyfile",
        tmp_path,
        proxy_environ(tmp_path),
        tmp_path / "caddy.log",
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{plain}/health"), [run])
        status, line, _ = check(environment(tmp_path, space, f"http://127.0.0.1:{plain}", upstream))
        assert status == 1, line
        assert line == (
            f"FAIL  public URL: http://127.0.0.1:{plain}/health answered HTTP 502: the proxy or "
            "tunnel there answers, but cannot reach the agent behind it. Fix: start the agent, "
            f"or point the proxy's upstream at the agent's HOST:PORT (127.0.0.1:{upstream})"
        )
        status, line, _ = check(environment(tmp_path, space, f"https://127.0.0.1:{tls}", upstream))
        assert status == 1, line
        assert line.startswith(
            f"FAIL  public URL: the TLS handshake with 127.0.0.1:{tls} failed (TLSV1_ALERT_"
        ), line
        assert line.endswith(
            "Fix: the server there has no certificate for that name: give the proxy a site "
            "(and a certificate) for 127.0.0.1, or set SWML_PROXY_URL_BASE to the name it serves"
        ), line
    finally:
        run.stop()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_check_help_names_its_options_and_the_test_delivery(tmp_path):
    """``check --help`` (before: "no options; got '--help'", exit 2) prints its usage and
    what a receiver gets from it; an unknown option is a usage line and exit 2, and no
    check runs for either."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    helped = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    assert "--running" in helped.stdout and '{"outcome": "test"}' in helped.stdout
    assert "configuration" not in helped.stdout.split("\n", 1)[0]  # usage, not a check line
    wrong = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--runing"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2
    assert wrong.stdout.strip() == (
        "usage: python -m agent check [--running] [--help] (got '--runing')"
    )
