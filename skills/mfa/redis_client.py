"""The one way the skill and the agent open Redis, and the errors that mean "Redis is down".

Apart from ``redis_state`` (the stores themselves) so that a part which only needs to know
whether an error is an outage (the pumping guard, the directory's misses, the event relay,
``check``) does not load every store's scripts.

Redis is reached one of two ways: a URL (``REDIS_URL``: one server, or an address that
some other mechanism keeps pointing at the primary), or Redis Sentinel (``REDIS_SENTINELS``
and ``REDIS_SENTINEL_MASTER``: a ``SentinelTarget``). With Sentinel every new connection
asks the sentinels for the current primary (``redis.asyncio.sentinel``), so after a failover
the stores reconnect to the promoted replica by themselves; ``redis_failover`` is logged,
with the old and the new primary's address, the first time this process connects there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

log = logging.getLogger("mfa.redis")

REDIS_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


@dataclass(frozen=True)
class SentinelTarget:
    """The primary that Redis Sentinel names: ``master`` as the sentinels monitor it."""

    sentinels: tuple[tuple[str, int], ...]
    master: str

    def describe(self) -> str:
        """For logs and ``check``: the master's name and the sentinels (no secrets)."""
        return f"{self.master} via sentinels " + ",".join(_address(a) for a in self.sentinels)


RedisTarget = str | SentinelTarget


def connect(target: RedisTarget, *, timeout: float = 1.0) -> Redis:
    """One client (a connection pool) per process, with short timeouts: a caller waits."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry_on_timeout": False,
        "health_check_interval": 15,
        "decode_responses": False,
    }
    if isinstance(target, SentinelTarget):
        return _connect_via_sentinels(target, options)
    return Redis.from_url(target, **options)


async def ping(redis: Redis) -> bool:
    """Whether Redis answers now: the readiness check of the shared state."""
    try:
        return bool(await redis.ping())
    except REDIS_ERRORS:
        return False


# -- Sentinel -------------------------------------------------------------------------------


class _FollowingPool(SentinelConnectionPool):
    """The primary's pool: asks the sentinels on every new connection (as redis-py does)
    and logs when the answer moves, which is a failover seen from this process."""

    async def get_master_address(self) -> Any:
        before = self.master_address
        address = await super().get_master_address()
        if before is not None and address != before:
            log.warning(
                "redis_failover",
                extra={
                    "master": self.service_name,
                    "old_primary": _address(before),
                    "new_primary": _address(address),
                },
            )
        return address


class _SentinelRedis(Redis):
    """The primary's client; closing it closes the connections to the sentinels too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            await self.sentinel.aclose()


def _connect_via_sentinels(target: SentinelTarget, options: dict[str, Any]) -> Redis:
    # The sentinels get the same short timeouts and no retries: asking the next sentinel
    # is the retry (redis-py's discover_master goes down the list).
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
        },
    )
    client = sentinel.master_for(
        target.master,
        redis_class=_SentinelRedis,
        connection_pool_class=_FollowingPool,
        **options,
    )
    client.sentinel = sentinel
    return client


def _address(address: Any) -> str:
    host, port = address
    host = host.decode() if isinstance(host, bytes) else str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
