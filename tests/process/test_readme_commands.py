"""Every ``swaig-test`` command the README shows runs, as written, from a fresh clone after
``make run`` (the venv is not activated: the README calls ``.venv/bin/swaig-test``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.agent_env import write_config

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
VENV_BIN = ".venv/bin/"
COMMANDS = re.findall(r"^\$ (.*swaig-test .*)$", README, flags=re.MULTILINE)
EXPORTS = re.findall(r"^\$ (export .*)$", README, flags=re.MULTILINE)


def test_the_readme_shows_swaig_test_and_its_environment():
    assert len(COMMANDS) >= 4
    assert EXPORTS == [
        "export MFA_PROVIDER=sandbox SWML_BASIC_AUTH_USER=demo SWML_BASIC_AUTH_PASSWORD=demo-pass"
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_swaig_test_command_uses_the_venv(command):
    assert command.startswith(VENV_BIN + "swaig-test "), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_swaig_test_command_runs(tmp_path, command):
    # The venv running the tests stands for the clone's .venv.
    venv_bin = str(Path(sys.executable).parent) + "/"
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_")) and k != "REDIS_URL"
    }
    environ["MFA_AGENT_CONFIG"] = str(write_config(tmp_path))
    script = f"{EXPORTS[0]}\n{venv_bin}{command.removeprefix(VENV_BIN)}"
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if "--list-tools" in command:
        assert "send_mfa" in result.stdout and "verify_mfa" in result.stdout
    elif "--dump-swml" in command:
        assert result.stdout.startswith('{"version": "1.0.0"')
    else:
        assert "RESULT:" in result.stdout
