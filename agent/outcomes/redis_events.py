"""One live event stream for all replicas, on a capped Redis stream.

Every replica appends its events to ``mfa:events`` (``XADD ... MAXLEN ~ 500``)
and every replica reads that stream into its own ``EventHub``, so an event
published on replica B shows on replica A's ``/events`` and ``/live``. On
start a replica first loads the stream's newest entries: the replay buffer is
the shared stream, not what one process happened to see.

Appending never blocks a tool: events go through a bounded queue to a writer
task. While Redis is unreachable, events are shown locally instead (and the
reader retries every second), so the page keeps working on one replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from agent.outcomes.threadsafe_queue import call_on_loop, offer
from skills.mfa.redis_client import REDIS_ERRORS

log = logging.getLogger("mfa.redis_events")

STREAM_KEY = "mfa:events"
_QUEUE_SIZE = 1000

#: Shows one event to this process's readers (``EventHub.fan_out``).
Show = Callable[[str, Mapping[str, Any]], object]


class RedisEventRelay:
    """Offers ``publish`` (where events go), ``start``/``stop`` (its two tasks) and
    ``ready`` (this replica's reader is connected)."""

    def __init__(
        self, redis: Redis, *, show: Show, key: str = STREAM_KEY, max_len: int = 500
    ) -> None:
        self._redis = redis
        self._show_here = show
        self._key = key
        self._max_len = max_len
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.redis_healthy = False
        self.dropped = 0

    def publish(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Queue the event for Redis, stamped with the time it happened; while the stream
        is not running or Redis is unreachable, show it here instead."""
        fields = {"at": time.time(), **fields}
        loop = self._loop
        if self._queue is None or loop is None or not self.redis_healthy:
            self._show_here(kind, fields)
        elif not call_on_loop(loop, self._enqueue, kind, fields):
            self._show_here(kind, fields)  # the server's loop has closed

    def _enqueue(self, kind: str, fields: dict[str, Any]) -> None:
        assert self._queue is not None
        if not offer(self._queue, (kind, fields)):
            self.dropped += 1
            self._show_here(kind, fields)

    async def ready(self) -> bool:
        """Readiness: else events published here would not reach the other replicas."""
        return self.redis_healthy

    async def start(self) -> None:
        """Start the writer and the reader on the running loop (the server's)."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="mfa-events-writer"),
            asyncio.create_task(self._read_forever(), name="mfa-events-reader"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _write_forever(self) -> None:
        assert self._queue is not None
        while True:
            kind, fields = await self._queue.get()
            entry = json.dumps({"kind": kind, "fields": fields}, separators=(",", ":"))
            try:
                await self._redis.xadd(
                    self._key, {"e": entry}, maxlen=self._max_len, approximate=True
                )
            except REDIS_ERRORS:
                self.redis_healthy = False
                self._show_here(kind, fields)  # show it here rather than lose it

    async def _read_forever(self) -> None:
        last_id: str | None = None
        while True:
            try:
                if last_id is None:
                    last_id = await self._load_recent()
                    self.redis_healthy = True
                # Block for less than the client's socket timeout (1 s), or every quiet
                # wait would read as an outage.
                entries = await self._redis.xread({self._key: last_id}, block=500, count=100)
                self.redis_healthy = True
                for _stream, items in entries or []:
                    for entry_id, values in items:
                        last_id = _text(entry_id)
                        self._show(values)
            except REDIS_ERRORS:
                if self.redis_healthy:
                    log.warning("event_stream_unavailable")
                self.redis_healthy = False
                await asyncio.sleep(1.0)

    async def _load_recent(self) -> str:
        newest_first = await self._redis.xrevrange(self._key, count=self._max_len)
        for _entry_id, values in reversed(newest_first):
            self._show(values)
        return _text(newest_first[0][0]) if newest_first else "0-0"

    def _show(self, values: dict[Any, Any]) -> None:
        try:
            event = json.loads(values.get(b"e") or values.get("e"))
            self._show_here(str(event["kind"]), dict(event["fields"]))
        except (TypeError, ValueError, KeyError):
            log.warning("event_stream_entry_unreadable")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
