"""The SQLite outbox's group commit: outcomes added at the same moment share one
transaction, each ``add`` returns only once its own entry is committed, and an entry that
cannot be written fails its caller alone.

What is committed is read back through a second connection to the file, as another
process (or the next start) would see it, not through the store under test.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agent.outcomes.entries import DeliveryState, OutboxEntry
from agent.outcomes.outbox_store import SqliteOutbox

pytestmark = pytest.mark.anyio


def entry(n: int, *, id_: str | None = None) -> OutboxEntry:
    return OutboxEntry(
        id=id_ or f"delivery-{n}",
        call_id=f"call-{n}",
        outcome="verified",
        masked_number="+1******0100",
        last4="0100",
        masked_account="",
        handoff=None,
        at=1_700_000_000.0 + n,
        body=b'{"outcome":"verified"}',
        state=DeliveryState.PENDING,
    )


def committed_ids(path: Path) -> set[str]:
    """What another connection to the file sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM outcomes")}


@pytest.fixture
async def outbox(tmp_path: Path):
    store = SqliteOutbox(tmp_path / "outcomes.sqlite3")
    yield store
    await store.aclose()


async def test_each_add_returns_once_its_entry_is_committed(outbox: SqliteOutbox) -> None:
    for n in range(3):
        await outbox.add(entry(n))
        assert f"delivery-{n}" in committed_ids(outbox.path)


async def test_adds_at_the_same_moment_share_transactions(outbox: SqliteOutbox) -> None:
    statements: list[str] = []
    # The connection's own statement trace (read only): how many transactions were begun.
    outbox._db.set_trace_callback(statements.append)

    await asyncio.gather(*(outbox.add(entry(n)) for n in range(50)))

    assert committed_ids(outbox.path) == {f"delivery-{n}" for n in range(50)}
    transactions = sum(1 for s in statements if s.startswith("BEGIN"))
    # One transaction for the first add, one for the 49 queued behind it: never one each.
    assert 1 <= transactions <= 5, statements[:10]


async def test_an_entry_that_cannot_be_written_fails_its_caller_alone(
    outbox: SqliteOutbox,
) -> None:
    await outbox.add(entry(0))

    results = await asyncio.gather(
        *(outbox.add(entry(n)) for n in range(1, 6)),
        outbox.add(entry(99, id_="delivery-0")),  # the same delivery id again: refused
        *(outbox.add(entry(n)) for n in range(6, 11)),
        return_exceptions=True,
    )

    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], sqlite3.IntegrityError)
    assert results.index(failures[0]) == 5
    assert committed_ids(outbox.path) == {f"delivery-{n}" for n in range(11)}


async def test_a_caller_that_stops_waiting_still_has_its_entry_written(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outcomes.sqlite3")
    first = asyncio.create_task(outbox.add(entry(1)))
    gone = asyncio.create_task(outbox.add(entry(2)))
    await asyncio.sleep(0)
    gone.cancel()
    await first
    await outbox.aclose()

    assert committed_ids(outbox.path) == {"delivery-1", "delivery-2"}


async def test_closing_writes_what_was_added_first(tmp_path: Path) -> None:
    store = SqliteOutbox(tmp_path / "outcomes.sqlite3")
    adds = [asyncio.create_task(store.add(entry(n))) for n in range(20)]
    await asyncio.sleep(0)  # every add queued, the first commit under way

    await store.aclose()

    assert all(add.done() and add.exception() is None for add in adds)
    assert committed_ids(store.path) == {f"delivery-{n}" for n in range(20)}
