"""``python -m agent.healthcheck``: exit 0 when this machine's agent answers ``/health``.

The container's ``HEALTHCHECK`` runs it: the slim and Debian bases ship neither curl nor
wget, and a plain ``urllib`` would go through an ``HTTP_PROXY`` set for the agent's own
outbound calls. It asks ``127.0.0.1`` on ``PORT`` (what the agent listens on) directly.
"""

from __future__ import annotations

import http.client
import os
import sys

TIMEOUT_SECONDS = 4.0


def healthy(port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main() -> int:
    try:
        port = int(os.environ.get("PORT", "3000"))
    except ValueError:
        print("healthcheck: PORT is not a number", file=sys.stderr)
        return 2
    return 0 if healthy(port) else 1


if __name__ == "__main__":
    sys.exit(main())
