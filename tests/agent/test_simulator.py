"""``python -m agent call`` as a newcomer uses it: a process, reading and typing."""

from __future__ import annotations

import re
import subprocess
import sys

from agent.config.settings import DEFAULT_CONFIG_PATH
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread
from tests.support.agent_process import AgentProcess, sandbox_env
from tests.support.calls import wrong_code
from tests.support.defaults import account_on
from tests.support.shown import shown_block

CODE_LINE = re.compile(r"\[sandbox text to \+\d+\] From our company: .* Your code: (\d{6})$")


def start_simulator(tmp_path, *args: str, config=None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "call", *args],
        env=sandbox_env(tmp_path, config),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def texted_code(process: subprocess.Popen[str]) -> str:
    """The code in the sandbox text the running simulator printed."""
    assert process.stdout is not None
    for line in process.stdout:
        match = CODE_LINE.search(line)
        if match:
            return match.group(1)
    raise AssertionError("the sandbox text should be shown")


def test_typing_the_texted_code_verifies(tmp_path):
    process = start_simulator(tmp_path)
    code = texted_code(process)
    spoken = " ".join(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][int(d)]
        for d in code
    )
    out, err = process.communicate(f"my code is {spoken}\n", timeout=60)
    assert process.returncode == 0, err
    assert "caller is verified" in out
    assert "global_data.mfa_verified = true" in out


def test_a_scripted_run_verifies(tmp_path):
    process = start_simulator(tmp_path, "--say", "um, it's {code_words}")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.count("> verify_mfa") == 1
    assert "caller is verified" in out


def test_a_wrong_code_three_times_does_not_verify(tmp_path):
    process = start_simulator(tmp_path)
    code = texted_code(process)
    wrong = wrong_code(code)  # certainly not the texted code
    out, err = process.communicate(f"{wrong}\n" * 4, timeout=60)
    assert process.returncode == 1, err
    assert "caller is verified" not in out
    assert out.count("> verify_mfa") == 3
    assert "no tries left" in out
    assert "global_data.mfa_verified = false" in out


def test_unreachable_agent_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "call",
            "--url",
            "http://127.0.0.1:9",
            "--user",
            "u",
            "--password",
            "p",
            "--say",
            "123456",
        ],
        env=sandbox_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot reach the agent" in result.stderr


def test_playing_against_a_running_agent_reads_the_text_from_its_stream(tmp_path):
    agent = AgentProcess(tmp_path)
    try:
        agent.wait_ready()
        process = start_simulator(
            tmp_path,
            "--url",
            agent.url,
            "--user",
            "operator",
            "--password",
            "s3cret-test-password",
            "--caller",
            "+15551230042",
        )
        code = None
        for line in process.stdout:
            match = CODE_LINE.search(line)
            if match:
                code = match.group(1)
                break
        assert code, "the sandbox text should come from the agent's live stream"
        out, err = process.communicate(f"{code}#\n", timeout=60)
        assert process.returncode == 0, err
        assert "global_data.mfa_verified = true" in out
    finally:
        agent.stop()


