"""The event hub: recent events in a ring buffer, fanned out to bounded reader queues.

It knows events only as a ``kind`` and a dict of fields; what an MFA outcome looks
like is ``agent/outcomes/mfa_events.py``'s business, and what the counters count is
``agent/outcomes/counters.py``'s.

Every event gets ``kind``, ``id`` (``"<boot>-<seq>"``, also the SSE ``id:`` field;
``boot`` is random per process, so ids never repeat across a restart and a
reconnecting page can drop what it already has), ``seq`` (increasing within the
process), ``at`` (unix seconds) and ``agent_id``.

The agent never waits for a viewer. ``fan_out`` does a bounded amount of work per
reader: each has its own ``asyncio.Queue`` (``queue_size``) fed without waiting;
when it is full (a slow or vanished client) the event is dropped for that reader
and counted (``EventHub.dropped``, ``Subscription.dropped``). ``fan_out`` may be
called from any thread (the SDK runs ``on_summary`` in a worker thread): a reader
on another thread's loop is fed through ``agent/outcomes/threadsafe_queue.py``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.outcomes.threadsafe_queue import call_on_loop, offer

__all__ = [
    "CLOSED",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_HEARTBEAT_SECONDS",
    "DEFAULT_MAX_SUBSCRIBERS",
    "DEFAULT_QUEUE_SIZE",
    "Counters",
    "EventHub",
    "Record",
    "Subscription",
]

DEFAULT_BUFFER_SIZE = 500
DEFAULT_QUEUE_SIZE = 256
DEFAULT_HEARTBEAT_SECONDS = 15.0
DEFAULT_MAX_SUBSCRIBERS = 100


class Counters(Protocol):
    """Running totals over the events the hub numbers (called under the hub's lock)."""

    def count(self, data: Mapping[str, Any]) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class _NoCounters:
    def count(self, data: Mapping[str, Any]) -> None:
        """Counting nothing."""

    def snapshot(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class Record:
    """One published event: its dict, its ready-to-send SSE frame, its ordering."""

    seq: int
    data: dict[str, Any]
    frame: bytes

    def matches(self, agent_id: str | None, call_id: str | None) -> bool:
        return (agent_id is None or self.data.get("agent_id") == agent_id) and (
            call_id is None or self.data.get("call_id") == call_id
        )


#: What a reader's queue yields after the hub ended its stream.
CLOSED = object()


@dataclass(eq=False)
class Subscription:
    """One reader of the hub: a bounded queue on one event loop."""

    hub: EventHub
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    agent_id: str | None = None
    call_id: str | None = None
    dropped: int = 0
    closed: bool = field(default=False, init=False)

    async def next(self, idle_seconds: float) -> Record | object | None:
        """The next record, ``None`` after ``idle_seconds`` of nothing, or ``CLOSED``."""
        try:
            async with asyncio.timeout(idle_seconds):
                return await self.queue.get()
        except TimeoutError:
            return None

    def ready(self) -> Iterator[Any]:
        """What is already queued, without waiting."""
        while True:
            try:
                yield self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return

    def close(self) -> None:
        self.hub._unsubscribe(self)

    # Runs on ``self.loop`` only.
    def _offer(self, record: Record) -> None:
        if self.closed:
            return
        if not offer(self.queue, record):
            self.dropped += 1
            self.hub._count_drop()

    def _end(self) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(asyncio.QueueEmpty):
            if self.queue.full():
                self.queue.get_nowait()  # make room: the end matters more than one event
        self.queue.put_nowait(CLOSED)


class EventHub:
    """Recent events in a ring buffer, fanned out to bounded per-subscriber queues."""

    def __init__(
        self,
        *,
        agent_id: str = "",
        counters: Counters | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        self.agent_id = agent_id
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.max_subscribers = max_subscribers
        self.boot = secrets.token_hex(4)
        self.dropped = 0
        self._lock = threading.Lock()
        self._buffer: deque[Record] = deque(maxlen=buffer_size)
        self._subscribers: list[Subscription] = []
        self._seq = 0
        self._counters: Counters = counters or _NoCounters()
        self._closed = False

    # -- publishing (any thread) ----------------------------------------------------------

    def publish(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Show one event to this process's readers, stamped with the time it happened."""
        self.fan_out(kind, {"at": time.time(), **fields})

    def fan_out(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Number, buffer and deliver one event to this process's readers; returns the
        event as streamed."""
        with self._lock:
            self._seq += 1
            data: dict[str, Any] = {
                "kind": kind,
                "id": f"{self.boot}-{self._seq}",
                "seq": self._seq,
                "agent_id": self.agent_id,
                "at": time.time(),
            }
            data.update((k, v) for k, v in fields.items() if k not in ("kind", "id", "seq"))
            frame = f"id: {data['id']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
            record = Record(self._seq, data, frame.encode())
            self._buffer.append(record)
            self._counters.count(data)
            targets = [s for s in self._subscribers if record.matches(s.agent_id, s.call_id)]
        for subscription in targets:
            if not call_on_loop(subscription.loop, subscription._offer, record):
                self._unsubscribe(subscription)
        return data

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1

    # -- reading (on an event loop) -------------------------------------------------------

    def subscribe(
        self,
        *,
        agent_id: str | None = None,
        call_id: str | None = None,
        last_event_id: str | None = None,
        queue_size: int | None = None,
    ) -> tuple[Subscription, list[Record]]:
        """Register a reader on the running loop; returns it and the buffered records that
        match, newer than ``last_event_id`` when that id is from this process.

        Raises ``RuntimeError`` when the hub is closed or has ``max_subscribers`` readers.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size or self.queue_size)
        subscription = Subscription(self, loop, queue, agent_id, call_id)
        after = self._seq_after(last_event_id)
        with self._lock:
            if self._closed:
                raise RuntimeError("the live stream is shutting down")
            if len(self._subscribers) >= self.max_subscribers:
                raise RuntimeError("too many live subscribers")
            replay = [r for r in self._buffer if r.seq > after and r.matches(agent_id, call_id)]
            self._subscribers.append(subscription)
        return subscription, replay

    def recent(self, *, agent_id: str | None = None, call_id: str | None = None) -> list[dict]:
        """The buffered events that match, oldest first (copies)."""
        with self._lock:
            return [dict(r.data) for r in self._buffer if r.matches(agent_id, call_id)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._counters.snapshot()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every stream and refuse new ones (shutdown). Safe from a signal handler."""
        with self._lock:
            self._closed = True
        self.end_streams()

    def end_streams(self) -> None:
        """End the open streams (their readers reconnect); the hub stays open."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            with suppress(RuntimeError):
                subscription.loop.call_soon_threadsafe(subscription._end)

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def _seq_after(self, last_event_id: str | None) -> int:
        boot, _, seq = (last_event_id or "").strip().partition("-")
        if boot == self.boot and seq.isdigit():
            return int(seq)
        return 0
