"""The product as an operator runs it: ``python -m agent`` and ``swaig-test`` as processes."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from agent.ops.platform import PlatformCall
from agent.ops.simulator import first_event
from tests.support.agent_process import AgentProcess, sandbox_env
from tests.support.defaults import AUTH, CALLER, DASHBOARD

REPO = Path(__file__).resolve().parents[2]
AGENT_FILE = REPO / "agent" / "__main__.py"
SANDBOX_CODE = re.compile(r"Your code: (\d{6})")


def swaig_test(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signalwire.cli.test_swaig", str(AGENT_FILE), *args],
        env=sandbox_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_swaig_test_lists_tools(tmp_path):
    result = swaig_test(tmp_path, "--list-tools")
    assert result.returncode == 0, result.stderr
    assert "send_mfa" in result.stdout and "verify_mfa" in result.stdout


def test_swaig_test_dumps_swml(tmp_path):
    result = swaig_test(tmp_path, "--dump-swml", "--raw")
    assert result.returncode == 0, result.stderr
    swml = json.loads(result.stdout[result.stdout.index("{") :])
    verbs = swml["sections"]["main"]
    ai = next(verb["ai"] for verb in verbs if "ai" in verb)
    assert {f["function"] for f in ai["SWAIG"]["functions"]} == {"send_mfa", "verify_mfa"}
    assert ai["params"]["digit_terminators"] == "#"


def test_swaig_test_sends_then_verifies_across_processes(tmp_path):
    """Two separate runs share the sandbox's SQLite file: the second verifies the first's code.
    They share SIGNALWIRE_SWAIG_SECRET too, so the sealed meta_data of the first opens in the
    second (a restart keeps the binding key)."""
    sent = swaig_test(
        tmp_path,
        "--custom-data",
        json.dumps({"caller_id_num": CALLER, "call_id": "cli-call"}),
        "--exec",
        "send_mfa",
    )
    assert sent.returncode == 0, sent.stderr
    code = SANDBOX_CODE.search(sent.stdout + sent.stderr).group(1)
    after = sent.stdout[sent.stdout.index("Actions:") :]
    actions, _ = json.JSONDecoder().raw_decode(after[after.index("{") :])
    meta_data = actions["set_meta_data"]

    verified = swaig_test(
        tmp_path,
        "--custom-data",
        json.dumps(
            {
                "caller_id_num": CALLER,
                "call_id": "cli-call",
                "meta_data": meta_data,
            }
        ),
        "--exec",
        "verify_mfa",
        "--token",
        " ".join(code),
    )
    assert verified.returncode == 0, verified.stderr
    assert "caller is verified" in verified.stdout
    assert '"mfa_verified": true' in verified.stdout


@pytest.mark.slow
def test_python_m_agent_serves_a_whole_call(tmp_path):
    started = time.perf_counter()
    agent = AgentProcess(tmp_path, capture=True)
    try:
        agent.wait_ready("/health")
        print(f"start to /health: {time.perf_counter() - started:.2f} s")

        async def play() -> tuple[PlatformCall, str]:
            async with httpx.AsyncClient(timeout=15) as http:
                call = PlatformCall(http=http, base_url=agent.url, auth=AUTH)
                await call.start()
                assert "was texted" in (await call.invoke("send_mfa")).response
                # The caller reads the text: the sandbox outbox is on the live stream.
                text = await first_event(
                    http, agent.url, DASHBOARD, lambda e: e.get("kind") == "sandbox_text", 10
                )
                assert text is not None, "no sandbox text on the stream"
                code = SANDBOX_CODE.search(text["body"]).group(1)
                reply = await call.invoke("verify_mfa", token=" ".join(code))
                assert "caller is verified" in reply.response
                return call, code

        call, code = asyncio.run(play())
    finally:
        output = agent.stop()
    assert agent.process.returncode in (0, -15)
    assert call.global_data["mfa_verified"] is True
    # The sandbox "text" is in the log; nothing else in the log carries the code.
    assert output.count(code) == 1
    assert "sandbox" in output and "warning" in output
    assert AUTH[1] not in output
    # Every per-call tool token this call used is redacted from the access log.
    tokens = {
        parse_qs(urlsplit(spec["web_hook_url"]).query)["__token"][0]
        for spec in call.functions.values()
    }
    assert len(tokens) == 2  # one per tool
    for token in tokens:
        assert token not in output and quote(token, safe="") not in output
    assert output.count("__token=") == output.count("__token=[redacted]") >= 2
    assert "mfa_request_id" not in call.meta_data.get("mfa_skill", {})  # single use


def test_generated_password_is_printed_once_and_works(tmp_path):
    agent = AgentProcess(tmp_path, capture=True, SWML_BASIC_AUTH_PASSWORD="")
    try:
        line = ""
        deadline = time.monotonic() + 30
        while '"generated_credentials"' not in line:
            line = agent.process.stdout.readline()
            assert line or agent.process.poll() is None
            assert time.monotonic() < deadline
        printed = json.loads(line)  # a JSON line like every other
        assert list(printed)[:4] == ["ts", "level", "logger", "msg"]
        user, password = printed["user"], printed["password"]
        agent.wait_ready("/health")
        assert httpx.get(agent.url + "/", auth=(user, password), timeout=2).status_code == 200
        assert httpx.get(agent.url + "/", auth=(user, "wrong"), timeout=2).status_code == 401
    finally:
        output = agent.stop()
    assert output.count(password) == 0  # printed once above, never again (e.g. in logs)


def test_bad_setting_stops_start_up_naming_the_key(tmp_path):
    env = sandbox_env(tmp_path)
    Path(env["MFA_AGENT_CONFIG"]).write_text("code:\n  token_length: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "code.token_length" in result.stderr
