"""The process's one shared ``httpx.AsyncClient`` (``new_shared_client``) and its transport.

httpcore's connection pool scans every pooled connection for every request it
starts or finishes (encode/httpcore#1035), so its cost grows with the square of
the pool: at 100 concurrent calls a single 100-connection pool took 43% of the
agent's CPU. ``ShardedTransport`` keeps the one client (one set of timeouts,
headers and auth handling) but spreads requests round-robin over several small
pools, each with every connection allowed to stay alive, so the scan stays short
however many calls are in flight.

``post_retrying_unsent`` is the one retry rule both HTTP clients (SignalWire's API and the
business's account directory) follow: retry only a request that never left.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx

SHARD_SIZE = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, shards: list[httpx.AsyncBaseTransport]) -> None:
        if not shards:
            raise ValueError("at least one shard")
        self._shards = shards
        self._next = itertools.cycle(shards)

    @classmethod
    def for_connections(
        cls, max_connections: int, *, keepalive_expiry: float = 30.0
    ) -> ShardedTransport:
        count = max(1, -(-max_connections // SHARD_SIZE))
        per_shard = max(1, -(-max_connections // count))
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry,
        )
        # One TLS context for all shards: loading the CA bundle costs ~15 ms each time.
        tls = httpx.create_ssl_context()
        return cls(
            [httpx.AsyncHTTPTransport(verify=tls, limits=limits, retries=0) for _ in range(count)]
        )

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def new_shared_client(
    *,
    deadline_seconds: float,
    connect_timeout_seconds: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The process's one pooled client: explicit timeouts, bounded pools, no env proxies.

    Without a test transport, connections are spread over small pools
    (``ShardedTransport``): one big httpcore pool costs CPU quadratic in its size.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            deadline_seconds,
            connect=connect_timeout_seconds,
            pool=connect_timeout_seconds,
        ),
        transport=transport or ShardedTransport.for_connections(max_connections),
        headers={"User-Agent": "mfa-digital-employee/0.1", "Accept": "application/json"},
        trust_env=False,
        follow_redirects=False,
    )


class NoAnswer(Exception):
    """A POST that got no HTTP answer. ``kind`` is ``connect`` (no connection was opened:
    nothing reached the server), ``timeout`` or ``transport`` (it may have arrived)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"no answer: {kind}")
        self.kind = kind
        self.may_have_arrived = kind != "connect"


async def post_retrying_unsent(
    http: httpx.AsyncClient, url: str, *, retries: int = 1, **request: Any
) -> httpx.Response:
    """POST ``url``, retrying only when no connection was opened.

    A request that may have reached the server (a send may have gone out, a try may have
    been used) is never retried blindly. Callers bound the whole call with their own
    deadline and turn ``NoAnswer`` into their domain's error.
    """
    for attempt in range(retries + 1):
        try:
            return await http.post(url, **request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            if attempt == retries:
                raise NoAnswer("connect") from None
            await asyncio.sleep(0.05)
        except httpx.TimeoutException:
            raise NoAnswer("timeout") from None
        except httpx.HTTPError:
            raise NoAnswer("transport") from None
    raise AssertionError("unreachable")  # pragma: no cover
