"""Where the sandbox keeps its pending codes: the ``PendingCodes`` protocol and SQLite.

A pending code is stored as ``sha256(salt + code)`` with a random per-row salt,
never in clear. That keeps a code out of backups, logs and casual ``SELECT``\\s;
it is not a defence against someone holding the store, since a 6-digit space is
searched in a blink. The real protection is the short lifetime: a row is deleted
the moment it is used or runs out of attempts, and expired rows are swept away.

``SqlitePendingCodes`` (a file: one process, or several sharing a disk) lives
here; ``RedisPendingCodes`` (replicas on several machines) lives in
``skills/mfa/stores/redis_state.py`` with the rest of the Redis state. The rules a
code obeys (length, lifetime, attempts) are the sandbox's, in ``sandbox.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from skills.mfa.delivery.providers.base import CodeNotFound, ProviderUnavailable, VerifyOutcome

#: Expired rows are kept this long before a send sweeps them away. Keeping them a while
#: costs nothing (they already answer ``CodeNotFound``) and makes the sweep rare work.
EXPIRED_RETENTION_SECONDS = 3600.0

#: How long a call waits for another writer (thread or process) before giving up.
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS pending_codes (
        request_id    TEXT PRIMARY KEY,
        salt          BLOB NOT NULL,
        code_hash     TEXT NOT NULL,
        expires_at    REAL NOT NULL,
        attempts_left INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS pending_codes_expires_at ON pending_codes (expires_at)",
)

_T = TypeVar("_T")


def hash_code(salt: bytes, code: str) -> str:
    """One SHA-256: a few microseconds, so verify stays far below a millisecond.

    A slow KDF would buy nothing here: the code space is tiny and rows live minutes.
    """
    return hashlib.sha256(salt + code.encode("utf-8")).hexdigest()


class PendingCodes(Protocol):
    """Where the sandbox keeps pending codes: a SQLite file here, Redis for replicas.

    ``check`` must be one atomic step (read, compare, count the try, delete when used
    or dead), so two simultaneous right answers verify exactly once.
    """

    async def insert(
        self,
        request_id: str,
        salt: bytes,
        code_hash: str,
        expires_at: float,
        max_attempts: int,
        now: float,
    ) -> None: ...

    async def delete(self, request_id: str) -> None: ...

    async def check(self, request_id: str, code: str, now: float) -> VerifyOutcome: ...


class SqlitePendingCodes(PendingCodes):
    """Pending codes in a SQLite file.

    Connection per call: every operation opens its own connection inside the worker
    thread that ``asyncio.to_thread`` gives it, and closes it before returning.
    ``sqlite3`` connections must not be shared between threads without a lock, and a lock
    would only repeat what SQLite already does across processes: ``BEGIN IMMEDIATE`` plus
    the busy timeout serialize writers whether they are threads, tasks or other processes,
    so one mechanism covers all three. It also leaves no state tied to an event loop or a
    thread, so an instance works across ``asyncio.run`` calls and loops. Opening a
    connection to a local file costs tens of microseconds, well within a voice turn.

    The schema and WAL mode are set up once in the constructor (synchronously, at startup):
    WAL is a property of the file, so every later connection gets it, and readers never
    block the single writer.
    """

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        finally:
            conn.close()

    async def insert(
        self,
        request_id: str,
        salt: bytes,
        code_hash: str,
        expires_at: float,
        max_attempts: int,
        now: float,
    ) -> None:
        row = (request_id, salt, code_hash, expires_at)
        await self._run(self._insert, row, max_attempts, now)

    async def delete(self, request_id: str) -> None:
        await self._run(self._delete, request_id)

    async def check(self, request_id: str, code: str, now: float) -> VerifyOutcome:
        return await self._run(self._check, request_id, code, now)

    def pending_count(self, now: float) -> int:
        """A single indexed ``COUNT``; blocks for the length of one small read."""
        conn = self._connect()
        try:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM pending_codes WHERE expires_at > ?", (now,)
            ).fetchone()
        finally:
            conn.close()
        return int(count)

    # -- blocking work, run in a worker thread -------------------------------------------

    def _insert(self, conn: sqlite3.Connection, row: tuple, max_attempts: int, now: float) -> None:
        # The sweep rides in the same write transaction: one indexed range DELETE that
        # usually touches nothing, so the table cannot grow without bound.
        conn.execute(
            "DELETE FROM pending_codes WHERE expires_at < ?", (now - EXPIRED_RETENTION_SECONDS,)
        )
        conn.execute(
            "INSERT INTO pending_codes (request_id, salt, code_hash, expires_at, attempts_left)"
            " VALUES (?, ?, ?, ?, ?)",
            (*row, max_attempts),
        )

    def _delete(self, conn: sqlite3.Connection, request_id: str) -> None:
        conn.execute("DELETE FROM pending_codes WHERE request_id = ?", (request_id,))

    def _check(
        self, conn: sqlite3.Connection, request_id: str, code: str, now: float
    ) -> VerifyOutcome:
        found = conn.execute(
            "SELECT salt, code_hash, expires_at, attempts_left FROM pending_codes"
            " WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if found is None:
            raise CodeNotFound("unknown, used or out of attempts")
        salt, code_hash, expires_at, attempts_left = found
        if now >= expires_at:
            raise CodeNotFound("expired")
        if attempts_left <= 0:  # not stored by this module, but be strict about old rows
            raise CodeNotFound("out of attempts")
        remaining = attempts_left - 1
        if hmac.compare_digest(hash_code(salt, code), code_hash):
            conn.execute("DELETE FROM pending_codes WHERE request_id = ?", (request_id,))
            return VerifyOutcome(verified=True, attempts_left=remaining)
        if remaining == 0:
            conn.execute("DELETE FROM pending_codes WHERE request_id = ?", (request_id,))
        else:
            conn.execute(
                "UPDATE pending_codes SET attempts_left = ? WHERE request_id = ?",
                (remaining, request_id),
            )
        return VerifyOutcome(verified=False, attempts_left=remaining)

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, work: Callable[..., _T], *args: object) -> _T:
        return await asyncio.to_thread(self._transaction, work, *args)

    def _transaction(self, work: Callable[..., _T], *args: object) -> _T:
        """Run ``work`` inside one ``BEGIN IMMEDIATE`` transaction on a fresh connection.

        ``IMMEDIATE`` takes the write lock before the first read, so the read-check-write
        in ``_check`` cannot interleave with another verify of the same row. A domain
        error (``CodeNotFound``) rolls back like any other; SQLite failures become
        ``ProviderUnavailable`` with ``may_have_arrived=False`` since a failed transaction
        leaves nothing behind.
        """
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise ProviderUnavailable("sqlite", may_have_arrived=False) from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn, *args)
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back on error
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise ProviderUnavailable("sqlite", may_have_arrived=False) from exc
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of letting the
        # module open deferred transactions behind our back. synchronous=NORMAL is safe
        # with WAL against process crashes and avoids an fsync on every commit.
        conn = sqlite3.connect(
            self.db_path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
