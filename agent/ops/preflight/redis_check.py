"""Redis: a write, a read and a delete of a key that expires on its own.

With Redis Sentinel the write goes to the primary the sentinels name now, so the line
says which one that is."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from agent.config.settings import Settings
from agent.ops.preflight.lines import FAIL, OK, CheckLine


async def check_redis(settings: Settings) -> list[CheckLine]:
    target = settings.redis_target
    if not target:
        return []
    from skills.mfa.redis_client import REDIS_ERRORS, SentinelTarget, connect

    if isinstance(target, SentinelTarget):
        where = target.describe()
        fix = (
            "start the sentinels, or fix REDIS_SENTINELS (host:port,...) and "
            "REDIS_SENTINEL_MASTER (the name in their 'sentinel monitor' line)"
        )
    else:
        parts = urlsplit(target)
        where = parts.hostname or parts.path or "redis"
        if parts.port:
            where += f":{parts.port}"
        fix = "start redis-server there, or fix REDIS_URL (redis://host:6379/0)"
    redis = connect(target, timeout=3.0)
    key = f"mfa:preflight:{uuid.uuid4()}"
    try:
        await redis.set(key, b"1", px=30_000)
        read = await redis.get(key)
        await redis.delete(key)
        if isinstance(target, SentinelTarget):
            host, port = await redis.connection_pool.get_master_address()
            where += f" (primary now {_text(host)}:{port})"
    except REDIS_ERRORS as exc:
        return [
            CheckLine(
                FAIL,
                "redis",
                f"{where} did not take a write and a read ({type(exc).__name__})",
                fix,
            )
        ]
    finally:
        await redis.aclose()
    if read != b"1":
        return [CheckLine(FAIL, "redis", f"{where} did not give back what was written")]
    return [CheckLine(OK, "redis", f"{where} takes a write and a read")]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
