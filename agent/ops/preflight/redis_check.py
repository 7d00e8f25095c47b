"""Redis: a write, a read and a delete of a key that expires on its own."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from agent.config.settings import Settings
from agent.ops.preflight.lines import FAIL, OK, CheckLine


async def check_redis(settings: Settings) -> list[CheckLine]:
    if not settings.redis_url:
        return []
    from skills.mfa.redis_client import REDIS_ERRORS, connect

    parts = urlsplit(settings.redis_url)
    where = parts.hostname or parts.path or "redis"
    if parts.port:
        where += f":{parts.port}"
    redis = connect(settings.redis_url, timeout=3.0)
    key = f"mfa:preflight:{uuid.uuid4()}"
    try:
        await redis.set(key, b"1", px=30_000)
        read = await redis.get(key)
        await redis.delete(key)
    except REDIS_ERRORS as exc:
        return [
            CheckLine(
                FAIL,
                "redis",
                f"{where} did not take a write and a read ({type(exc).__name__})",
                "start redis-server there, or fix REDIS_URL (redis://host:6379/0)",
            )
        ]
    finally:
        await redis.aclose()
    if read != b"1":
        return [CheckLine(FAIL, "redis", f"{where} did not give back what was written")]
    return [CheckLine(OK, "redis", f"{where} takes a write and a read")]
