"""``python -m bench.agent_probe [OPTIONS]``: ``python -m agent`` with diagnostics.

For finding where the time goes without touching the product's code:

* ``--profile OUT``: run under cProfile; the profile is written when the process is
  stopped with SIGTERM or SIGINT.
* ``--keepalive-all``: let the agent's upstream pool keep every connection alive
  (``max_keepalive_connections = max_connections``) instead of half of them.
* ``--shard-size N``: give the provider several small pools of at most N connections
  each (round robin, same total) instead of one big one; httpcore 1.0.x scans every
  pooled connection, several times over, on every request, so its cost per request
  grows with the size of the pool.
* ``--tracemalloc OUT``: trace allocations; the 25 biggest live allocation sites are
  written to OUT (text) when the process is stopped.
* ``--sniffio-shim``: provide the ``sniffio`` module httpcore asks for on every lock it
  sets up; without it each ask is a failed import that searches ``sys.path``.

The patches only simulate possible fixes inside this process; no file is changed.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import signal
import sys
import tracemalloc
import types
from typing import Any


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def install_sniffio_shim() -> None:
    shim = types.ModuleType("sniffio")
    shim.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = shim


def install_keepalive_all() -> None:
    import agent.app as app

    original = app.new_shared_client

    def keep_all(**kwargs: Any) -> Any:
        client = original(**kwargs)
        client._transport._pool._max_keepalive_connections = kwargs["max_connections"]
        return client

    app.new_shared_client = keep_all


class ShardedClient:
    """``post`` spread round robin over several ``httpx.AsyncClient``s."""

    def __init__(self, clients: list[Any]) -> None:
        self._clients = clients
        self._next = itertools.cycle(clients)

    async def post(self, *args: Any, **kwargs: Any) -> Any:
        return await next(self._next).post(*args, **kwargs)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients[0], name)


def install_sharded_pool(shard_size: int) -> None:
    import agent.app as app

    original = app.new_shared_client

    def sharded(**kwargs: Any) -> Any:
        shards = max(1, -(-kwargs["max_connections"] // shard_size))
        per_shard = -(-kwargs["max_connections"] // shards)
        return ShardedClient(
            [original(**{**kwargs, "max_connections": per_shard}) for _ in range(shards)]
        )

    app.new_shared_client = sharded


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_probe")
    parser.add_argument("--profile")
    parser.add_argument("--keepalive-all", action="store_true")
    parser.add_argument("--sniffio-shim", action="store_true")
    parser.add_argument("--shard-size", type=int, default=0)
    parser.add_argument("--tracemalloc")
    args = parser.parse_args()
    if args.sniffio_shim:
        install_sniffio_shim()
    if args.keepalive_all:
        install_keepalive_all()
    if args.shard_size:
        install_sharded_pool(args.shard_size)

    from agent.cli import main as agent_main

    signal.signal(signal.SIGTERM, _exit)
    if args.tracemalloc:
        tracemalloc.start(8)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        agent_main([])
    except SystemExit:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        if args.tracemalloc:
            top = tracemalloc.take_snapshot().statistics("traceback")[:25]
            with open(args.tracemalloc, "w") as out:
                for stat in top:
                    print(f"{stat.size / 1e6:.2f} MB in {stat.count} blocks", file=out)
                    print("\n".join(stat.traceback.format(limit=8)), file=out)


if __name__ == "__main__":
    main()
