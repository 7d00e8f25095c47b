"""``GET /outcomes`` (JSON) and ``GET /outcomes.csv``: the kept final outcomes, newest first.

Filters: ``call_id`` (exact), ``last4`` (four digits), ``since`` (an ISO 8601 time;
without a zone, UTC), ``limit`` (1 to 1000, default 100). A bad value is a 400 naming
the parameter. Rows hold masked numbers only. The CSV is meant to be opened in a
spreadsheet, so a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading ``'`` (OWASP "CSV Injection"): nothing in a cell runs as a formula.
Who may read them is decided before the routes, in ``agent/http/ingress.py``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from agent.outcomes.entries import DEFAULT_LIMIT, MAX_LIMIT, HistoryQuery, OutboxEntry

History = Callable[[HistoryQuery], Awaitable[list[OutboxEntry]]]

CSV_COLUMNS = (
    "call_id",
    "outcome",
    "number",
    "account",
    "handoff",
    "at",
    "delivery_state",
    "delivery_attempts",
    "provider",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MAX_CALL_ID = 128
_NO_STORE = {"Cache-Control": "no-store"}


class BadQuery(ValueError):
    """A filter of ``/outcomes`` that cannot be used; the message names it."""


def parse_query(params: dict[str, str]) -> HistoryQuery:
    call_id = params.get("call_id") or None
    if call_id is not None and len(call_id) > _MAX_CALL_ID:
        raise BadQuery(f"call_id: at most {_MAX_CALL_ID} characters")
    last4 = params.get("last4") or None
    if last4 is not None and not (len(last4) == 4 and last4.isascii() and last4.isdigit()):
        raise BadQuery("last4: exactly four digits, e.g. last4=0001")
    since = None
    if params.get("since"):
        try:
            moment = datetime.fromisoformat(params["since"])
        except ValueError:
            raise BadQuery("since: an ISO 8601 time, e.g. since=2026-01-31T09:00:00Z") from None
        since = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    limit = DEFAULT_LIMIT
    if params.get("limit"):
        text = params["limit"]
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
            raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    return HistoryQuery(call_id=call_id, last4=last4, since=since, limit=limit)


def history_router(history: History) -> APIRouter:
    router = APIRouter()

    async def rows(request: Request) -> list[OutboxEntry] | Response:
        try:
            query = parse_query(dict(request.query_params))
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=_NO_STORE)
        return await history(query)

    @router.get("/outcomes")
    async def outcomes(request: Request) -> Response:
        found = await rows(request)
        if isinstance(found, Response):
            return found
        return JSONResponse(
            {"outcomes": [entry.history_row() for entry in found]}, headers=_NO_STORE
        )

    @router.get("/outcomes.csv")
    async def outcomes_csv(request: Request) -> Response:
        found = await rows(request)
        if isinstance(found, Response):
            return found
        return Response(
            to_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={**_NO_STORE, "Content-Disposition": 'attachment; filename="outcomes.csv"'},
        )

    return router


def to_csv(entries: list[OutboxEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = entry.history_row()
        delivery = row["delivery"] or {}
        writer.writerow(
            [
                safe_cell(value)
                for value in (
                    row["call_id"],
                    row["outcome"],
                    row["subject"]["number"] or "",
                    row["subject"]["account"] or "",
                    _handoff_text(row["handoff"]),
                    row["at"],
                    delivery.get("state", ""),
                    delivery.get("attempts", ""),
                    row["provider"] or "",
                )
            ]
        )
    return out.getvalue()


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _handoff_text(handoff: object) -> str:
    if isinstance(handoff, dict):
        return " ".join(str(value) for value in handoff.values())
    return str(handoff) if handoff else ""
