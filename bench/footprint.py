"""Measurement 4: how long ``python -m agent`` takes to answer, and how much memory it holds.

The agent runs with the sandbox provider (codes in a SQLite file in a temp dir). Start
time is from ``subprocess.Popen`` to ``GET /health`` answering 200. Memory is VmRSS
idle after start, then after ``codes`` sandbox codes are pending: that many calls, each
a new call (SWML fetched) with its own caller number, each doing ``send_mfa`` once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from agent.ops.platform import PlatformCall
from bench import servers
from bench.overhead import caller_number
from bench.stats import median

SETTLE_S = 1.0


async def run(
    log_dir: Path, *, launches: int, codes: int, parallel: int, limit_s: float
) -> dict[str, Any]:
    start_times: list[float] = []
    server = None
    try:
        for i in range(launches):
            run_dir = log_dir / f"footprint-{i}"
            run_dir.mkdir()
            server = servers.start_agent(run_dir, fake_url=None, name="agent-sandbox")
            start_times.append(server.launch_to_ready_s)
            if i < launches - 1:
                servers.stop(server)
        assert server is not None
        await asyncio.sleep(SETTLE_S)
        idle_rss = servers.rss_mb(server.pid)

        sent, elapsed = await _drive_sends(server.url, codes, parallel, limit_s)
        await asyncio.sleep(SETTLE_S)
        loaded_rss = servers.rss_mb(server.pid)
        db_path = log_dir / f"footprint-{launches - 1}" / "sandbox.sqlite3"
        pending = _pending_rows(db_path)
        db_bytes = _db_bytes(db_path)
    finally:
        if server is not None:
            servers.stop(server)
    return {
        "start_s_runs": start_times,
        "start_s_median": median(start_times),
        "idle_rss_mb": idle_rss,
        "codes_requested": codes,
        "codes_sent": sent,
        "codes_pending_in_db": pending,
        "loaded_rss_mb": loaded_rss,
        "send_phase_s": elapsed,
        "send_phase_calls_per_s": sent / elapsed if elapsed else 0.0,
        "db_bytes": db_bytes,
    }


async def _drive_sends(url: str, codes: int, parallel: int, limit_s: float) -> tuple[int, float]:
    """``codes`` calls, ``parallel`` at a time, each fetching SWML then sending one code."""
    next_index = 0
    sent = 0
    async with servers.loopback_client(parallel) as http:

        async def worker() -> None:
            nonlocal next_index, sent
            while next_index < codes:
                i = next_index
                next_index += 1
                call = PlatformCall(
                    http=http, base_url=url, auth=servers.AUTH, caller=caller_number(i)
                )
                try:
                    await call.start()
                    reply = await call.invoke("send_mfa")
                except httpx.TransportError:
                    continue  # counted as not sent; never retried (a send may have gone)
                if reply.status_code == 200 and "mfa_request_id" in str(reply.actions):
                    sent += 1

        started = time.perf_counter()
        async with asyncio.timeout(limit_s):
            await asyncio.gather(*(worker() for _ in range(parallel)))
        return sent, time.perf_counter() - started


def _pending_rows(db_path: Path) -> int:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM pending_codes").fetchone()[0])
    finally:
        conn.close()


def _db_bytes(db_path: Path) -> int:
    return sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*") if p.is_file())
