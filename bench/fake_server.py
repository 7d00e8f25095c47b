"""``python -m bench.fake_server PORT LATENCY``: the loopback fake SignalWire in its own process.

It is ``testkit.fake_signalwire.FakeSignalWire`` with one knob set: every code it texts
is ``BENCH_CODE``. The fake lives in another process than the load generator, so the
generator cannot read ``fake.last_code_for``; a fixed code spares it an extra lookup
request per call that would load the machine being measured.
Verification still goes through the fake's real checks (attempts, single use, expiry).
"""

from __future__ import annotations

import sys

import uvicorn

from testkit.fake_signalwire import FakeSignalWire

BENCH_CODE = "777777"


def sevens(length: int) -> str:
    """``BENCH_CODE`` at the default length; any other length is all sevens too."""
    return "7" * length


def main() -> None:
    port, latency = int(sys.argv[1]), float(sys.argv[2])
    fake = FakeSignalWire(latency=latency, new_code=sevens)
    uvicorn.run(
        fake.app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
