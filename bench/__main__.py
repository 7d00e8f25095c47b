"""``python -m bench [--quick] [--json PATH]``: run the four measurements, print, save JSON."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import concurrency, footprint, lookups, overhead, report, servers

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_S = 0.2


@dataclass(frozen=True)
class Plan:
    overhead_repeats: int
    overhead_samples: int
    overhead_warmup: int
    levels: dict[int, tuple[int, int]]  # concurrent calls -> (rounds per worker, repeats)
    footprint_codes: int
    footprint_launches: int
    replica_levels: tuple[int, ...] = ()  # also run these on two replicas sharing Redis
    footprint_parallel: int = 50
    cap_s: int = 900
    big_pool_from: int = 500  # levels from here on get an agent with upstream pool 1000
    lookup_calls: int = 500  # measurement 5: calls with the line-type lookup on,
    lookup_numbers: int = 100  # drawn from this many phones (callers come back)
    pools: dict[str, int] = field(default_factory=lambda: {"default": 100, "big": 1000})


FULL = Plan(
    overhead_repeats=3,
    overhead_samples=200,
    overhead_warmup=20,
    levels={1: (10, 3), 10: (10, 3), 100: (5, 3), 500: (2, 2)},
    replica_levels=(100,),
    footprint_codes=10_000,
    footprint_launches=3,
    cap_s=900,
)
QUICK = Plan(
    lookup_calls=40,
    lookup_numbers=10,
    overhead_repeats=2,
    overhead_samples=30,
    overhead_warmup=5,
    levels={1: (5, 1), 10: (3, 1)},
    footprint_codes=500,
    footprint_launches=1,
    cap_s=120,
)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _git_state() -> str:
    """The commit measured, and whether files outside bench/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=servers.REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=servers.REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = [line for line in status if not line[3:].startswith("bench/")]
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    print("bench: hard time cap reached; stopping every process it started", file=sys.stderr)
    servers.stop_all()
    raise SystemExit(124)


def phase(name: str) -> float:
    print(f"-- {name} ...", flush=True)
    return time.perf_counter()


def run_overhead(plan: Plan, tmp: Path) -> dict[str, Any]:
    started = phase("1+2 per-request overhead and SWML (fake answers at once)")
    fake = servers.start_fake(tmp, latency=0.0)
    try:
        agent = servers.start_agent(tmp, fake_url=fake.url)
        try:
            bare = servers.start_bare(tmp)
            try:
                runs = [
                    asyncio.run(
                        overhead.one_run(
                            agent.url,
                            bare.url,
                            fake.url,
                            samples=plan.overhead_samples,
                            warmup=plan.overhead_warmup,
                        )
                    )
                    for _ in range(plan.overhead_repeats)
                ]
            finally:
                servers.stop(bare)
        finally:
            servers.stop(agent)
    finally:
        servers.stop(fake)
    summary = report.summarize_overhead(runs)
    summary["runs"] = runs
    summary["phase_s"] = time.perf_counter() - started
    return summary


LEVEL_LIMIT_S = 90


def _levels_on(
    agents: list[servers.Server], fake: servers.Server, plan: Plan, ns: list[int]
) -> list[dict[str, Any]]:
    out = []
    for n in ns:
        rounds, repeats = plan.levels[n]
        runs = [
            asyncio.run(
                concurrency.run_level(
                    [agent.url for agent in agents],
                    concurrency=n,
                    rounds=rounds,
                    latency=LATENCY_S,
                    agent_pids=[agent.pid for agent in agents],
                    fake_pid=fake.pid,
                    limit_s=LEVEL_LIMIT_S,
                )
            )
            for _ in range(repeats)
        ]
        level = report.summarize_level(runs)
        level["runs"] = runs
        out.append(level)
        print(
            f"   {n:>4} concurrent on {len(agents)} agent(s): "
            f"{level['calls_per_s']:.1f} verified calls/s "
            f"({level['fraction_of_ideal'] * 100:.0f}% of ideal), p99 {level['p99_ms']:.0f} ms, "
            f"failed {level['failed_calls']}",
            flush=True,
        )
    return out


