"""``python -m agent`` as a process with its descriptor limits set and its log in a file.

A file, not a pipe: an agent under attack that logs a lot must not block on a full pipe.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from agent.ops.local_server import free_port
from tests.support.agent_process import AgentProcess, sandbox_env


class LimitedAgent(AgentProcess):
    """``python -m agent`` with its descriptor limits set before it starts, log to a file."""

    def __init__(
        self, tmp_path: Path, *, nofile: tuple[int, int] | None = None, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "agent.log"
        self._log = self.log_path.open("w")

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent"],
            env=sandbox_env(tmp_path, HOST="127.0.0.1", PORT=str(self.port), **env),
            cwd=tmp_path,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]
        )

    def soft_nofile(self) -> int:
        limits = Path(f"/proc/{self.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        return int(line.split()[3])

    def stop(self) -> str:
        super().stop()
        self._log.close()
        return self.log_path.read_text(errors="replace")

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")
