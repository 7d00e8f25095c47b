"""``python -m agent.healthcheck``, the image's HEALTHCHECK, against a served agent."""

from __future__ import annotations

import subprocess
import sys

from testkit.servers import free_port


def healthcheck(port: str) -> subprocess.CompletedProcess[str]:
    environ = {"PORT": port, "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "agent.healthcheck"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_exit_0_when_the_agent_on_port_answers_health(make_settings, serve_agent):
    url = serve_agent(make_settings())
    # A proxy set for the agent's outbound calls is not used: the check asks 127.0.0.1.
    assert healthcheck(url.rsplit(":", 1)[1]).returncode == 0


def test_exit_1_when_nothing_answers_and_2_for_a_bad_port():
    assert healthcheck(str(free_port())).returncode == 1
    bad = healthcheck("not-a-port")
    assert bad.returncode == 2
    assert "PORT" in bad.stderr
