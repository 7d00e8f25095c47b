"""Hand work to a worker's ``asyncio.Queue`` from any thread, without ever blocking.

Three parts feed a queue that a task on the server's event loop drains: the live
stream's readers, the outcome webhook's worker and the Redis event writer. Their
producers run on that loop (async tool handlers) or on a worker thread (the SDK
runs sync handlers and ``on_summary`` in a thread pool). An ``asyncio.Queue`` is
not thread-safe, so a put from another thread must be scheduled on the queue's
loop; a put must never wait, so a full queue is reported instead. These two
steps are the whole pattern, written once here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None`` in a plain thread."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def call_on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """Run ``callback(*args)`` on ``loop``: now when called on that loop, else as soon as
    the loop gets to it. False when ``loop`` is closed, so nothing will ever run it."""
    if running_loop() is loop:
        callback(*args)
        return True
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # closed: its reader or worker is gone
        return False
    return True


def offer(queue: asyncio.Queue[T], item: T) -> bool:
    """Put ``item`` without waiting (on the queue's own loop); False when it is full."""
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True
