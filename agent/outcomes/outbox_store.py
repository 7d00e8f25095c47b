"""Where final outcomes are kept until delivered and for the history: the store protocol
and its SQLite file (one process; ``redis_outbox.py`` for replicas).

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed write survives the
process being killed (SIGKILL, a crash, a deploy), which is what the outbox promises;
only a power cut may lose the last commits. Every statement runs on one dedicated
thread, so the event loop never waits on the disk and the connection is never shared
between threads.
"""

from __future__ import annotations

import asyncio
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
        await self._run(
            lambda: self._db.execute(
                f"INSERT INTO outcomes ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row
            )
        )

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