def run_simulator(tmp_path, config, *say: str) -> subprocess.CompletedProcess[str]:
    args = [arg for answer in say for arg in ("--say", answer)]
    return subprocess.run(
        [sys.executable, "-m", "agent", "call", *args],
        env=sandbox_env(tmp_path, config),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_simulator_shows_a_transfer_with_its_sip_headers(tmp_path):
    sip = "sip:desk@example.sip.signalwire.com"
    result = run_simulator(tmp_path, {"handoff": {"on_verified": sip}}, "{code}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"[platform] after Jim's last sentence, the call is transferred to {sip}" in out
    assert "SIP header X-MFA-Verified: true" in out
    assert "SIP header X-MFA-Number: ***0001" in out
    assert "action: end_of_speech_timeout=1500" in out


def test_the_simulator_shows_a_hang_up_when_no_code_is_left(tmp_path):
    config = {
        "code": {"max_attempts": 1},
        "limits": {"sends_per_call": 1},
        "handoff": {"on_failed": "hangup"},
    }
    process = start_simulator(tmp_path, config=config)
    code = texted_code(process)
    out, err = process.communicate(f"{wrong_code(code)}\n" * 2, timeout=60)
    assert process.returncode == 1, err
    assert "[platform] after Jim's last sentence, the call is hung up" in out
    assert out.count("> verify_mfa") == 1  # nothing after the hang-up


SIGNING_KEY = "PSKsimulator0123456789abcdef"


def _simulator_against(tmp_path, agent, *args: str, **env: str) -> subprocess.Popen[str]:
    """The simulator against ``agent``, its password (and key) from the environment only."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent",
            "call",
            "--url",
            agent.url,
            "--caller",
            "+15551230077",
            *list(args),
        ],
        env=sandbox_env(
            tmp_path,
            SWML_BASIC_AUTH_USER="operator",
            SWML_BASIC_AUTH_PASSWORD="s3cret-test-password",
            **env,
        ),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_simulator_signs_with_the_key_from_the_environment(tmp_path):
    agent = AgentProcess(tmp_path, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
    try:
        agent.wait_ready()
        process = _simulator_against(tmp_path, agent, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
        code = texted_code(process)
        out, err = process.communicate(f"{code}\n", timeout=60)
        assert process.returncode == 0, err
        assert "global_data.mfa_verified = true" in out
    finally:
        agent.stop()


def test_an_unsigned_simulator_is_told_the_signing_key_is_the_likely_cause(tmp_path):
    agent = AgentProcess(tmp_path, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
    try:
        agent.wait_ready()
        process = _simulator_against(tmp_path, agent, "--say", "123456")
        _, err = process.communicate(timeout=60)
        assert process.returncode == 2
        assert "call: 403: the agent refused the call: it most likely checks webhook " in err
        assert "signatures (SIGNALWIRE_SIGNING_KEY); give the simulator the same key" in err
        wrong = _simulator_against(tmp_path, agent, "--signing-key", "not-the-key", "--say", "1")
        _, err = wrong.communicate(timeout=60)
        assert wrong.returncode == 2
        assert "call: 403: the agent refused the call's signature" in err
    finally:
        agent.stop()


def test_a_code_placeholder_without_a_sandbox_text_is_refused_with_the_reason(tmp_path):
    """Against an agent whose text the simulator cannot see (a real phone, or a closed live
    stream), ``{code}`` would go out as the literal word and come back "not a 6-digit code":
    the simulator says why instead, before it sends anything (a real phone would get a text
    for nothing)."""
    agent = AgentProcess(tmp_path, capture=True)
    try:
        agent.wait_ready()
        process = _simulator_against(
            tmp_path, agent, "--say", "my code is {code}", MFA_DASHBOARD_PASSWORD=""
        )
        out, err = process.communicate(timeout=60)
    finally:
        log = agent.stop()
    assert process.returncode == 2, out + err
    assert "call: {code} and {code_words} stand for a sandbox text's code" in err
    assert "> send_mfa" not in out and "> verify_mfa" not in out
    assert '"tool": "send_mfa"' not in log and '"tool": "verify_mfa"' not in log


def test_a_code_placeholder_with_an_account_is_refused_before_a_text_goes(tmp_path):
    """The in-process agent on an account (here the fake space): no sandbox text will
    come, so ``{code}`` is refused before ``send_mfa`` texts a phone."""
    fake = FakeSignalWire()
    with ServerThread(fake.app()) as space:
        result = subprocess.run(
            [sys.executable, "-m", "agent", "call", "--say", "{code}"],
            env=sandbox_env(
                tmp_path,
                **account_on(space.url),
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "call: {code} and {code_words} stand for a sandbox text's code" in result.stderr
    assert fake.texts == [] and fake.requests == []


def test_call_help_names_the_environment_variables_it_reads(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "agent", "call", "--help"],
        env=sandbox_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in (
        "AGENT_URL",
        "SWML_BASIC_AUTH_USER",
        "SWML_BASIC_AUTH_PASSWORD",
        "SIGNALWIRE_SIGNING_KEY",
    ):
        assert name in text
    assert "--signing-key" in text


# -- a caller who speaks Spanish --------------------------------------------------------------

SPANISH_COMMAND = 'python -m agent call --lang es --say "mi código es {code_words}"'
SHOWN_SPANISH_COMMAND = f"MFA_AGENT_CONFIG=agent/config.yaml .venv/bin/{SPANISH_COMMAND}"
SPANISH_DIGITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_docs_calls_shows_this_spanish_call():
    assert shown_block("spanish-call").commands == [SHOWN_SPANISH_COMMAND]


def test_a_spanish_call_ends_verified_with_a_spanish_text_in_one_segment(tmp_path):
    """docs/calls.md's command, on the shipped YAML file (English and Spanish)."""
    env = sandbox_env(tmp_path)
    env["MFA_AGENT_CONFIG"] = str(DEFAULT_CONFIG_PATH)  # its sandbox db lands in tmp_path/var
    result = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m {SPANISH_COMMAND.removeprefix('python -m ')}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '> send_mfa("language": "es")' in out
    text = re.search(r"\[sandbox text to \+\d+\] (.*)$", out, flags=re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert text.startswith("De our company: diga este codigo solo en la llamada que usted")
    assert "Nunca llamamos para pedirlo" in text
    assert set(text) <= GSM7 and len(text) <= 160  # one GSM-7 segment
    code = text.rsplit(" ", 1)[1]
    words = " ".join(SPANISH_DIGITS[int(d)] for d in code)
    assert f'> verify_mfa("token": "mi código es {words}")' in out
    assert "caller is verified" in out
    assert "global_data.mfa_verified = true" in out
