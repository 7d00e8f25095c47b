"""Processes the benchmark starts: the agent (``python -m agent``), the bare SDK agent and
the fake SignalWire, each in its own process on a loopback port.

Every process started here is recorded and stopped by ``stop`` or, failing that, by
``stop_all`` (called from ``__main__``'s ``finally`` and at exit). Output goes to a log
file in the run's temp directory, never to a pipe nobody reads.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit.agent_env import agent_env, write_config
from testkit.servers import free_port

REPO = Path(__file__).resolve().parent.parent
SDK_CONFIG_FILE = REPO / "agent" / "sdk_config.json"
AUTH = ("bench", "bench-password-not-secret")
SWAIG_SECRET = "bench-swaig-secret"
#: The dashboard's pair: the bench reads the agent's /metrics with it.
DASHBOARD = ("bench-admin", "bench-dashboard-password")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_LIMITS = {
    "agent_sends_per_minute": 100_000,
    "per_recipient_per_hour": 1000,
    "per_recipient_per_day": 10_000,
}

# The benchmark's callers share a few number ranges: the pumping rules run, uncapped.
BENCH_PUMPING = {
    "per_prefix_per_hour": 100_000,  # the most the YAML file allows
    "per_country_per_hour": 1_000_000,
    "conversion_floor": 0,
}

_running: list[subprocess.Popen[bytes]] = []


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    launch_to_ready_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid


def base_env() -> dict[str, str]:
    """A clean environment: nothing from the caller's SIGNALWIRE_* or proxy settings."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_agent_config(
    directory: Path, *, max_connections: int = 100, lookup: bool = False
) -> Path:
    """``lookup``: the line type looked up before each send (on by default with an account;
    off here unless asked, so the rows compare with releases that had no lookup)."""
    return write_config(
        directory,
        {
            "upstream": {"max_connections": max_connections},
            "channels": {"lookup": lookup},
            # The abuse limits still run on every send (their cost is measured); their caps
            # are lifted so that the load, not the throttle, is what gets measured.
            "limits": BENCH_LIMITS,
            "pumping": BENCH_PUMPING,
        },
        name=f"config-{max_connections}{'-lookup' if lookup else ''}.yaml",
    )


def launch(
    name: str,
    args: list[str],
    env: dict[str, str],
    log_dir: Path,
    port: int,
    *,
    ready_path: str,
    any_status: bool = False,
    timeout: float = 30.0,
) -> Server:
    """Start ``python <args>`` and wait until ``ready_path`` answers (200, or any status)."""
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=str(REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _running.append(proc)
    server = Server(name, proc, f"http://127.0.0.1:{port}", log_path)
    try:
        server.launch_to_ready_s = _wait_ready(server, ready_path, any_status, started, timeout)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(
    server: Server, path: str, any_status: bool, started: float, timeout: float
) -> float:
    deadline = started + timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            if server.proc.poll() is not None:
                tail = server.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{tail}")
            try:
                response = client.get(server.url + path)
                if any_status or response.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{server.name} not ready after {timeout} s")
            time.sleep(0.01)


def start_fake(log_dir: Path, *, latency: float) -> Server:
    port = free_port()
    return launch(
        "fake-signalwire",
        ["-m", "bench.fake_server", str(port), str(latency)],
        base_env(),
        log_dir,
        port,
        ready_path="/",
        any_status=True,
    )


def start_agent(
    log_dir: Path,
    *,
    fake_url: str | None,
    max_connections: int = 100,
    name: str = "agent",
    probe_args: list[str] | None = None,  # e.g. ["--profile", OUT]: see bench/agent_probe.py
    redis_url: str | None = None,
    lookup: bool = False,
) -> Server:
    """The product's own entry point, ``python -m agent``, as it runs in production.

    With ``probe_args`` it runs as ``python -m bench.agent_probe ARGS`` instead: the same
    agent with a diagnostic patch applied in that process (see ``bench/agent_probe.py``).
    """
    port = free_port()
    config = write_agent_config(log_dir, max_connections=max_connections, lookup=lookup)
    env = agent_env(
        config,
        auth=AUTH,
        dashboard=DASHBOARD,
        swaig_secret=SWAIG_SECRET,
        signalwire_url=fake_url,
        redis_url=redis_url,
        base=base_env(),
        HOST="127.0.0.1",
        PORT=str(port),
    )
    args = ["-m", "agent"] if probe_args is None else ["-m", "bench.agent_probe", *probe_args]
    return launch(name, args, env, log_dir, port, ready_path="/health")


def start_bare(log_dir: Path) -> Server:
    port = free_port()
    return launch(
        "bare-sdk-agent",
        ["-m", "bench.bare_agent", str(port)],
        base_env(),
        log_dir,
        port,
        ready_path="/health",
    )


def loopback_client(connections: int = 10, timeout: float = 30.0) -> httpx.AsyncClient:
    """A client for the servers above. Idle connections are dropped after 2 s, before
    uvicorn's 5 s keep-alive timeout closes them under a request being sent."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)


def stop(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc in _running:
        _running.remove(proc)


def stop_all() -> None:
    for proc in list(_running):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        _running.remove(proc)


atexit.register(stop_all)


def rss_mb(pid: int) -> float:
    """Resident set size from /proc (psutil is not installed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
