"""The operator's guide's "Try it on one machine" page, run block by block as a newcomer would.

Each block runs in bash as written from a scratch directory, except for the ports (the
shown 8787 and 3000 become free loopback ones) and ``.venv/bin/`` (the venv running the
tests). The fake space runs as the page starts it, ``python -m testkit.fake_space``, and
the "caller" types the code the fake space printed, as the page says. Every ``check --running``
line must be ``ok``, the call must end verified, and ``/outcomes`` must name the provider.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from testkit.servers import free_port
from tests.support.process_group import ShellRun, wait_for_health
from tests.support.shown import ShownBlock, shown_block, venv_bin

REPO = Path(__file__).resolve().parents[2]
CODE_LINE = re.compile(r"^text to \+\d+ \(sms\): .* (\d{6})$", re.MULTILINE)


def script(block: ShownBlock, ports: dict[str, str]) -> str:
    """The block, with this run's ports in place of the shown ones it names."""
    body = block.body
    for shown, mine in ports.items():
        body = body.replace(shown, mine)
    return re.sub(r"(^|; )\.venv/bin/", rf"\g<1>{venv_bin()}", body, flags=re.MULTILINE)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: nothing of the agent's exported; the repository importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_", "REDIS_"))
        and k not in ("HOST", "PORT")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def test_the_one_machine_page_runs_as_written(tmp_path):
    space_port, agent_port = str(free_port()), str(free_port())
    ports = {"8787": space_port, "3000": agent_port}
    env = clean_env(tmp_path)
    # The page runs from the repository's root; here a scratch directory stands for it, the
    # repository on PYTHONPATH (python -m testkit.fake_space imports from there).
    # The space listens on its default port, 8787, as shown; here on a free one.
    shown_space = script(shown_block("one-machine-space"), ports)
    assert shown_space.strip().endswith("--env-file fake-space.env"), shown_space
    space_script = f"{shown_space.strip()} --port {space_port}"
    space = ShellRun(space_script, tmp_path, env, tmp_path / "space.log")
    agent = None
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops it." not in space.log_text():
            space.assert_running()
            assert time.monotonic() < deadline, space.log_text()
            time.sleep(0.1)
        space_out = space.log_text()
        assert f"texted codes: http://127.0.0.1:{space_port}/" in space_out, space_out
        made = subprocess.run(
            ["bash", "-c", script(shown_block("one-machine-env"), ports)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        agent_script = script(shown_block("one-machine-agent"), ports)
        agent = ShellRun(agent_script, tmp_path, env, tmp_path / "agent.log")
        wait_for_health(f"http://127.0.0.1:{agent_port}", agent.process, agent.log_text)
        check = subprocess.run(
            ["bash", "-c", script(shown_block("one-machine-check"), ports)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        *lines, summary = check.stdout.splitlines()
        assert all(line.startswith("ok ") for line in lines), check.stdout
        assert summary.endswith("0 failed, 0 warnings; ready for a call"), summary
        caller = subprocess.Popen(
            ["bash", "-c", script(shown_block("one-machine-call"), ports)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not (codes := CODE_LINE.findall(space.log_text())):
            assert caller.poll() is None and time.monotonic() < deadline, space.log_text()
            time.sleep(0.1)
        # The newcomer reads the code the fake space printed, and types it.
        transcript, _ = caller.communicate(codes[-1] + "\n", timeout=60)
        assert caller.returncode == 0, transcript
        assert "global_data.mfa_verified = true" in transcript.splitlines(), transcript
        page = httpx.get(f"http://127.0.0.1:{space_port}/", timeout=10).text
        assert f"<b>{codes[-1]}</b>" in page
        dashboard = re.search(
            r"^MFA_DASHBOARD_PASSWORD='(\w+)'$", (tmp_path / "mfa.env").read_text(), re.M
        )
        assert dashboard is not None
        history = httpx.get(
            f"http://127.0.0.1:{agent_port}/outcomes", auth=("admin", dashboard[1]), timeout=10
        ).json()["outcomes"]
        assert [(row["outcome"], row["provider"]) for row in history] == [
            ("verified", "signalwire")
        ]
        started = [json.loads(x) for x in agent.log_text().splitlines() if x.startswith("{")]
        assert any(x["msg"] == "agent_started" and x["provider"] == "signalwire" for x in started)
    finally:
        if agent is not None:
            agent.stop()
        space.stop()
