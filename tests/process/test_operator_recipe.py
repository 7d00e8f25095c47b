"""The operator's guide's recipe and its tunnel variant, run with bash as a reader pastes them.

Only what a reader fills in is replaced: the recipe's ``…`` placeholders and
``example.signalwire.com`` by the fake space's credentials and loopback URL, the public URL
``https://agent.example.com`` and the shown ``PORT=3000`` by the loopback address and free
port the agent listens on (the recipe exports HOST and PORT itself; the tunnel's block runs
with them exported, as after the recipe), the tunnel's
``https://<random>.trycloudflare.com`` by a made-up name, and ``.venv/bin/`` by the bin
directory of the venv running the tests. The ``$(openssl rand ...)`` lines run as written, so
the agent runs with a password nobody chose.

The recipe's exports must start the agent on the real provider (not the sandbox), refusing
unsigned webhooks, with SWML that names the public URL, and a whole call played by the
simulator against it must text through the space's MFA API and end verified. The tunnel's
export must put its address in the SWML; nothing is ever sent to that address (``.invalid``
cannot resolve, and only the SWML names it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpx
import pytest

from agent.ops.platform import signalwire_signature
from testkit.agent_env import write_config
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID, FakeSignalWire
from testkit.servers import ServerThread, free_port
from tests.support.defaults import CALLER
from tests.support.process_group import ShellRun, wait_for_health
from tests.support.shown import shown_block, venv_bin

SIGNING_KEY = "PSKrecipe0123456789abcdef"
TUNNEL = "https://tunnel-name.invalid"
CALL = {"call": {"call_id": "recipe-call", "from": CALLER, "to": "+15559870000"}, "vars": {}}


def reader_env(tmp_path: Path, **exported: str) -> dict[str, str]:
    """A shell with no account, HOST or PORT exported (unless given), a sandbox database of
    the test's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_"))
        and k not in ("REDIS_URL", "HOST", "PORT")
    }
    return env | {"MFA_AGENT_CONFIG": str(write_config(tmp_path)), **exported}


def filled(body: str, placeholders: dict[str, str], replacements: dict[str, str]) -> str:
    """``body`` with each ``NAME=…`` given ``placeholders[NAME]``, each shown value replaced,
    and ``.venv/bin/`` at a line's start naming the venv running the tests."""
    text = re.sub(r"\b(\w+)=…", lambda m: f"{m[1]}={placeholders[m[1]]}", body)
    for shown, ours in replacements.items():
        assert shown in text, f"the block no longer shows {shown!r}"
        text = text.replace(shown, ours)
    assert "…" not in text and "<random>" not in text, text
    return re.sub(r"^\.venv/bin/", venv_bin(), text, flags=re.MULTILINE)


def answers_on(url: str) -> bool:
    """Whether anything answers ``url``; refused or unreachable is a no."""
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def logged(run: ShellRun) -> dict[str, dict[str, Any]]:
    """The agent's JSON log lines by message (the last of each)."""
    lines = [json.loads(line) for line in run.log_text().splitlines() if line[:1] == "{"]
    return {line["msg"]: line for line in lines}


def webhook_origin(swml: dict[str, Any]) -> SplitResult:
    """Where the SWML's tools are called: the ``web_hook_url`` of each, the same up to the
    path (each carries its own token in the query)."""
    (ai,) = [verb["ai"] for verb in swml["sections"]["main"] if "ai" in verb]
    urls = [urlsplit(function["web_hook_url"]) for function in ai["SWAIG"]["functions"]]
    assert urls and len({url._replace(query="") for url in urls}) == 1, urls
    return urls[0]


@pytest.fixture
def space() -> Iterator[tuple[FakeSignalWire, str]]:
    fake = FakeSignalWire()
    with ServerThread(fake.app()) as server:
        yield fake, server.url


def play_call(url: str, password: str, fake: FakeSignalWire) -> tuple[int, str]:
    """``python -m agent call`` against the running agent; the "caller" types the code the
    fake space texted to their phone."""
    caller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "call",
            "--url",
            url,
            "--user",
            "mfa",
            "--password",
            password,
            "--signing-key",
            SIGNING_KEY,
        ],
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_"))
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not fake.texts and time.monotonic() < deadline and caller.poll() is None:
        time.sleep(0.05)
    code = fake.last_code_for(CALLER) if fake.texts else ""
    output, _ = caller.communicate(code + "\n", timeout=60)
    return caller.returncode, output


