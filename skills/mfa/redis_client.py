"""The one way the skill and the agent open Redis, and the errors that mean "Redis is down".

Apart from ``redis_state`` (the stores themselves) so that a part which only needs to know
whether an error is an outage (the pumping guard, the directory's misses, the event relay,
``check``) does not load every store's scripts.
"""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import Redis

REDIS_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


def connect(url: str, *, timeout: float = 1.0) -> Redis:
    """One client (a connection pool) per process, with short timeouts: a caller waits."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=15,
        decode_responses=False,
    )


async def ping(redis: Redis) -> bool:
    """Whether Redis answers now: the readiness check of the shared state."""
    try:
        return bool(await redis.ping())
    except REDIS_ERRORS:
        return False
