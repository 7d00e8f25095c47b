"""``python -m bench.fake_server PORT LATENCY``: the loopback fake SignalWire in its own process.

It is ``tests.support.fake_signalwire.FakeSignalWire`` unchanged except for one thing:
every code it texts is ``BENCH_CODE``. The fake lives in another process than the
load generator, so the generator cannot read ``fake.last_code_for``; a fixed code
spares it an extra lookup request per call that would load the machine being measured.
Verification still goes through the fake's real checks (attempts, single use, expiry).
"""

from __future__ import annotations

import secrets
import sys

import uvicorn

import tests.support.fake_signalwire as fake_module

BENCH_CODE = "777777"


class _FixedDigits:
    """Stands in for the ``secrets`` module inside the fake only."""

    compare_digest = staticmethod(secrets.compare_digest)

    @staticmethod
    def choice(alphabet: str) -> str:
        return "7"


def main() -> None:
    port, latency = int(sys.argv[1]), float(sys.argv[2])
    fake_module.secrets = _FixedDigits()  # type: ignore[assignment]
    fake = fake_module.FakeSignalWire(latency=latency)
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
