"""A command a reader runs (``make run``, a shown block in bash) as a process group of its own,
waited for on ``/health`` and stopped as a whole, as a reader's Ctrl-C would (``ShellRun``
runs a shown script that way, its output in one log file)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest


def stop_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the whole group (make or bash, and the agent they started), SIGKILL if it
    lingers; then once more for a child left behind by a parent that went first."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)


def wait_for_health(
    url: str, process: subprocess.Popen[Any], output: Callable[[], str], timeout: float = 60
) -> None:
    """Until ``url/health`` answers 200; fails with ``output()`` at once when the process
    ends, or when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"it ended ({process.returncode}) during start-up:\n{output()}")
        time.sleep(0.1)
    pytest.fail(f"no {url}/health within {timeout:.0f} s:\n{output()}")


class ShellRun:
    """One shown script run by bash in its own process group, its output in ``log_path``."""

    def __init__(self, script: str, cwd: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_running(self) -> None:
        assert self.process.poll() is None, self.log_text()[-2000:]

    def stop(self) -> None:
        """The whole group, as an operator's Ctrl-C would stop it."""
        try:
            stop_group(self.process)
        finally:
            self._log.close()
