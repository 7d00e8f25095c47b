"""Measurement 5: the line type looked up before each send, at 100 concurrent calls.

Callers come back: the calls are drawn from a pool of ``numbers`` phones, each calling
several times, as a business's customers do. The agent looks each number up once and answers
the rest from its cache (``channels.cache_days``), so the figure that matters is the cache's
hit rate, read from the agent's own ``/metrics`` (``mfa_line_type_lookups_total``), with
the agent's CPU per call with lookups on beside it.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import concurrency, servers
from bench.overhead import caller_number


def _lookups(metrics: str) -> dict[str, float]:
    """``{result: count}`` of ``mfa_line_type_lookups_total``, summed over line types."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "mfa_line_type_lookups_total":
                result = sample.labels["result"]
                counts[result] = counts.get(result, 0.0) + sample.value
    return counts


def run(
    tmp: Path, *, calls: int, numbers: int, concurrent: int, latency: float, limit_s: float
) -> dict[str, Any]:
    fake = servers.start_fake(tmp, latency=latency)
    agent = servers.start_agent(tmp, fake_url=fake.url, name="agent-lookups", lookup=True)
    try:
        pool = itertools.cycle([caller_number(90_000 + i) for i in range(numbers)])
        level = asyncio.run(
            concurrency.run_level(
                [agent.url],
                concurrency=concurrent,
                rounds=max(1, calls // concurrent),
                latency=latency,
                agent_pids=[agent.pid],
                fake_pid=fake.pid,
                limit_s=limit_s,
                callers=lambda: next(pool),
            )
        )
        metrics = httpx.get(agent.url + "/metrics", auth=servers.DASHBOARD, timeout=10).text
    finally:
        servers.stop(agent)
        servers.stop(fake)
    counts = _lookups(metrics)
    total = sum(counts.values())
    return {
        "calls": calls,
        "numbers": numbers,
        "concurrency": concurrent,
        "lookups": counts,
        "hit_rate": counts.get("cached", 0.0) / total if total else 0.0,
        "level": level,
    }