def run_concurrency(plan: Plan, tmp: Path) -> dict[str, Any]:
    started = phase(f"3 concurrency (fake answers after {LATENCY_S * 1000:.0f} ms)")
    levels: list[dict[str, Any]] = []
    fake = servers.start_fake(tmp, latency=LATENCY_S)
    try:
        small = [n for n in plan.levels if n < plan.big_pool_from]
        big = [n for n in plan.levels if n >= plan.big_pool_from]
        for pool, group in ((plan.pools["default"], small), (plan.pools["big"], big)):
            if not group:
                continue
            agent = servers.start_agent(tmp, fake_url=fake.url, max_connections=pool)
            try:
                for level in _levels_on([agent], fake, plan, group):
                    level["agent_pool"] = pool
                    levels.append(level)
            finally:
                servers.stop(agent)
        replicas = _replica_levels(plan, tmp, fake)
    finally:
        servers.stop(fake)
    return {
        "latency_s": LATENCY_S,
        "ideal_formula": "ideal calls/s = concurrency / (2 * upstream latency)",
        "achieved_formula": "achieved calls/s = calls that ended verified / timed wall time",
        "processes": "load generator (this process), agent (python -m agent) and fake "
        "SignalWire (python -m bench.fake_server) each in its own process",
        "load_generator": f"{concurrency.WORKERS_PER_CLIENT} workers per httpx client",
        "levels": levels,
        "replicas": replicas,
        "phase_s": time.perf_counter() - started,
    }


def _replica_levels(plan: Plan, tmp: Path, fake: servers.Server) -> list[dict[str, Any]]:
    """The same load on two agent processes sharing one Redis, requests alternating."""
    from testkit.redis_server import RedisServer

    if not plan.replica_levels:
        return []
    if not RedisServer.available():
        print("   replicas: skipped (no redis-server; apt-get install redis-server)")
        return []
    redis = RedisServer().start()
    agents: list[servers.Server] = []
    try:
        for name in ("replica-a", "replica-b"):
            agents.append(
                servers.start_agent(tmp, fake_url=fake.url, name=name, redis_url=redis.url)
            )
        levels = _levels_on(agents, fake, plan, list(plan.replica_levels))
        for level in levels:
            level["agent_pool"] = plan.pools["default"]
            level["setup"] = "2 replicas + Redis"
        return levels
    finally:
        for agent in agents:
            servers.stop(agent)
        redis.stop()


def run_lookups(plan: Plan, tmp: Path) -> dict[str, Any]:
    concurrent = min(100, plan.lookup_calls)
    started = phase(
        f"5 line types ({plan.lookup_calls} calls from {plan.lookup_numbers} phones, "
        f"{concurrent} concurrent, lookup on)"
    )
    result = lookups.run(
        tmp,
        calls=plan.lookup_calls,
        numbers=plan.lookup_numbers,
        concurrent=concurrent,
        latency=LATENCY_S,
        limit_s=LEVEL_LIMIT_S,
    )
    print(
        f"   lookup cache hit rate {result['hit_rate'] * 100:.0f}% "
        f"({result['lookups']}), agent CPU {result['level']['cpu_ms_per_call']['agent']:.1f} "
        "ms per call",
        flush=True,
    )
    result["phase_s"] = time.perf_counter() - started
    return result


def run_footprint(plan: Plan, tmp: Path) -> dict[str, Any]:
    started = phase(f"4 footprint (sandbox, {plan.footprint_codes} codes)")
    result = asyncio.run(
        footprint.run(
            tmp,
            launches=plan.footprint_launches,
            codes=plan.footprint_codes,
            parallel=plan.footprint_parallel,
            limit_s=420,
        )
    )
    result["phase_s"] = time.perf_counter() - started
    return result


def _print_log_tails(tmp: Path) -> None:
    for log in sorted(tmp.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-5:]
        print(f"== {log.name}", *lines, sep="\n", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples, levels 1 and 10")
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mode": "quick" if args.quick else "full",
        "commit": _git_state(),
        "plan": asdict(plan),
        "loadavg": {"before": _loadavg()},
    }
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(plan.cap_s)
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": meta}
    try:
        with tempfile.TemporaryDirectory(prefix="mfa-bench-") as tmp_name:
            tmp = Path(tmp_name)
            try:
                results["overhead"] = run_overhead(plan, tmp)
                results["concurrency"] = run_concurrency(plan, tmp)
                results["lookups"] = run_lookups(plan, tmp)
                results["footprint"] = run_footprint(plan, tmp)
            except BaseException:
                _print_log_tails(tmp)
                raise
    finally:
        signal.alarm(0)
        servers.stop_all()
    meta["loadavg"]["after"] = _loadavg()
    meta["total_s"] = time.perf_counter() - started

    table = report.rows(results)
    results["table"] = table
    results["markdown"] = report.markdown_table(table)
    print()
    print(
        f"MFA agent benchmark ({meta['mode']}), {meta['date']}, commit {meta['commit']}, "
        f"{meta['cpu_count']} cores, Python {meta['python']}, total {meta['total_s']:.0f} s"
    )
    print(report.text_table(table))
    print()
    print(report.caveat(meta))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
