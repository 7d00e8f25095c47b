"""The README's first commands, ``make run`` and ``make test``, and its ``make call``, run the
way a reader runs them: ``make TARGET`` in the repository root.

make runs the clone's own venv, not the one running these tests: the Makefile's ``VENV`` is
``.venv``, relative to the directory make runs in, so ``make run`` starts
``REPO/.venv/bin/python -m agent`` (the line make echoes, checked below). In CI that is the
same venv: ``.ci/run`` makes ``.venv`` in the clone before ``make test``.

These tests never install anything. When ``.venv/.installed`` is older than pyproject.toml
(an edit since the last install), make would first rerun pip, which needs a package index;
then make is told to take the stamp as current (``-o .venv/.installed``): the target's own
recipe, the command the README means, runs unchanged.

The environment is a reader's without an account: no ``SIGNALWIRE_*``, ``MFA_*``,
``SWML_*``, ``REDIS_URL`` (so the sandbox), nor make's own variables from an enclosing make
(``VENV`` would move the venv). Only ``MFA_AGENT_CONFIG`` is set, to a copy of
``agent/config.yaml`` whose sandbox database is in the test's directory, not in ``var/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from testkit.servers import free_port
from tests.support.process_group import stop_group, wait_for_health
from tests.support.shown import REPO, shown_block

STAMP = ".venv/.installed"
INHERITED_NOT = ("SIGNALWIRE_", "MFA_", "SWML_")
MAKE_VARIABLES = ("VENV", "PY", "STAMP", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
PROMPT = "caller says the code (empty to hang up): "


@pytest.fixture(autouse=True)
def _the_clone_has_its_venv() -> None:
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the clone: make would create it with pip (make test does)")


def reader_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a reader with no account, on a sandbox database of this test's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(INHERITED_NOT) and k != "REDIS_URL" and k not in MAKE_VARIABLES
    }
    config = yaml.safe_load((REPO / "agent" / "config.yaml").read_text(encoding="utf-8"))
    config["sandbox_db_path"] = str(tmp_path / "sandbox.sqlite3")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env["MFA_AGENT_CONFIG"] = str(tmp_path / "config.yaml")
    env.update(extra)
    return env


def make_argv(command: str, env: dict[str, str]) -> list[str]:
    """``command`` (``make TARGET``) as argv, told to keep a stale install stamp (see above)."""
    argv = shlex.split(command)
    assert argv[0] == "make", command
    stale = subprocess.run(["make", "-q", STAMP], cwd=REPO, env=env, capture_output=True)
    if stale.returncode != 0:
        argv[1:1] = ["-o", STAMP]
    return argv


def json_lines(text: str) -> list[dict[str, Any]]:
    """The log's JSON lines, make's own lines (``make: *** ... Terminated``) aside."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_make_run_serves_the_sandbox_with_generated_credentials(tmp_path):
    """``make run`` with PORT and HOST set: the sandbox answers ``/health``, the generated
    pair is printed once on stderr as a JSON line, and that pair opens the SWML route."""
    command = shown_block("two-commands").commands[0]
    port = free_port()
    env = reader_env(tmp_path, HOST="127.0.0.1", PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    with (
        open(tmp_path / "stdout", "w") as out,
        open(tmp_path / "stderr", "w") as err,
    ):
        process = subprocess.Popen(
            make_argv(command, env),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: make and the python it runs
        )
    try:
        wait_for_health(url, process, (tmp_path / "stderr").read_text)
        logged = json_lines((tmp_path / "stderr").read_text())
        (generated,) = [line for line in logged if line["msg"] == "generated_credentials"]
        swml = httpx.post(
            url + "/",
            json={"call": {"call_id": "make-run", "from": "+15551230001"}},
            auth=(generated["user"], generated["password"]),
            timeout=10,
        )
    finally:
        stop_group(process)
    assert generated["user"] == "mfa" and len(generated["password"]) >= 16
    assert swml.status_code == 200 and swml.json()["version"] == "1.0.0", swml.text
    messages = {line["msg"]: line for line in json_lines((tmp_path / "stderr").read_text())}
    assert messages["agent_started"]["provider"] == "sandbox"
    assert "sandbox_provider" in messages
    # stdout has make's echo of the recipe and nothing from the agent: the clone's venv ran.
    assert (tmp_path / "stdout").read_text().splitlines() == [".venv/bin/python -m agent"]


def test_make_test_is_the_command_ci_runs():
    """``make test`` runs the whole suite, this file included: running it from here would
    recurse. What runs it is CI: ``.ci/run`` has the README's command as one of its lines
    (after making the venv), and ``make -n`` shows that the target is the venv's pytest."""
    command = shown_block("two-commands").commands[1]
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in [line.strip() for line in ci_lines], f"`{command}` is not a line of .ci/run"
    dry = subprocess.run(
        [*shlex.split(command)[:1], "-n", *shlex.split(command)[1:]],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == ".venv/bin/python -m pytest -q", dry.stdout


def read_until(stream: IO[str], pattern: re.Pattern[str]) -> tuple[re.Match[str], str]:
    """Lines of ``stream`` up to the first that matches: the match and all that was read."""
    seen = ""
    for line in iter(stream.readline, ""):
        seen += line
        if found := pattern.search(line):
            return found, seen
    raise AssertionError(f"no line matching {pattern.pattern!r} in:\n{seen}")


def test_make_call_plays_a_call_where_the_keyboard_says_the_code(tmp_path):
    """``make call`` with a pipe for the keyboard: the sandbox text shows the code, the
    "caller" types it, and the call ends verified (exit 0)."""
    (command,) = shown_block("make-call").commands
    env = reader_env(tmp_path)
    with open(tmp_path / "stderr", "w") as err:
        process = subprocess.Popen(
            make_argv(command, env),
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    watchdog = threading.Timer(90, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert process.stdin is not None and process.stdout is not None
        found, shown = read_until(process.stdout, re.compile(r"\] .*Your code: (\d{6})$"))
        process.stdin.write(found[1] + "\n")
        process.stdin.close()
        rest = process.stdout.read()
        status = process.wait(timeout=30)
    finally:
        watchdog.cancel()
        stop_group(process)
    transcript = shown + rest
    assert rest.startswith(PROMPT), transcript
    assert f'> verify_mfa("token": "{found[1]}")' in transcript
    assert "global_data.mfa_verified = true" in rest.splitlines(), transcript
    assert status == 0, transcript + (tmp_path / "stderr").read_text()
