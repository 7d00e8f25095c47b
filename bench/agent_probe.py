"""``python -m bench.agent_probe [OPTIONS]``: ``python -m agent`` with diagnostics.

For finding where the time goes without touching the product's code:

* ``--profile OUT``: run under cProfile; the profile is written when the process is
  stopped with SIGTERM or SIGINT.
* ``--tracemalloc OUT``: trace allocations; the 25 biggest live allocation sites are
  written to OUT (text) when the process is stopped.

(The what-if patches this probe once applied, small upstream pools and sniffio, are in the
product now: ``skills/mfa/delivery/http_pool.py``.)
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import tracemalloc


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_probe")
    parser.add_argument("--profile")
    parser.add_argument("--tracemalloc")
    args = parser.parse_args()
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
