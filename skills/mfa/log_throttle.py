"""At most one log line per interval for an alert that can repeat without bound.

An attacker decides how often some lines are written: a refused connection, a
send cap reached, asyncio's "socket.accept() out of system resource" (which
CPython 3.11 logs once per pending connection, thousands of times a second, each
with a traceback). ``RateLimitedLog`` is a ``logging.Filter``: the first record
of a kind in each interval passes, the rest are counted, and the next record
that passes carries that count (``suppressed`` and a ``(+N similar suppressed)``
suffix), so nothing is lost but the repetition.

Attach it to a logger (``logger.addFilter(RateLimitedLog(60))``) or a handler.
A record's kind is its logger, level and the first line of its message template
(the unformatted ``msg``), so "send cap reached for %s" is one kind whatever the
argument. Lives in ``skills`` so that skills and the agent can both use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

Key = tuple[str, int, str]


def record_kind(record: logging.LogRecord) -> Key:
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    return record.name, record.levelno, template.split("\n", 1)[0][:200]


class RateLimitedLog(logging.Filter):
    """Lets through one record of each kind per ``interval`` seconds and counts the rest.

    ``min_level`` leaves records below it alone (e.g. only throttle warnings and
    errors). ``max_kinds`` bounds the memory an attacker could make it use with
    many distinct messages: past it, the oldest kinds are forgotten. ``suffix=False``
    keeps the message as it is (a structured event name) and reports the count only
    in the record's ``suppressed`` attribute, which the JSON formatter prints.
    """

    def __init__(
        self,
        interval: float = 60.0,
        *,
        min_level: int = logging.NOTSET,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1024,
        suffix: bool = True,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.min_level = min_level
        self.clock = clock
        self.max_kinds = max_kinds
        self.suffix = suffix
        # kind -> [when the last record passed, records suppressed since]
        self._seen: dict[Key, list[float]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        kind = record_kind(record)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return False
            suppressed = int(seen[1]) if seen is not None else 0
            self._seen.pop(kind, None)
            self._seen[kind] = [now, 0]
            while len(self._seen) > self.max_kinds:
                del self._seen[next(iter(self._seen))]
        if suppressed:
            record.suppressed = suppressed
            if self.suffix and isinstance(record.msg, str):
                record.msg = f"{record.msg} (+{suppressed} similar suppressed)"
        return True

    def suppressed(self) -> int:
        """Records held back and not yet reported (for tests and metrics)."""
        with self._lock:
            return int(sum(seen[1] for seen in self._seen.values()))


def throttled_alerts(name: str = "mfa.alerts", interval: float = 60.0) -> logging.Logger:
    """The logger for alerts a caller or an attacker can repeat at will (a rate cap
    reached): one line per ``interval`` and kind, the rest counted on the next one."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
        logger.addFilter(RateLimitedLog(interval, min_level=logging.WARNING, suffix=False))
    return logger


class SaidOnce:
    """What was last said about a watched thing (a file's version and why it was not
    taken), so a line repeats when that changes, not at every check of the thing: the
    time-based ``RateLimitedLog`` would say a file that stays bad once a minute forever."""

    _NOTHING: Hashable = object()

    def __init__(self) -> None:
        self._last: Hashable = self._NOTHING

    def first_time(self, what: Hashable) -> bool:
        """True when ``what`` differs from what was last said (and is now said)."""
        if what == self._last:
            return False
        self._last = what
        return True

    def forget(self) -> None:
        """The thing is fine again: the next problem is said, even one said before."""
        self._last = self._NOTHING


class OutageLog:
    """The lines of a dependency a loop keeps trying (the outbox's store): the first
    failure is said at once, later ones at most once per ``interval`` with the count
    held back since (``suppressed``), and the first success after them once, with the
    outage's whole count (``failures``). A loop that polls every second would otherwise
    write a line a second per replica for as long as Redis is down.
    """

    def __init__(
        self,
        logger: logging.Logger,
        down: str,
        back: str,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._down = down
        self._back = back
        self.interval = interval
        self._clock = clock
        self._failures = 0  # in this outage
        self._suppressed = 0  # since the last line
        self._said_at = 0.0

    def failed(self, **extra: object) -> None:
        now = self._clock()
        self._failures += 1
        if self._failures > 1 and now - self._said_at < self.interval:
            self._suppressed += 1
            return
        if self._suppressed:
            extra["suppressed"] = self._suppressed
        self._logger.warning(self._down, extra=extra)
        self._said_at, self._suppressed = now, 0

    def succeeded(self) -> None:
        if self._failures:
            self._logger.warning(self._back, extra={"failures": self._failures})
        self._failures = self._suppressed = 0
