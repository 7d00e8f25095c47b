"""Measurement 3: many calls at once against a slow upstream.

``concurrency`` workers each play ``rounds`` calls one after another (closed loop). A
call is ``send_mfa`` then ``verify_mfa`` with the right code; each is one agent request
and one upstream round trip of ``latency`` seconds. Each call's SWML is fetched before
the clock starts, so the timed part is exactly the two tool requests.

achieved calls/s = calls that ended verified / wall time of the timed part.
ideal calls/s = concurrency / (2 * latency): what an agent adding no time at all would do.

The load generator is this process; the agent and the fake SignalWire each run in their
own process. CPU seconds used by each process during the timed part are recorded, so the
cost per call can be split between agent, fake and load generator.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from agent.ops.platform import PlatformCall
from bench.fake_server import BENCH_CODE
from bench.overhead import fresh_caller
from bench.servers import AUTH, cpu_seconds, loopback_client
from bench.stats import median, percentile

PREFETCH_PARALLEL = 50
WORKERS_PER_CLIENT = 10


async def run_level(
    agent_urls: list[str],
    *,
    concurrency: int,
    rounds: int,
    latency: float,
    agent_pids: list[int],
    fake_pid: int,
    limit_s: float,
    callers: Callable[[], str] = fresh_caller,
) -> dict[str, Any]:
    """With several ``agent_urls`` (replicas sharing Redis), each request of a call goes to
    the next replica in turn, as a load balancer may send them: SWML from one, ``send_mfa``
    to another, ``verify_mfa`` to the next."""
    total = concurrency * rounds
    replicas = len(agent_urls)
    agent_url = agent_urls[0]
    # Many small clients, not one big one: httpcore 1.0.x scans every connection of a
    # pool on every request, so one 500-connection pool would make the load generator,
    # not the agent, the bottleneck. Each client serves WORKERS_PER_CLIENT workers.
    n_clients = -(-concurrency // WORKERS_PER_CLIENT)
    clients = [loopback_client(WORKERS_PER_CLIENT) for _ in range(n_clients)]
    try:
        calls = [
            PlatformCall(
                http=clients[(i // rounds) // WORKERS_PER_CLIENT],
                base_url=agent_url,
                auth=AUTH,
                caller=callers(),
            )
            for i in range(total)
        ]
        gate = asyncio.Semaphore(PREFETCH_PARALLEL)

        async def fetch(call: PlatformCall) -> None:
            async with gate:
                await call.start()

        async with asyncio.timeout(limit_s):
            await asyncio.gather(*(fetch(call) for call in calls))

        send_ms: list[float] = []
        verify_ms: list[float] = []
        failures: Counter[str] = Counter()
        verified = 0

        async def worker(k: int) -> None:
            nonlocal verified
            for r in range(rounds):
                call = calls[k * rounds + r]
                try:
                    call.base_url = agent_urls[(k + r + 1) % replicas]
                    t = time.perf_counter()
                    sent = await call.invoke("send_mfa")
                    send_ms.append((time.perf_counter() - t) * 1000)
                    call.base_url = agent_urls[(k + r + 2) % replicas]
                    t = time.perf_counter()
                    checked = await call.invoke("verify_mfa", token=BENCH_CODE)
                    verify_ms.append((time.perf_counter() - t) * 1000)
                except httpx.HTTPError as exc:
                    failures[f"{type(exc).__name__} talking to the agent"] += 1
                    continue
                if call.global_data.get("mfa_verified") is True:
                    verified += 1
                else:
                    # The failing tool's answer says why (timeout, breaker open, ...).
                    sent_ok = "mfa_request_id" in str(sent.actions)
                    reply = checked if sent_ok else sent
                    failures[f"{'verify' if sent_ok else 'send'}: {reply.response[:70]}"] += 1

        cpu_before = _cpu(agent_pids, fake_pid)
        started = time.perf_counter()
        timed_out = False
        try:
            async with asyncio.timeout(limit_s):
                await asyncio.gather(*(worker(k) for k in range(concurrency)))
        except TimeoutError:
            timed_out = True  # the unfinished calls count as not verified
        wall = time.perf_counter() - started
        cpu_after = _cpu(agent_pids, fake_pid)
    finally:
        for client in clients:
            await client.aclose()

    both = send_ms + verify_ms
    ideal = concurrency / (2 * latency)
    achieved = verified / wall
    cpu_ms_per_call = {
        name: (cpu_after[name] - cpu_before[name]) * 1000 / total for name in cpu_before
    }
    return {
        "concurrency": concurrency,
        "replicas": replicas,
        "calls": total,
        "wall_s": wall,
        "calls_per_s": achieved,
        "ideal_calls_per_s": ideal,
        "fraction_of_ideal": achieved / ideal,
        "p50_ms": median(both),
        "p99_ms": percentile(both, 99),
        "p99_send_ms": percentile(send_ms, 99),
        "p99_verify_ms": percentile(verify_ms, 99),
        "verified_calls": verified,
        "failed_calls": total - verified,
        "failure_kinds": dict(failures.most_common(3)),
        "timed_out": timed_out,
        "cpu_ms_per_call": cpu_ms_per_call,
    }


def _cpu(agent_pids: list[int], fake_pid: int) -> dict[str, float]:
    return {
        "agent": sum(cpu_seconds(pid) for pid in agent_pids),
        "fake": cpu_seconds(fake_pid),
        "load_generator": time.process_time(),
    }
