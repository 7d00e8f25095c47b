"""The agent's image run with podman on the host's network, as compose.yaml runs it.

Every container runs hardened the way compose.yaml runs the agents (read-only root file
system, a tmpfs at /tmp, no capabilities, no-new-privileges) on the host's network, so that
it reaches the test's own loopback servers (Redis, a fake SignalWire) and they reach it.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import httpx

from testkit import container
from testkit.servers import free_port
from tests.support.defaults import AUTH, DASHBOARD
from tests.support.shown import shown_block, venv_bin

README_DIR = Path(__file__).resolve().parents[2]
# The commands of the block the docs mark ``container-commands`` (the operator's guide, "With
# containers"), in the order shown.
COMMANDS = shown_block("container-commands").commands


def readme_command(starts: str) -> str:
    """The one command of the README's container block that starts with ``starts``."""
    found = [c for c in COMMANDS if c.startswith(starts)]
    assert len(found) == 1, f"README 'container-commands' shows {len(found)} commands {starts!r}"
    return found[0]


def run_shell(command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """A README command as a shell runs it from the repository's root, with the venv that
    runs the tests standing for the clone's ``.venv``."""
    command = command.replace(".venv/bin/", venv_bin())
    result = subprocess.run(
        ["bash", "-c", command], cwd=README_DIR, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


HARDENED = (
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)


class AgentContainer:
    """One ``podman run -d`` of the image; ``env`` adds to (or overrides) a sandbox agent's
    environment: the tests' basic auth and ``swaig_secret``, on a free port."""

    def __init__(
        self,
        image: str,
        *,
        volume: str | None = None,
        config: Path | None = None,
        swaig_secret: str = "container-test-secret",
        **env: str,
    ) -> None:
        self.name = f"mfa-test-{secrets.token_hex(4)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            "PORT": str(self.port),
            "SWML_BASIC_AUTH_USER": AUTH[0],
            "SWML_BASIC_AUTH_PASSWORD": AUTH[1],
            "MFA_DASHBOARD_USER": DASHBOARD[0],
            "MFA_DASHBOARD_PASSWORD": DASHBOARD[1],
            "SIGNALWIRE_SWAIG_SECRET": swaig_secret,
            "MFA_PROVIDER": "sandbox",
            **env,
        }
        arguments = ["run", "-d", "--name", self.name, "--network", "host", *HARDENED]
        if volume is not None:
            arguments += ["--volume", f"{volume}:/app/var"]
        if config is not None:
            arguments += ["--volume", f"{config}:/config/config.yaml:ro"]
            environment["MFA_AGENT_CONFIG"] = "/config/config.yaml"
        for name, value in environment.items():
            arguments += ["--env", f"{name}={value}"]
        container.podman(*arguments, image)

    def __enter__(self) -> AgentContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.state() == "running", f"the container stopped:\n{self.logs()}"
            time.sleep(0.2)
        raise AssertionError(f"no /health within {timeout} s:\n{self.logs()}")

    def state(self) -> str:
        return self.inspect("{{.State.Status}}")

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def inspect(self, template: str) -> str:
        return container.podman("inspect", self.name, "--format", template).stdout.strip()

    def exec(self, *command: str) -> str:
        return container.podman("exec", self.name, *command).stdout

    def logs(self) -> str:
        result = container.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self, grace_seconds: int = 30) -> None:
        """``podman stop``: the image's STOPSIGNAL, then SIGKILL after ``grace_seconds``."""
        container.podman("stop", "--time", str(grace_seconds), self.name, timeout=120)

    def remove(self) -> None:
        # --volumes: the anonymous volume podman made for the image's VOLUME (named ones stay).
        container.podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False)
