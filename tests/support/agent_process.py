"""``python -m agent`` as a real process on a loopback port, as an operator starts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from testkit.agent_env import agent_env, write_config
from testkit.servers import free_port
from tests.support.defaults import AUTH, DASHBOARD


def sandbox_env(tmp_path: Path, config: dict[str, Any] | None = None, **extra: str) -> dict:
    """The environment of a sandbox-mode agent: nothing inherited that could change it."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "REDIS_SENTINEL")) and k != "REDIS_URL"
    }
    return agent_env(
        write_config(tmp_path, config),
        auth=AUTH,
        dashboard=DASHBOARD,
        swaig_secret="process-test-secret",
        base=inherited,
        **extra,
    )


class AgentProcess:
    def __init__(
        self,
        tmp_path: Path,
        config: dict[str, Any] | None = None,
        *,
        capture: bool = False,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        output = subprocess.PIPE if capture else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent"],
            env=sandbox_env(tmp_path, config, HOST="127.0.0.1", PORT=str(self.port), **env),
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, path: str = "/ready", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, "the agent exited during start-up"
            time.sleep(0.05)
        raise AssertionError(f"no {path} within {timeout} s")

    def stop(self) -> str:
        """Terminate and return what it printed (when captured)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output or ""
