"""``GET /events`` (Server-Sent Events) and ``GET /live`` (the page), behind the dashboard's
credentials (checked before the routes, in ``agent/http/ingress.py``).

``/events`` streams the hub's events, filterable with ``?agent_id=`` and ``?call_id=``:
on connect it replays the buffered events that match (newer than ``Last-Event-ID``
when that id is from this process), then sends live ones, with a ``: ping`` comment
after ``heartbeat_seconds`` of silence and an ``event: stats`` frame (the hub's
counters) whenever they change. ``/live`` is one self-contained page
(``live_page.html``: inline CSS and JS under a nonce CSP, nothing loaded from
elsewhere, every dynamic value written with ``textContent``) that shows calls from
that stream.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from agent.outcomes.hub import CLOSED, EventHub, Record

#: What EventSource waits before reconnecting (sent as the stream's ``retry:``).
RECONNECT_MS = 2000
_MAX_FILTER_LENGTH = 128

_PAGE = Path(__file__).with_name("live_page.html").read_text(encoding="utf-8")


def live_router(
    hub: EventHub,
    *,
    agent_name: str,
    sandbox: bool,
    warning: str = "",
) -> APIRouter:
    """The two routes; who may open them is decided before them (``agent/http/ingress.py``).
    A ``warning`` is shown as a banner at the top of the page (e.g. the sandbox beside an
    account)."""
    router = APIRouter()

    @router.get("/events")
    async def events(request: Request) -> Response:
        agent_id = _filter_param(request, "agent_id")
        call_id = _filter_param(request, "call_id")
        last_event_id = request.headers.get("last-event-id")
        if hub.subscriber_count >= hub.max_subscribers:
            return PlainTextResponse("Too many live viewers", status_code=503)
        return StreamingResponse(
            _stream(hub, agent_id, call_id, last_event_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/live")
    async def live() -> Response:
        nonce = secrets.token_urlsafe(16)
        page = (
            _PAGE.replace("{{NONCE}}", nonce)
            .replace("{{AGENT}}", html.escape(agent_name))
            .replace("{{SANDBOX}}", "true" if sandbox else "false")
            .replace("{{WARNING_HIDDEN}}", "" if warning else "hidden")
            .replace("{{WARNING}}", html.escape(warning))
        )
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; "
                    f"style-src 'nonce-{nonce}'; connect-src 'self'; img-src data:; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                ),
                "Referrer-Policy": "no-referrer",
            },
        )

    return router


def _filter_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value[:_MAX_FILTER_LENGTH] if value else None


def _stats_frame(hub: EventHub) -> bytes:
    return f"event: stats\ndata: {json.dumps(hub.stats(), separators=(',', ':'))}\n\n".encode()


async def _stream(
    hub: EventHub, agent_id: str | None, call_id: str | None, last_event_id: str | None
) -> AsyncIterator[bytes]:
    """The SSE body. Subscribes on first iteration so an unstarted response leaks nothing."""
    try:
        subscription, replay = hub.subscribe(
            agent_id=agent_id, call_id=call_id, last_event_id=last_event_id
        )
    except RuntimeError:
        return
    try:
        # The first chunk is sent only once subscribed: a reader that has it misses nothing.
        yield f"retry: {RECONNECT_MS}\n: connected\n\n".encode()
        if replay:
            yield b"".join(record.frame for record in replay)
        stats_sent = _stats_frame(hub)
        yield stats_sent
        while True:
            item = await subscription.next(hub.heartbeat_seconds)
            if item is None:
                yield b": ping\n\n"
                continue
            batch = [item, *subscription.ready()]
            frames = [x.frame for x in batch if isinstance(x, Record)]
            if frames:
                yield b"".join(frames)
            if any(x is CLOSED for x in batch):
                return
            stats = _stats_frame(hub)
            if stats != stats_sent:
                stats_sent = stats
                yield stats
    finally:
        subscription.close()
