"""An env file that would half-apply stops start-up instead, loaded as the guide loads it.

The operator's guide keeps the configuration in one file, one ``NAME='value'`` a line,
loaded with ``set -a; . FILE; set +a``. Two mistakes used to start an agent that then
failed on the phone: a file saved with Windows line endings (every value ends in a carriage
return, so the right password is refused with a 401), and an unquoted password with spaces
(the shell runs the second word as a command and never sets the variable, and the agent
generated a password of its own for a real account). Each now stops start-up with one line
naming the variable, and the password never appears in it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from testkit.agent_env import write_config
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID
from testkit.servers import free_port
from tests.support.shown import venv_bin

ERROR = "mfa-agent: configuration error: "
PASSWORD = "correct horse battery staple"


def env_file(tmp_path: Path, password_line: str, *, newline: str = "\n") -> Path:
    lines = [
        f"SIGNALWIRE_PROJECT_ID='{PROJECT_ID}'",
        f"SIGNALWIRE_API_TOKEN='{API_TOKEN}'",
        "SIGNALWIRE_SPACE='example.signalwire.com'",
        "SIGNALWIRE_SIGNING_KEY='PSKenvfile0123456789abcdef'",
        "MFA_FROM_NUMBER='+15559870000'",
        "SWML_BASIC_AUTH_USER='mfa'",
        password_line,
        "SIGNALWIRE_SWAIG_SECRET='envfile-swaig-secret-0123456789'",
        "MFA_DASHBOARD_PASSWORD='envfile-dashboard-0123456789'",
        "SWML_PROXY_URL_BASE='https://agent.example.com'",
        "HOST='127.0.0.1'",
        f"PORT='{free_port()}'",
    ]
    path = tmp_path / "env"
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def start_from(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    """``set -a; . FILE; set +a`` then the agent, in a shell with nothing else exported."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_")) and k not in ("HOST", "PORT")
    }
    env["MFA_AGENT_CONFIG"] = str(write_config(tmp_path))
    return subprocess.run(
        ["bash", "-c", f"set -a; . {path}; set +a; exec {venv_bin()}python -m agent"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[-1]


def test_a_crlf_env_file_stops_start_up_naming_the_variables(tmp_path):
    path = env_file(tmp_path, f"SWML_BASIC_AUTH_PASSWORD='{PASSWORD}'", newline="\r\n")
    result = start_from(tmp_path, path)
    line = last_line(result)
    # Every value the agent takes as written is named; the stripped ones lose the return.
    assert line.startswith(ERROR + "HOST, PORT, SWML_BASIC_AUTH_PASSWORD, "), line
    assert line.endswith(
        "the values hold a carriage return (\\r): the env file has Windows (CRLF) line "
        "endings; convert it with sed -i 's/\\r$//' FILE (or dos2unix FILE)"
    ), line
    assert PASSWORD not in result.stderr and API_TOKEN not in result.stderr


def test_an_unquoted_password_with_spaces_is_not_replaced_by_a_generated_one(tmp_path):
    path = env_file(tmp_path, f"SWML_BASIC_AUTH_PASSWORD={PASSWORD}")
    result = start_from(tmp_path, path)
    # The shell's own complaint comes first (it ran "horse" as a command); then ours.
    assert "horse" in result.stderr
    assert last_line(result) == (
        f"{ERROR}SWML_BASIC_AUTH_PASSWORD is required with a SignalWire account (at least 16 "
        "characters, the same on every replica and in the number's SWML URL): it is not "
        "generated. In an env file, write it in single quotes: an unquoted value with spaces "
        "is never set"
    )
    assert "generated_credentials" not in result.stderr