def test_the_recipe_starts_an_agent_on_the_space_and_a_call_verifies(tmp_path, space):
    fake, space_url = space
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    block = shown_block("account-recipe")
    script = filled(
        block.body,
        {
            "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
            "SIGNALWIRE_API_TOKEN": API_TOKEN,
            "SIGNALWIRE_SIGNING_KEY": SIGNING_KEY,
        },
        {
            "example.signalwire.com": space_url,
            "https://agent.example.com": public,
            "PORT=3000": f"PORT={port}",
        },
    )
    # The generated passwords, written out just before the agent starts (the last line).
    *exports, start = script.splitlines()
    secret, board = tmp_path / "password", tmp_path / "dashboard"
    script = "\n".join(
        [
            *exports,
            f"printf '%s' \"$SWML_BASIC_AUTH_PASSWORD\" > {secret}",
            f"printf '%s' \"$MFA_DASHBOARD_PASSWORD\" > {board}",
            start,
        ]
    )
    run = ShellRun(script, tmp_path, reader_env(tmp_path), tmp_path / "log")
    try:
        wait_for_health(public, run.process, run.log_text)
        password, dashboard = secret.read_text(), board.read_text()
        metrics = httpx.get(public + "/metrics", auth=("admin", dashboard), timeout=10)
        elsewhere = answers_on(f"http://127.0.0.2:{port}/health")
        unsigned = httpx.post(public + "/", json=CALL, auth=("mfa", password), timeout=10)
        body = json.dumps(CALL).encode()
        signed = httpx.post(
            public + "/",
            content=body,
            headers={
                "content-type": "application/json",
                **signalwire_signature(SIGNING_KEY, public + "/", body),
            },
            auth=("mfa", password),
            timeout=10,
        )
        status, transcript = play_call(public, password, fake)
    finally:
        run.stop()
    assert re.fullmatch(r"[0-9a-f]{32}", password), "openssl rand -hex 16 did not run"
    assert logged(run)["agent_started"]["provider"] == "signalwire"
    assert "unsigned_webhooks_accepted" not in logged(run)
    # The recipe's dashboard password opens the dashboard; HOST keeps the agent on loopback.
    assert "dashboard_closed" not in logged(run)
    assert metrics.status_code == 200 and "mfa_sends_total" in metrics.text, metrics.text
    assert not elsewhere, "the recipe's agent answers on another address than 127.0.0.1"
    assert unsigned.status_code == 403, unsigned.text
    assert signed.status_code == 200, signed.text
    hook = webhook_origin(signed.json())
    assert (hook.scheme, hook.hostname, hook.port) == ("http", "127.0.0.1", port)
    assert (hook.username, unquote(hook.password or "")) == ("mfa", password)
    # The call: texted from the recipe's number through the space's MFA API, then verified.
    assert status == 0, transcript
    assert "global_data.mfa_verified = true" in transcript.splitlines(), transcript
    assert fake.texts[-1]["to"] == CALLER and fake.texts[-1]["from"] == "+15559870000"
    paths = [request["path"] for request in fake.requests]
    assert "/api/relay/rest/mfa/sms" in paths, paths
    assert any(path.endswith("/verify") for path in paths), paths
    assert password not in run.log_text()


def test_the_tunnel_address_is_the_one_the_swml_names(tmp_path):
    """The tunnel's export on the sandbox (no account variables): the SWML's webhooks go to
    the tunnel, where SignalWire would reach the agent."""
    port = free_port()
    script = filled(shown_block("tunnel").body, {}, {"https://<random>.trycloudflare.com": TUNNEL})
    run = ShellRun(
        script, tmp_path, reader_env(tmp_path, HOST="127.0.0.1", PORT=str(port)), tmp_path / "log"
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", run.process, run.log_text)
        generated = logged(run)["generated_credentials"]
        swml = httpx.post(
            f"http://127.0.0.1:{port}/",
            json=CALL,
            auth=(generated["user"], generated["password"]),
            timeout=10,
        )
    finally:
        run.stop()
    assert logged(run)["agent_started"]["provider"] == "sandbox"
    assert swml.status_code == 200, swml.text
    hook = webhook_origin(swml.json())
    assert f"{hook.scheme}://{hook.hostname}" == TUNNEL and hook.port is None
    assert hook.path.startswith("/"), hook
