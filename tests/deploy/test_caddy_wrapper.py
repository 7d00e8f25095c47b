"""``deploy/caddy-run``: Caddy on ``deploy/Caddyfile``, stopped first when a variable the
Caddyfile cannot default is unset. Caddy itself names neither: without
``MFA_PUBLIC_HOST`` it says "server block without any key is global configuration", without
``MFA_TLS`` "Wrong argument count or unexpected line ending after 'tls'".
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.caddy import (
    LOOPBACK,
    REPO,
    distinct_free_ports,
    make_certificate,
    proxy_environ,
    require_caddy_and_openssl,
)

pytestmark = [pytest.mark.slow]
WRAPPER = REPO / "deploy" / "caddy-run"


@pytest.fixture(autouse=True)
def _proxy_installed() -> None:
    require_caddy_and_openssl()


def run_wrapper(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER)],
        env=proxy_environ(tmp_path) | env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MFA_TLS": "ops@example.com"},
            "caddy-run: MFA_PUBLIC_HOST is not set: set it to the public host name SignalWire "
            "reaches, e.g. MFA_PUBLIC_HOST=agent.example.com",
        ),
        (
            {"MFA_PUBLIC_HOST": "agent.example.com", "MFA_TLS": ""},
            "caddy-run: MFA_TLS is not set: set it to the ACME account e-mail "
            "(MFA_TLS=ops@example.com) or to your certificate and key",
        ),
        (
            {"MFA_PUBLIC_HOST": "agent.example.com", "MFA_TLS": "ops.example.com"},
            'caddy-run: MFA_TLS=ops.example.com is neither an e-mail nor "<cert.pem> <key.pem>"',
        ),
    ],
    ids=["MFA_PUBLIC_HOST unset", "MFA_TLS empty", "MFA_TLS neither form"],
)
def test_a_missing_variable_is_named_before_caddy_starts(tmp_path, env, line):
    result = run_wrapper(tmp_path, **env)
    assert result.returncode == 2
    assert result.stdout == ""
    [said] = result.stderr.splitlines()
    assert said.startswith(line)


def test_with_both_set_it_runs_caddy_on_the_caddyfile(tmp_path):
    cert, key = make_certificate(tmp_path)
    https_port, http_port = distinct_free_ports(2)
    env = proxy_environ(tmp_path) | {
        "MFA_PUBLIC_HOST": f"{LOOPBACK}:{https_port}",
        "MFA_TLS": f"{cert} {key}",
        "CADDY_HTTPS_PORT": str(https_port),
        "CADDY_HTTP_PORT": str(http_port),
        "MFA_AGENT_UPSTREAMS": f"{LOOPBACK}:{distinct_free_ports(1)[0]}",  # nothing there
    }
    caddy = subprocess.Popen(
        [str(WRAPPER)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert caddy.poll() is None, caddy.communicate()[1][-2000:]
            try:
                # The Caddyfile's own refusal: answered by Caddy, no agent needed.
                answer = httpx.post(
                    f"https://{LOOPBACK}:{https_port}/",
                    content=b"x" * 1_000_000,
                    verify=str(cert),
                    timeout=10,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "Caddy did not serve https"
                time.sleep(0.1)
        assert answer.status_code == 413
    finally:
        caddy.terminate()
        caddy.communicate(timeout=20)
