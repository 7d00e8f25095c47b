"""Where final outcomes are kept until delivered and for the history: the store protocol
and its SQLite file (one process; ``redis_outbox.py`` for replicas).

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed write survives the
process being killed (SIGKILL, a crash, a deploy), which is what the outbox promises;
only a power cut may lose the last commits. Every statement runs on one dedicated
thread, so the event loop never waits on the disk and the connection is never shared
between threads.

Adds are committed in groups: the outcomes that arrive while a commit is under way are
written together in the next transaction (one trip to the thread, one commit), and each
``add`` returns only once the transaction holding its entry has committed. A batch that
fails is written again one entry at a time, so only an entry that cannot be written
fails its caller.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.outcomes.entries import DeliveryState, HistoryQuery, OutboxEntry

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS outcomes (
        id             TEXT PRIMARY KEY,
        call_id        TEXT NOT NULL,
        outcome        TEXT NOT NULL,
        masked_number  TEXT NOT NULL,
        last4          TEXT NOT NULL,
        masked_account TEXT NOT NULL,
        handoff        TEXT,
        at             REAL NOT NULL,
        body           BLOB NOT NULL,
        state          TEXT NOT NULL,
        attempts       INTEGER NOT NULL,
        next_at        REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes (at)",
    "CREATE INDEX IF NOT EXISTS outcomes_call ON outcomes (call_id, at)",
    "CREATE INDEX IF NOT EXISTS outcomes_last4 ON outcomes (last4, at)",
    "CREATE INDEX IF NOT EXISTS outcomes_due ON outcomes (state, next_at)",
)
_COLUMNS = (
    "id, call_id, outcome, masked_number, last4, masked_account, handoff, at, body, "
    "state, attempts, next_at"
)
_INSERT = f"INSERT INTO outcomes ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


class OutboxStore(Protocol):
    """Durable outcomes: written once, moved from pending to delivered or dead."""

    name: str

    async def add(self, entry: OutboxEntry) -> None:
        """Keep ``entry``; return once it is durable."""
        ...

    async def due(self, now: float, limit: int, busy: Collection[str]) -> list[OutboxEntry]:
        """Up to ``limit`` pending entries whose next attempt is due, none of ``busy``
        (attempts under way here). With replicas, only entries this one holds."""
        ...

    async def settle(
        self, entry_id: str, state: DeliveryState, attempts: int, next_at: float
    ) -> None:
        """Record an attempt's result: still pending (retry at ``next_at``), delivered
        or dead."""
        ...

    async def history(self, query: HistoryQuery) -> list[OutboxEntry]:
        """Entries matching ``query``, newest first."""
        ...

    async def purge(self, before: float) -> int:
        """Drop the entries of outcomes older than ``before``; how many went."""
        ...

    async def pending(self) -> int:
        """How many outcomes still wait for delivery."""
        ...

    async def oldest_pending_at(self) -> float | None:
        """When the oldest outcome that still waits for delivery happened (unix seconds);
        ``None`` when none waits."""
        ...

    async def aclose(self) -> None: ...


class SqliteOutbox:
    """The outbox in a SQLite file, for one process."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        """Opens (and creates) the file now, so an unusable path stops start-up."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mfa-outbox")
        # Entries waiting for the next group commit, each with the future its add awaits.
        self._queued: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def add(self, entry: OutboxEntry) -> None:
        row = (
            entry.id,
            entry.call_id,
            entry.outcome,
            entry.masked_number,
            entry.last4,
            entry.masked_account,
            json.dumps(entry.handoff) if entry.handoff is not None else None,
            entry.at,
            entry.body,
            str(entry.state),
            entry.attempts,
            entry.next_at,
        )
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        self._queued.append((row, committed))
        if self._committer is None:
            self._committer = loop.create_task(self._commit_queued(), name="mfa-outbox-commit")
        # A caller that stops waiting (cancelled) leaves its entry in the batch: it is
        # written all the same, as a write already handed to the thread always was.
        await committed

    async def _commit_queued(self) -> None:
        """Commit what is queued, then what was queued meanwhile, until nothing is left."""
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                rows = [row for row, _ in batch]
                try:
                    failures = await self._run(functools.partial(self._insert, rows))
                except asyncio.CancelledError:
                    for _, committed in batch + self._queued:
                        committed.cancel()
                    raise
                except Exception as exc:  # the thread could not run it at all
                    failures = [exc] * len(batch)
                for (_, committed), failure in zip(batch, failures, strict=True):
                    if committed.done():
                        continue
                    if failure is None:
                        committed.set_result(None)
                    else:
                        committed.set_exception(failure)
        finally:
            self._committer = None

    def _insert(self, rows: list[tuple[Any, ...]]) -> list[Exception | None]:
        """On the thread: one transaction for ``rows``; if it fails, each row alone.
        Returns, per row, None once committed or the error that kept it out."""
        if len(rows) > 1:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(_INSERT, rows)
                    self._db.execute("COMMIT")
                    return [None] * len(rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except Exception:
                pass  # each row alone below: only a row that cannot be written fails
        failures: list[Exception | None] = []
        for row in rows:
            try:
                self._db.execute(_INSERT, row)
                failures.append(None)
            except Exception as exc:
                failures.append(exc)
        return failures

    async def due(self, now: float, limit: int, busy: Collection[str]) -> list[OutboxEntry]:
        def select() -> list[OutboxEntry]:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outcomes WHERE state = ? AND next_at <= ? "
                "ORDER BY next_at LIMIT ?",
                (str(DeliveryState.PENDING), now, limit + len(busy)),
            ).fetchall()
            return [entry for entry in map(_entry, rows) if entry.id not in busy][:limit]

        return await self._run(select)

    async def settle(
        self, entry_id: str, state: DeliveryState, attempts: int, next_at: float
    ) -> None:
        await self._run(
            lambda: self._db.execute(
                "UPDATE outcomes SET state = ?, attempts = ?, next_at = ? WHERE id = ?",
                (str(state), attempts, next_at, entry_id),
            )
        )

    async def history(self, query: HistoryQuery) -> list[OutboxEntry]:
        where, params = ["1 = 1"], []
        if query.call_id is not None:
            where.append("call_id = ?")
            params.append(query.call_id)
        if query.last4 is not None:
            where.append("last4 = ?")
            params.append(query.last4)
        if query.since is not None:
            where.append("at >= ?")
            params.append(query.since)
        sql = (
            f"SELECT {_COLUMNS} FROM outcomes WHERE {' AND '.join(where)} ORDER BY at DESC LIMIT ?"
        )
        rows = await self._run(lambda: self._db.execute(sql, (*params, query.limit)).fetchall())
        return [_entry(row) for row in rows]

    async def purge(self, before: float) -> int:
        cursor = await self._run(
            lambda: self._db.execute("DELETE FROM outcomes WHERE at < ?", (before,))
        )
        return cursor.rowcount

    async def pending(self) -> int:
        row = await self._run(
            lambda: self._db.execute(
                "SELECT COUNT(*) FROM outcomes WHERE state = ?", (str(DeliveryState.PENDING),)
            ).fetchone()
        )
        return int(row[0])

    async def oldest_pending_at(self) -> float | None:
        row = await self._run(
            lambda: self._db.execute(
                "SELECT MIN(at) FROM outcomes WHERE state = ?", (str(DeliveryState.PENDING),)
            ).fetchone()
        )
        return None if row[0] is None else float(row[0])

    async def aclose(self) -> None:
        if self._committer is not None:
            await asyncio.shield(self._committer)  # what was added is written first
        await self._run(self._db.close)
        self._thread.shutdown(wait=True)


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    (
        entry_id,
        call_id,
        outcome,
        masked,
        last4,
        account,
        handoff,
        at,
        body,
        state,
        attempts,
        nxt,
    ) = row
    return OutboxEntry(
        id=entry_id,
        call_id=call_id,
        outcome=outcome,
        masked_number=masked,
        last4=last4,
        masked_account=account,
        handoff=json.loads(handoff) if handoff is not None else None,
        at=at,
        body=bytes(body),
        state=DeliveryState(state),
        attempts=attempts,
        next_at=nxt,
    )
