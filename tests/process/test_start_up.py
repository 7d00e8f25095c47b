"""Start-up fails closed: ``python -m agent`` with a wrong environment ends with one line on
stderr naming what to fix, a non-zero exit, nothing on stdout and no traceback.

A wrong configuration that started anyway would be worse than one that stops: a production
number answering on the sandbox never texts anyone and shows codes in the log.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.fake_signalwire import API_TOKEN, PROJECT_ID
from testkit.servers import free_port
from tests.support.agent_process import AgentProcess, sandbox_env

ERROR = "mfa-agent: configuration error: "
ACCOUNT = {
    "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
    "SIGNALWIRE_API_TOKEN": API_TOKEN,
    "SIGNALWIRE_SPACE": "example.signalwire.com",
    "MFA_FROM_NUMBER": "+15559870000",
}
PUBLIC_URL = {
    "SWML_PROXY_URL_BASE": "https://agent.example.com",
    "SIGNALWIRE_SIGNING_KEY": "PSKsigning0123456789abcdef",
}
INCOMPLETE = (
    " (an account needs all of SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE, "
    "MFA_FROM_NUMBER; for the sandbox set none of them)"
)


def start_up(
    tmp_path: Path, *args: str, config: dict[str, Any] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m agent`` with the provider left to the account variables in ``env``.

    On a free loopback port: a configuration that wrongly starts would serve until the
    timeout, and the test fails there rather than on someone's port 3000."""
    environ = sandbox_env(tmp_path, config, HOST="127.0.0.1", PORT=str(free_port()))
    del environ["MFA_PROVIDER"]
    environ.update(env)
    try:
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env={k: v for k, v in environ.items() if v is not None},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the agent started instead of stopping")


