"""``python -m bench.pumping``: an SMS pumping run against real callers, default limits.

The agent (in this process, served on loopback, SignalWire faked on loopback) with the
shipped pumping defaults: 10 texts an hour per prefix, 200 per country, conversion floor
20% once 20 codes were sent (codes younger than 5 minutes not yet counted). The agent-wide
cap is lifted (``agent_sends_per_minute``) so that the pumping rules, not the cap that
stops everyone at once, are what is measured.

1. Pumping: 1,000 calls from 1,000 numbers in 20 prefixes (50 numbers each, interleaved),
   nobody reading a code back. The budget is min(20 x 10, 200) = 200 texts an hour.
2. Real callers, on a fresh agent: 200 callers in 200 prefixes, each reading the code back.
   None may be refused.

Prints texts sent, refusals by limit, and wall time; ``docs/performance.md`` has the figures.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from agent.app import build_agent
from agent.config.settings import load_settings
from agent.ops.platform import PlatformCall
from testkit.agent_env import agent_env, write_config
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread

AUTH = ("bench", "bench-password-not-secret")
PREFIXES = 20
PER_PREFIX = 50
REAL_CALLERS = 200
PARALLEL = 8


def pumped_numbers() -> list[str]:
    """1,000 numbers, 50 in each of 20 prefixes (+1202550 .. +1202569), interleaved."""
    return [f"+1202{550 + p}{i:04d}" for i in range(PER_PREFIX) for p in range(PREFIXES)]


def real_numbers() -> list[str]:
    """200 numbers in 200 prefixes (+1303200 .. +1303399)."""
    return [f"+1303{200 + i}0100" for i in range(REAL_CALLERS)]


async def run_calls(
    url: str, fake: FakeSignalWire, numbers: list[str], *, verify: bool
) -> list[str]:
    """Each number calls once and asks for a code (and reads it back when ``verify``)."""
    outcomes: list[str] = []
    queue = list(numbers)
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def worker() -> None:
            while queue:
                number = queue.pop(0)
                call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=number)
                await call.start()
                sent = await call.invoke("send_mfa")
                if "was texted" not in sent.response:
                    outcomes.append("refused")
                    continue
                if verify:
                    reply = await call.invoke("verify_mfa", token=fake.last_code_for(number))
                    outcomes.append("verified" if "verified" in reply.response else "failed")
                else:
                    outcomes.append("texted")

        await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    return outcomes


async def scenario(numbers: list[str], *, verify: bool) -> dict[str, Any]:
    fake = FakeSignalWire()
    with tempfile.TemporaryDirectory() as tmp, ServerThread(fake.app()) as sw:
        config = write_config(Path(tmp), {"limits": {"agent_sends_per_minute": 100_000}})
        settings = load_settings(
            agent_env(config, auth=AUTH, swaig_secret="bench-secret", signalwire_url=sw.url)
        )
        agent = build_agent(settings)
        limits: Counter[str] = Counter()
        agent.publisher.subscribe(
            lambda event: limits.update([event.limit]) if event.limit else None
        )
        with ServerThread(agent.get_app()) as served:
            started = time.perf_counter()
            outcomes = await run_calls(served.url, fake, numbers, verify=verify)
            seconds = time.perf_counter() - started
    return {
        "calls": len(numbers),
        "texts_sent": len(fake.texts),
        "outcomes": dict(Counter(outcomes)),
        "refused_by_limit": dict(limits),
        "seconds": round(seconds, 1),
    }


async def run() -> dict[str, Any]:
    pumping = await scenario(pumped_numbers(), verify=False)
    real = await scenario(real_numbers(), verify=True)
    return {
        "pumping": {**pumping, "budget": min(PREFIXES * 10, 200)},
        "real_callers": {**real, "refused": real["outcomes"].get("refused", 0)},
    }


def main() -> None:
    logging.disable(logging.WARNING)  # 800 refusals would print 800 log lines
    result = asyncio.run(run())
    for name, figures in result.items():
        print(name)
        for key, value in figures.items():
            print(f"  {key:<18} {value}")


if __name__ == "__main__":
    main()
