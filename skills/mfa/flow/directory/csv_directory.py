"""The embedded directory: a CSV file with the header ``account_number,phone_number``.

Numbers may be written in any common format (``+1 202 555 0199``, ``(202) 555-0199``,
``202.555.0199``); they are read with ``phonenumbers`` at load time, in the region of
``MFA_FROM_NUMBER`` when they have no ``+``, and each must be a *valid* number for its
country (``phone.is_valid_e164``), not merely the right length. A row that does not
parse, or an account listed twice, stops start-up with ``DirectoryFileError`` naming the
line (and never the value: it is personal data).

The file is re-read when it changes: a lookup checks its modification time, size and
inode at most once per ``check_every`` seconds (one ``stat``), and a changed file is
parsed on a worker thread, so a large file never stalls the event loop.

A file is never taken half written. An editor or a script that rewrites the file in
place (``open(path, "w")``) leaves it truncated for a moment; a lookup in that moment
once texted ``+44 7700 90012``, a stranger, instead of ``+44 7700 900123``. So a changed
file is taken only when it has not changed for ``settle_seconds`` (its modification time
is that old) and its size and modification time are the same before and after it was
read; a truncated number is also no *valid* number. A file that is still moving waits
for a later lookup; a file that fails keeps the table already loaded. Either is logged
once per version of the file. Operators should still replace the file atomically (write
a new file, then rename it over the old one): README, "Verify the account holder".
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from skills.mfa.flow.directory.base import file_account
from skills.mfa.log_throttle import SaidOnce
from skills.mfa.phone import is_valid_e164, to_e164

log = logging.getLogger("mfa.directory")

HEADER = ("account_number", "phone_number")


class DirectoryFileError(ValueError):
    """The file cannot be used; the message names the line, never its values."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


Stamp = tuple[int, int, int]


def read_directory_file(path: Path, default_region: str | None) -> dict[str, str]:
    """The table ``account -> E.164`` in ``path``; raises ``DirectoryFileError``."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return _read_rows(handle, default_region)
    except OSError as exc:
        raise DirectoryFileError(f"cannot read the file ({exc.strerror})") from None
    except (csv.Error, UnicodeDecodeError):
        raise DirectoryFileError("not a UTF-8 CSV file") from None


def _read_rows(handle: TextIO, default_region: str | None) -> dict[str, str]:
    rows = csv.reader(handle)
    header = next(rows, None)
    names = [name.strip().lower() for name in header or []]
    if not all(name in names for name in HEADER):
        raise DirectoryFileError("the header must be account_number,phone_number", 1)
    account_at, phone_at = names.index(HEADER[0]), names.index(HEADER[1])
    table: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(account_at, phone_at):
            raise DirectoryFileError("expected account_number,phone_number", line)
        account = file_account(row[account_at])
        if account is None:
            raise DirectoryFileError("account_number must be digits (spaces and dashes ok)", line)
        number = to_e164(row[phone_at], default_region)
        if number is None:
            raise DirectoryFileError("phone_number does not read as a phone number", line)
        if not is_valid_e164(number):
            raise DirectoryFileError("phone_number is not a valid number for its country", line)
        if account in table:
            raise DirectoryFileError(
                f"account_number already listed on line {first_line[account]}", line
            )
        table[account] = number
        first_line[account] = line
    return table


def _stamp(path: Path) -> Stamp:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class CsvDirectory:
    """``Directory`` over a CSV file, reloaded when the file changes."""

    name = "csv"

    def __init__(
        self,
        path: Path,
        *,
        default_region: str | None,
        check_every: float = 1.0,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Loads the file now: a bad file stops start-up (``DirectoryFileError``).

        ``wall_clock`` is compared with the file's modification time (``settle_seconds``)."""
        self.path = path
        self._region = default_region
        self._check_every = check_every
        self._settle = settle_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._moving = SaidOnce()  # a version still changing, said once
        self._unreadable = SaidOnce()  # why the file cannot be stat'd, said once
        try:
            self._stamp: Stamp | None = _stamp(path)
        except OSError as exc:
            raise DirectoryFileError(f"cannot read the file ({exc.strerror})") from None
        self._table = read_directory_file(path, default_region)
        self._checked_at = clock()
        self._reloading = False
        log.info("directory_loaded", extra={"kind": self.name, "accounts": len(self._table)})

    def __len__(self) -> int:
        return len(self._table)

    async def lookup(self, account: str) -> str | None:
        await self.reload_if_changed()
        return self._table.get(account)

    async def reload_if_changed(self) -> None:
        """One ``stat`` at most every ``check_every`` seconds; a changed file is re-read
        once it has settled, and taken only if it did not change while it was read."""
        now = self._clock()
        if self._reloading or now - self._checked_at < self._check_every:
            return
        self._checked_at = now
        try:
            stamp = _stamp(self.path)
        except OSError as exc:
            # Once, not at every check (once a second): the table stays until it is back.
            if self._unreadable.first_time(exc.strerror):
                log.error("directory_reload_failed", extra={"why": exc.strerror, "kept": len(self)})
            return
        self._unreadable.forget()
        if stamp == self._stamp:
            return
        if self._wall_clock() - stamp[0] / 1e9 < self._settle:
            self._still_moving(stamp, "the file changed less than settle_seconds ago")
            return
        self._reloading = True
        try:
            table = await asyncio.to_thread(read_directory_file, self.path, self._region)
            after = _stamp(self.path)
        except DirectoryFileError as exc:
            # Keep serving the last good table; try again when the file changes again.
            self._stamp = stamp
            log.error("directory_reload_failed", extra={"why": str(exc), "kept": len(self)})
            return
        except OSError as exc:
            log.error("directory_reload_failed", extra={"why": exc.strerror, "kept": len(self)})
            return
        finally:
            self._reloading = False
        if after != stamp:
            self._still_moving(after, "the file changed while it was read")
            return
        self._table, self._stamp = table, stamp
        self._moving.forget()
        log.info("directory_reloaded", extra={"kind": self.name, "accounts": len(table)})

    def _still_moving(self, stamp: Stamp, why: str) -> None:
        """The old table stays; said once per version of the file, not once per lookup."""
        if self._moving.first_time(stamp):
            log.warning("directory_reload_waiting", extra={"why": why, "kept": len(self)})
