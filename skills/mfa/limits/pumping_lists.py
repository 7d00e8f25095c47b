"""The operator's allow and block lists of number ranges for SMS pumping protection.

A lists file names prefixes to block outright and prefixes exempt from the velocity and
conversion limits (``pumping.PumpingGuard``). It is re-read when it changes, taken only
once it has stopped changing, and a bad edit keeps the last good lists and names its line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skills.mfa.log_throttle import SaidOnce

if TYPE_CHECKING:
    pass


log = logging.getLogger("mfa.pumping")


class ListsFileError(ValueError):
    """The lists file cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class PrefixLists:
    allow: frozenset[str] = frozenset()
    block: frozenset[str] = frozenset()

    def verdict(self, e164: str) -> str | None:
        """``allow``, ``block`` or None, by the longest listed prefix of ``e164``."""
        for length in range(len(e164), 1, -1):
            head = e164[:length]
            if head in self.block:
                return "block"
            if head in self.allow:
                return "allow"
        return None


def read_lists_file(path: Path) -> PrefixLists:
    """``allow +44`` / ``block +2347`` lines; raises ``ListsFileError`` naming the line."""
    allow: set[str] = set()
    block: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ListsFileError(f"cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ListsFileError("not a UTF-8 text file") from None
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[0] not in ("allow", "block"):
            raise ListsFileError(f"line {number}: expected 'allow +PREFIX' or 'block +PREFIX'")
        prefix = words[1]
        if not (prefix.startswith("+") and prefix[1:].isascii() and prefix[1:].isdigit()):
            raise ListsFileError(f"line {number}: a prefix is + and 1 to 15 digits")
        if not 1 <= len(prefix) - 1 <= 15:
            raise ListsFileError(f"line {number}: a prefix is + and 1 to 15 digits")
        (allow if words[0] == "allow" else block).add(prefix)
    return PrefixLists(frozenset(allow), frozenset(block))


class ListsFile:
    """``PrefixLists`` from a file, re-read when it changes: at most one ``stat`` per
    ``check_every`` seconds; a changed file is taken only when it has not changed for
    ``settle_seconds`` and is the same after it was read (as the CSV directory does).
    A bad or moving file keeps the lists already loaded, logged once per version."""

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = 1.0,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Loads the file now: a bad file stops start-up (``ListsFileError``)."""
        self.path = path
        self._check_every = check_every
        self._settle = settle_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._stamp = self._stat()
        self.lists = read_lists_file(path)
        self._checked_at = clock()
        # Said once per (version, reason): a file first seen moving and then found bad is one
        # version with two reasons, and a missing file (no version) one reason.
        self._said = SaidOnce()

    def _stat(self) -> tuple[int, int, int]:
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise ListsFileError(f"cannot read the file ({exc.strerror})") from None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def current(self) -> PrefixLists:
        """The lists now; re-reads a changed, settled file (small: read inline)."""
        now = self._clock()
        if now - self._checked_at < self._check_every:
            return self.lists
        self._checked_at = now
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return self.lists
            if self._wall_clock() - stamp[0] / 1e9 < self._settle:
                self._log_once(stamp, "the file changed less than settle_seconds ago")
                return self.lists
            lists = read_lists_file(self.path)
            if self._stat() != stamp:
                self._log_once(stamp, "the file changed while it was read")
                return self.lists
        except ListsFileError as exc:
            self._log_once(self._stamp_or_none(), str(exc))
            return self.lists
        self.lists, self._stamp = lists, stamp
        log.info(
            "pumping_lists_reloaded", extra={"allow": len(lists.allow), "block": len(lists.block)}
        )
        return lists

    def _stamp_or_none(self) -> tuple[int, int, int] | None:
        try:
            return self._stat()
        except ListsFileError:
            return None

    def _log_once(self, stamp: tuple[int, int, int] | None, why: str) -> None:
        if self._said.first_time((stamp, why)):
            log.warning("pumping_lists_kept", extra={"why": why})