def assert_stops_with(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [line]


@pytest.mark.parametrize("missing", list(ACCOUNT))
def test_partial_account_names_the_missing_variable(tmp_path, missing):
    env = {**ACCOUNT, **PUBLIC_URL}
    del env[missing]
    result = start_up(tmp_path, **env)
    assert_stops_with(
        result, f"{ERROR}incomplete SignalWire account: it needs {missing}{INCOMPLETE}"
    )


def test_partial_account_names_each_missing_variable(tmp_path):
    result = start_up(
        tmp_path, SIGNALWIRE_PROJECT_ID=PROJECT_ID, MFA_FROM_NUMBER="+15559870000", **PUBLIC_URL
    )
    assert_stops_with(
        result,
        f"{ERROR}incomplete SignalWire account: it needs SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE"
        + INCOMPLETE,
    )


def test_empty_api_token_is_not_the_sandbox(tmp_path):
    result = start_up(tmp_path, **{**ACCOUNT, **PUBLIC_URL, "SIGNALWIRE_API_TOKEN": ""})
    assert_stops_with(
        result,
        f"{ERROR}incomplete SignalWire account: it needs SIGNALWIRE_API_TOKEN (set but empty)"
        + INCOMPLETE,
    )


def test_plain_http_space_off_this_machine_is_refused(tmp_path):
    result = start_up(
        tmp_path, **{**ACCOUNT, **PUBLIC_URL, "SIGNALWIRE_SPACE": "http://example.signalwire.com"}
    )
    assert_stops_with(
        result,
        f"{ERROR}SIGNALWIRE_SPACE: http:// is only for a test server on this machine "
        "(127.0.0.1, ::1, localhost): the API token would cross the network in clear; use your "
        "space's name or URL: example, example.signalwire.com or https://example.signalwire.com "
        "(http://127.0.0.1:PORT only for a test server on this machine)",
    )
    assert API_TOKEN not in result.stderr


def test_space_with_a_path_is_refused(tmp_path):
    space = "https://example.signalwire.com/api/relay/rest"
    result = start_up(tmp_path, **{**ACCOUNT, **PUBLIC_URL, "SIGNALWIRE_SPACE": space})
    assert_stops_with(
        result,
        f"{ERROR}SIGNALWIRE_SPACE: must be your space's name or URL: example, "
        "example.signalwire.com or https://example.signalwire.com (http://127.0.0.1:PORT only "
        "for a test server on this machine)",
    )


def test_short_password_with_an_account_is_refused(tmp_path):
    result = start_up(tmp_path, **ACCOUNT, **PUBLIC_URL, SWML_BASIC_AUTH_PASSWORD="Qz")
    assert_stops_with(
        result,
        f"{ERROR}SWML_BASIC_AUTH_PASSWORD must be at least 16 characters with a SignalWire "
        "account (it guards webhooks that text real phones): use a long random string, "
        "such as the output of openssl rand -hex 16",
    )


def test_account_without_a_public_url_is_refused(tmp_path):
    result = start_up(
        tmp_path,
        **ACCOUNT,
        SIGNALWIRE_SIGNING_KEY=PUBLIC_URL["SIGNALWIRE_SIGNING_KEY"],
        SWML_PROXY_URL_BASE="",
        MFA_TRUSTED_PROXIES="",
    )
    assert_stops_with(
        result,
        f"{ERROR}SWML_PROXY_URL_BASE is required with a SignalWire account: the public https "
        "URL SignalWire reaches (e.g. https://agent.example.com), or name your reverse proxy "
        "in MFA_TRUSTED_PROXIES to take the host from it",
    )


def test_sandbox_beside_an_account_stops_start_up(tmp_path):
    result = start_up(tmp_path, **ACCOUNT, **PUBLIC_URL, MFA_PROVIDER="sandbox")
    assert_stops_with(
        result,
        f"{ERROR}MFA_PROVIDER=sandbox with SignalWire account variables set "
        "(SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE, MFA_FROM_NUMBER): codes "
        "would go to the log, never to the caller's phone. Unset MFA_PROVIDER to use the account, "
        "unset those variables for the sandbox, or set MFA_SANDBOX_WITH_ACCOUNT=1 to run the "
        "sandbox beside them on purpose",
    )


def test_an_account_without_the_signing_key_stops_start_up(tmp_path):
    result = start_up(tmp_path, **ACCOUNT, SWML_PROXY_URL_BASE="https://agent.example.com")
    assert_stops_with(
        result,
        f"{ERROR}SIGNALWIRE_SIGNING_KEY is required with a SignalWire account: SignalWire signs "
        "every webhook, and without the key anyone holding the basic-auth pair could post a "
        "whole fabricated call. Copy the Signing Key from your space's API page "
        "(Dashboard > API > Signing Key)",
    )


def test_bad_yaml_value_names_the_key(tmp_path):
    result = start_up(tmp_path, config={"code": {"max_attempts": 0}})
    config = tmp_path / "config.yaml"
    assert_stops_with(
        result,
        f"{ERROR}{config}: code.max_attempts: Input should be greater than or equal to 1",
    )


@pytest.mark.parametrize(
    ("yaml_text", "fix"),
    [
        ("code:\n  valid_for: 10m\n", "code.valid_for: a number of seconds, e.g. 600 for 10m"),
        (
            "code:\n  max_attemps: 5\n",
            "code.max_attemps: not a setting here; did you mean max_attempts?",
        ),
        (
            "code:\n  valid_for: 600\n   max_attempts: 3\n",
            "not valid YAML at line 3, column 16: mapping values are not allowed here; look "
            "at that line's indentation (spaces, the same for keys of one section) and for a "
            "':' or quote out of place",
        ),
    ],
    ids=["a duration with a unit", "a misspelt key", "a bad indent"],
)
def test_a_yaml_mistake_stops_start_up_with_its_fix(tmp_path, yaml_text, fix):
    """The line reads as what to write: the file, the key's path, then the fix (before:
    pydantic's "unable to parse string as an integer", "Extra inputs are not permitted",
    or "not valid YAML at line 3" with nothing on what is wrong there)."""
    config = tmp_path / "mistaken.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    result = start_up(tmp_path, MFA_AGENT_CONFIG=str(config))
    assert_stops_with(result, f"{ERROR}{config}: {fix}")


def test_port_in_use_names_port_before_saying_anything_else(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # No password: the generated-credentials line must not come first either.
        result = start_up(tmp_path, PORT=str(port), SWML_BASIC_AUTH_PASSWORD="")
    assert_stops_with(
        result, f"{ERROR}PORT {port} is already in use (HOST 127.0.0.1); set another PORT"
    )


@pytest.mark.parametrize("flag", ["--help", "-h", "help", "serve --help"])
def test_help_prints_usage_and_serves_nothing(tmp_path, flag):
    result = start_up(tmp_path, *flag.split())
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m agent [serve]")
    for word in ("call", "SWML_PROXY_URL_BASE", "SIGNALWIRE_API_TOKEN", "MFA_AGENT_CONFIG"):
        assert word in result.stdout
    assert result.stderr == ""


def test_unknown_argument_is_a_usage_error(tmp_path):
    result = start_up(tmp_path, "--port", "80")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("python -m agent: unknown argument '--port'\n\nusage:")


def test_weak_code_policy_starts_with_a_warning_naming_key_and_rule(tmp_path):
    agent = AgentProcess(tmp_path, {"code": {"token_length": 4, "valid_for": 3600}}, capture=True)
    try:
        lines: list[str] = []
        while len([line for line in lines if "weak_code_policy" in line]) < 2:
            line = agent.process.stdout.readline()
            assert line, "the agent ended before warning"
            lines.append(line)
    finally:
        agent.stop()
    first, second = [line for line in lines if "weak_code_policy" in line]
    assert json.loads(first) | {"ts": None} == {
        "ts": None,
        "level": "warning",
        "logger": "mfa.agent",
        "msg": "weak_code_policy",
        "key": "code.token_length",
        "rule": "4 digits is fewer than the 6 NIST SP 800-63B requires for an out-of-band code",
    }
    assert json.loads(second)["key"] == "code.valid_for"
    assert "NIST SP 800-63B" in json.loads(second)["rule"]


def test_stdout_stays_empty_and_every_log_line_is_json_on_stderr(tmp_path):
    """No SDK banner claiming a "provided" password for a generated one; no mixed formats."""
    port = free_port()
    environ = sandbox_env(
        tmp_path,
        HOST="127.0.0.1",
        PORT=str(port),
        SWML_BASIC_AUTH_PASSWORD="",
        MFA_DASHBOARD_PASSWORD="",
        SWML_PROXY_URL_BASE=f"http://127.0.0.1:{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "agent"],
        env=environ,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
    assert out == ""
    entries = [json.loads(line) for line in err.splitlines()]
    # One set of keys on every line: ours, the SDK's, uvicorn's, the generated credentials.
    for entry in entries:
        assert list(entry)[:4] == ["ts", "level", "logger", "msg"], entry
        assert not {"event", "timestamp", "message"} & set(entry), entry
    # The SDK's construction-time warning gives way to the agent's own, said once.
    assert not any(e["msg"] == "webhook_signature_validation_disabled" for e in entries)
    # Nor does the SDK tell the operator to remove SWML_PROXY_URL_BASE, which the guide sets.
    assert not any("SWML_PROXY_URL_BASE" in json.dumps(e) for e in entries), entries
    (unsigned,) = [e for e in entries if e["msg"] == "unsigned_webhooks_accepted"]
    assert unsigned["logger"] == "mfa.agent" and unsigned["level"] == "warning"
    assert any(e["msg"] == "generated_credentials" for e in entries)
    (board,) = [e for e in entries if e["msg"] == "generated_dashboard_credentials"]
    assert board["user"] == "admin" and len(board["password"]) >= 16


def test_simulator_says_401_means_credentials(tmp_path):
    agent = AgentProcess(tmp_path)
    try:
        agent.wait_ready("/health")
        result = subprocess.run(
            [
                *(sys.executable, "-m", "agent", "call", "--url", agent.url),
                *("--user", "operator", "--password", "not-the-password", "--say", "123456"),
            ],
            env=sandbox_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        agent.stop()
    assert result.returncode == 2
    assert (
        result.stderr == "call: 401: the agent refused the credentials: check --user/--password "
        f"(SWML_BASIC_AUTH_*) (agent at {agent.url})\n"
    )


def test_a_redis_url_with_a_bad_port_names_the_variable(tmp_path):
    """It ended in a ValueError traceback from the Redis client."""
    result = start_up(tmp_path, REDIS_URL="redis://localhost:notaport/0")
    assert_stops_with(
        result,
        f"{ERROR}REDIS_URL: is not a valid URL; use one such as redis://127.0.0.1:6379/0",
    )


def test_a_sandbox_database_that_cannot_be_opened_names_the_key(tmp_path):
    """It ended in a FileNotFoundError traceback from SQLite's directory creation."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    path = blocker / "sandbox.sqlite3"
    result = start_up(tmp_path, config={"sandbox_db_path": str(path)})
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{ERROR}sandbox_db_path {path}: cannot open the sandbox's database")
