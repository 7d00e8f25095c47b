"""A Redis Sentinel setup on loopback: one primary, one replica, three sentinels.

``SentinelCluster`` starts Debian's ``redis-server`` twice (the replica with
``--replicaof``) and ``redis-sentinel`` three times, each on a free loopback port with
its files in one temporary directory, and waits until every sentinel sees the replica
and the two other sentinels. ``kill_primary`` SIGKILLs the primary (a crash, not a
shutdown: nothing is flushed or handed over) and ``wait_for_failover`` waits until the
sentinels name the replica as the new primary and it takes writes. Every wait is bounded;
``stop`` ends every process it started and removes the directory.

The sentinels decide quickly, as a test wants: a primary is down for a sentinel after
``down_after_ms`` without an answer, and down for the group once 2 agree (the quorum);
a failover that stalls is retried after ``failover_timeout_ms``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from testkit.servers import free_port

HOST = "127.0.0.1"
DEFAULT_MASTER = "mfa-primary"


@dataclass
class _Node:
    role: str  # "primary", "replica" or "sentinel"
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class SentinelCluster:
    """``start()`` (or ``with``), then ``sentinels`` (``host:port,...``) and ``master``."""

    master: str = DEFAULT_MASTER
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    quorum: int = 2
    sentinel_count: int = 3
    _dir: Path | None = field(default=None, init=False)
    _nodes: list[_Node] = field(default_factory=list, init=False)
    primary_port: int = field(default=0, init=False)
    replica_port: int = field(default=0, init=False)
    killed_at: float | None = field(default=None, init=False)

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None and (
            shutil.which("redis-sentinel") is not None
        )

    # -- addresses -------------------------------------------------------------------------

    @property
    def sentinel_ports(self) -> list[int]:
        return [node.port for node in self._nodes if node.role == "sentinel"]

    @property
    def sentinels(self) -> str:
        """The value of ``REDIS_SENTINELS``."""
        return ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)

    @property
    def primary(self) -> str:
        return f"{HOST}:{self.primary_port}"

    # -- starting and stopping -------------------------------------------------------------

    def start(self, *, within: float = 30.0) -> SentinelCluster:
        self._dir = Path(tempfile.mkdtemp(prefix="mfa-sentinel-"))
        try:
            self.primary_port = free_port()
            self._start_redis("primary", self.primary_port)
            self.replica_port = free_port()
            self._start_redis(
                "replica", self.replica_port, "--replicaof", HOST, str(self.primary_port)
            )
            for number in range(self.sentinel_count):
                self._start_sentinel(number)
            self._wait_until_settled(time.monotonic() + within)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> SentinelCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for node in self._nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in self._nodes:
            try:
                node.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=5)
        self._nodes = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _start_redis(self, role: str, port: int, *extra: str) -> None:
        assert self._dir is not None
        log = self._dir / f"{role}-{port}.log"
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--dbfilename",
                f"dump-{port}.rdb",
                "--logfile",
                str(log),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._nodes.append(_Node(role, port, process, log))
        _wait_for(lambda: _ask(port, "ping"), time.monotonic() + 10, f"{role} on {port}", process)

    def _start_sentinel(self, number: int) -> None:
        assert self._dir is not None
        port = free_port()
        config = self._dir / f"sentinel-{number}.conf"
        log = self._dir / f"sentinel-{number}.log"
        name = self.master
        config.write_text(
            "\n".join(
                [
                    f"port {port}",
                    f"bind {HOST}",
                    f"dir {self._dir}",
                    f"logfile {log}",
                    f"sentinel monitor {name} {HOST} {self.primary_port} {self.quorum}",
                    f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                    f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {name} 1",
                    "",
                ]
            )
        )
        process = subprocess.Popen(
            ["redis-sentinel", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._nodes.append(_Node("sentinel", port, process, log))
        _wait_for(lambda: _ask(port, "ping"), time.monotonic() + 10, f"sentinel {port}", process)

    def _wait_until_settled(self, deadline: float) -> None:
        """Every sentinel sees the primary up, its replica and the other sentinels; the
        replica's link is up."""

        def settled() -> bool:
            info = _ask(self.replica_port, "info", "replication")
            if info.get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                state = _ask(port, "sentinel_master", self.master)
                if (
                    state.get("is_sdown")
                    or state.get("port") != self.primary_port
                    or state.get("num-slaves", 0) < 1
                    or state.get("num-other-sentinels", 0) < self.sentinel_count - 1
                ):
                    return False
            return True

        _wait_for(settled, deadline, "the sentinels to agree on the primary")

    # -- the failover ----------------------------------------------------------------------

    def kill_primary(self) -> float:
        """SIGKILL the primary; returns the monotonic time of the kill."""
        node = next(n for n in self._nodes if n.port == self.primary_port and n.role != "dead")
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)
        node.role = "dead"
        self.killed_at = time.monotonic()
        return self.killed_at

    def named_primary(self) -> dict[int, int | None]:
        """Sentinel port -> the primary port it names now (``None``: no answer)."""
        named: dict[int, int | None] = {}
        for port in self.sentinel_ports:
            try:
                address = _ask(port, "sentinel_get_master_addr_by_name", self.master)
                named[port] = int(address[1]) if address else None
            except redis.RedisError:
                named[port] = None
        return named

    def wait_for_failover(self, *, within: float = 30.0) -> float:
        """Wait until a majority of the sentinels name another primary that takes a
        write; returns the seconds since ``kill_primary``."""
        assert self.killed_at is not None, "kill_primary first"
        old = self.primary_port
        found: list[int] = []

        def promoted() -> bool:
            named = [p for p in self.named_primary().values() if p is not None and p != old]
            if len(named) * 2 <= self.sentinel_count:
                return False
            new = max(set(named), key=named.count)
            if _ask(new, "info", "replication").get("role") != "master":
                return False
            _ask(new, "set", "mfa:sentinel-cluster:probe", b"1", None, 1000)
            found[:] = [new]
            return True

        _wait_for(promoted, time.monotonic() + within, "the sentinels to promote the replica")
        elapsed = time.monotonic() - self.killed_at
        for node in self._nodes:
            if node.port == found[0]:
                node.role = "primary"
        self.replica_port, self.primary_port = 0, found[0]
        return elapsed

    def logs(self) -> str:
        """The last lines of every node's log, for a failure message."""
        parts = []
        for node in self._nodes:
            try:
                lines = node.log.read_text(errors="replace").splitlines()[-15:]
            except OSError:
                lines = []
            parts.append(f"--- {node.role} {node.port}\n" + "\n".join(lines))
        return "\n".join(parts)


def _ask(port: int, command: str, *args: object) -> Any:
    """One command to the server on ``port``, on a connection closed right after."""
    with redis.Redis(host=HOST, port=port, socket_timeout=1.0, socket_connect_timeout=1.0) as r:
        return getattr(r, command)(*args)


def _wait_for(
    condition: Callable[[], Any],
    deadline: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
