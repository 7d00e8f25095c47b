"""Every ``swaig-test`` command docs/swaig-test.md shows runs, as written, from a fresh clone
after ``make run`` (the venv is not activated: the page calls ``.venv/bin/swaig-test``).

The page shows two blocks: ``swaig-test-send`` (the ``export`` of a sandbox environment, then
three commands) and ``swaig-test-verify`` (the verify that follows, with the send's meta data
and code, which a reader replaces with their own)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from testkit.agent_env import write_config
from tests.support.shown import shown_block, venv_bin

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = ".venv/bin/"
SHOWN = shown_block("swaig-test-send").commands + shown_block("swaig-test-verify").commands
COMMANDS = [command for command in SHOWN if "swaig-test " in command]
EXPORTS = [command for command in SHOWN if command.startswith("export ")]


def test_the_readme_shows_swaig_test_and_its_environment():
    assert len(COMMANDS) == 4
    assert [*EXPORTS, *COMMANDS] == SHOWN, "only the export and swaig-test commands"
    assert EXPORTS == [
        "export MFA_PROVIDER=sandbox SWML_BASIC_AUTH_USER=demo SWML_BASIC_AUTH_PASSWORD=demo-pass "
        "SIGNALWIRE_SWAIG_SECRET=demo-swaig-secret"
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_swaig_test_command_uses_the_venv(command):
    assert command.startswith(VENV_BIN + "swaig-test "), command


def run_readme_command(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` after the README's export, with the venv running the tests standing for
    the clone's ``.venv``: the shipped agent/config.yaml (its languages shape the tools'
    parameters) on a sandbox database of this test's own."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_")) and k != "REDIS_URL"
    }
    shipped = yaml.safe_load((REPO / "agent" / "config.yaml").read_text(encoding="utf-8"))
    shipped["sandbox_db_path"] = str(tmp_path / "sandbox.sqlite3")
    environ["MFA_AGENT_CONFIG"] = str(write_config(tmp_path, shipped))
    script = f"{EXPORTS[0]}\n{venv_bin()}{command.removeprefix(VENV_BIN)}"
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60
    )


def test_the_readme_recipe_verifies_with_your_own_meta_data_and_code(tmp_path):
    """The README's send, then its verify with this run's set_meta_data and code in place
    of the ones it shows: the recipe as a reader follows it ends verified."""
    send = next(c for c in COMMANDS if "--exec send_mfa" in c)
    verify = next(c for c in COMMANDS if "--exec verify_mfa" in c)
    sent = run_readme_command(tmp_path, send)
    code = re.search(r"Your code: (\d{6})", sent.stdout + sent.stderr).group(1)  # type: ignore[union-attr]
    actions = sent.stdout.split("Actions:", 1)[1]
    meta = json.loads(actions[: actions.index("\n}\n") + 2])["set_meta_data"]
    shown_meta = re.search(r'"meta_data": (\{.*?\})\}', verify).group(1)  # type: ignore[union-attr]
    shown_token = re.search(r'--token "([^"]+)"', verify).group(1)  # type: ignore[union-attr]
    mine = verify.replace(shown_meta, json.dumps(meta)).replace(shown_token, code)
    result = run_readme_command(tmp_path, mine)
    assert "status: verified" in result.stdout, result.stdout + result.stderr
    assert '"mfa_verified": true' in result.stdout


def test_the_list_tools_transcript_is_what_the_command_prints(tmp_path):
    """The page's ``--list-tools`` transcript, from ``Available SWAIG functions:`` on, is what
    the command prints now: a parameter the tools gain (``language``) shows on the page."""
    (list_tools, shown) = next(
        (command, lines)
        for command, lines in shown_block("swaig-test-send").transcript
        if "--list-tools" in command
    )
    printed = run_readme_command(tmp_path, list_tools).stdout.splitlines()

    def tools_part(lines: list[str]) -> list[str]:
        start = lines.index("Available SWAIG functions:")
        return [line.rstrip() for line in lines[start:] if line.strip()]

    assert tools_part(shown) == tools_part(printed)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_swaig_test_command_runs(tmp_path, command):
    result = run_readme_command(tmp_path, command)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    if "--list-tools" in command:
        assert "send_mfa" in result.stdout and "verify_mfa" in result.stdout
    elif "--dump-swml" in command:
        assert result.stdout.startswith('{"version": "1.0.0"')
    else:
        assert "RESULT:" in result.stdout
