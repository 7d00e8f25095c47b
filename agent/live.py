"""The live view: MFA events streamed to operators as they happen.

``EventHub`` subscribes to the agent's ``EventPublisher`` and keeps the last
``buffer_size`` events in memory. ``GET /events`` is a Server-Sent Events
stream of them (same basic auth as the agent), filterable with ``?agent_id=``
and ``?call_id=``: on connect it replays the buffered events that match, then
sends live ones, with a ``: ping`` comment after ``heartbeat_seconds`` of
silence. ``GET /live`` is one self-contained page (``live_page.html``: inline CSS
and JS under a nonce CSP, nothing loaded from elsewhere) that shows calls from
that stream.

Every event is one JSON object with ``kind`` (``mfa``, ``sandbox_text`` or
``summary``), ``id`` (``"<boot>-<seq>"``, also the SSE ``id:`` field; ``boot``
is random per process, so ids never repeat across a restart and a reconnecting
page can drop what it already has), ``seq`` (increasing within the process),
``at`` (unix seconds) and ``agent_id``. An event never holds a code, a request
id, a token or a full phone number, with one deliberate exception: a
``sandbox_text`` (sandbox provider only) is the text the sandbox "sent", code
included, because in the sandbox the operator's screen is the phone.

Besides events the stream sends ``event: stats`` frames, today's counters
(UTC day): calls, codes sent, verified, failed.

The agent never waits for a viewer. ``publish`` does a bounded amount of work
per subscriber: each has its own ``asyncio.Queue`` (``queue_size``) fed with
``put_nowait``; when it is full (a slow or vanished client) the event is
dropped for that subscriber and counted (``EventHub.dropped``,
``Subscription.dropped``). ``publish`` may be called from any thread (the SDK
runs ``on_summary`` in a worker thread): a subscriber on another thread's loop
is fed with ``loop.call_soon_threadsafe``.

An open stream would hold uvicorn's graceful shutdown forever (it waits for
every response to finish), so on SIGINT/SIGTERM the hub closes the streams
before uvicorn's own handler runs (see ``_close_streams_on_exit_signals``).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
import signal
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from agent.settings import ProviderName, Settings
from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.phone import mask_number
from skills.mfa.providers.sandbox import SandboxText

if TYPE_CHECKING:
    from agent.app import MfaAgent

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_HEARTBEAT_SECONDS",
    "DEFAULT_QUEUE_SIZE",
    "EventHub",
    "Subscription",
    "install_live_features",
    "live_router",
]

log = logging.getLogger("mfa.live")

DEFAULT_BUFFER_SIZE = 500
DEFAULT_QUEUE_SIZE = 256
DEFAULT_HEARTBEAT_SECONDS = 15.0
DEFAULT_MAX_SUBSCRIBERS = 100
#: What EventSource waits before reconnecting (sent as the stream's ``retry:``).
RECONNECT_MS = 2000

#: Outcomes the "failed" counter counts: the caller could not be verified this way.
FAILED_OUTCOMES = frozenset(
    {
        Outcome.EXHAUSTED,
        Outcome.EXPIRED,
        Outcome.SEND_FAILED,
        Outcome.PROVIDER_UNAVAILABLE,
        Outcome.PROVIDER_REJECTED,
        Outcome.OTHER_NUMBER_REFUSED,
        Outcome.NO_CALLER_NUMBER,
        Outcome.INVALID_NUMBER,
        Outcome.RATE_LIMITED,
        Outcome.COUNTRY_REFUSED,
        Outcome.NUMBER_TYPE_REFUSED,
        Outcome.ERROR,
    }
)

_SUMMARY_TEXT_MAX = 300
# Four or more digits, possibly spaced or punctuated: a code or a phone number the
# model wrote into its summary despite being told not to.
_DIGIT_RUN = re.compile(r"\d(?:[\s.\-()]*\d){3,}")
_MAX_FILTER_LENGTH = 128


@dataclass(frozen=True, slots=True)
class _Record:
    """One published event: its dict, its ready-to-send SSE frame, its ordering."""

    seq: int
    data: dict[str, Any]
    frame: bytes

    def matches(self, agent_id: str | None, call_id: str | None) -> bool:
        return (agent_id is None or self.data.get("agent_id") == agent_id) and (
            call_id is None or self.data.get("call_id") == call_id
        )


_CLOSED = object()


@dataclass(eq=False)
class Subscription:
    """One reader of the hub: a bounded queue on one event loop."""

    hub: EventHub
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    agent_id: str | None = None
    call_id: str | None = None
    dropped: int = 0
    closed: bool = field(default=False, init=False)

    async def next(self, idle_seconds: float) -> _Record | object | None:
        """The next record, ``None`` after ``idle_seconds`` of nothing, or ``_CLOSED``."""
        try:
            async with asyncio.timeout(idle_seconds):
                return await self.queue.get()
        except TimeoutError:
            return None

    def ready(self) -> Iterator[Any]:
        """What is already queued, without waiting."""
        while True:
            try:
                yield self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return

    def close(self) -> None:
        self.hub._unsubscribe(self)

    # Runs on ``self.loop`` only.
    def _offer(self, record: _Record) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            self.hub._count_drop()

    def _end(self) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(asyncio.QueueEmpty):
            if self.queue.full():
                self.queue.get_nowait()  # make room: the end matters more than one event
        self.queue.put_nowait(_CLOSED)


class _DailyStats:
    """Today's counters (UTC day). Calls are told apart by call id in a bounded LRU."""

    _MAX_TRACKED_CALLS = 10_000

    def __init__(self) -> None:
        self.day = ""
        self.calls = self.codes_sent = self.verified = self.failed = 0
        self._calls_seen: OrderedDict[str, None] = OrderedDict()

    def count(self, data: Mapping[str, Any]) -> None:
        self._roll(_utc_day(data.get("at")))
        call_id = data.get("call_id") or ""
        if call_id in self._calls_seen:
            self._calls_seen.move_to_end(call_id)
        else:
            self.calls += 1
            self._calls_seen[call_id] = None
            if len(self._calls_seen) > self._MAX_TRACKED_CALLS:
                self._calls_seen.popitem(last=False)
        outcome = data.get("outcome")
        if outcome == Outcome.CODE_SENT:
            self.codes_sent += 1
        elif outcome == Outcome.VERIFIED:
            self.verified += 1
        elif outcome in FAILED_OUTCOMES:
            self.failed += 1

    def snapshot(self) -> dict[str, Any]:
        self._roll(_utc_day(time.time()))
        return {
            "day": self.day,
            "calls": self.calls,
            "codes_sent": self.codes_sent,
            "verified": self.verified,
            "failed": self.failed,
        }

    def _roll(self, day: str) -> None:
        if day > self.day:
            self.day = day
            self.calls = self.codes_sent = self.verified = self.failed = 0
            self._calls_seen.clear()


def _utc_day(at: Any) -> str:
    seconds = at if isinstance(at, int | float) else time.time()
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


class EventHub:
    """Recent events in a ring buffer, fanned out to bounded per-subscriber queues."""

    def __init__(
        self,
        *,
        agent_id: str = "",
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        self.agent_id = agent_id
        self.queue_size = queue_size
        self.heartbeat_seconds = heartbeat_seconds
        self.max_subscribers = max_subscribers
        self.boot = secrets.token_hex(4)
        self.dropped = 0
        self._lock = threading.Lock()
        self._buffer: deque[_Record] = deque(maxlen=buffer_size)
        self._subscribers: list[Subscription] = []
        self._seq = 0
        self._stats = _DailyStats()
        self._closed = False
        # Set when replicas share one stream (agent/redis_events.py): local events go to
        # the relay, and come back through ``fan_out`` on every replica, this one included.
        # It returns False when it cannot take the event, which is then shown locally.
        self.relay: Callable[[str, dict[str, Any]], bool] | None = None

    # -- publishing (any thread) ----------------------------------------------------------

    def publish_mfa(self, event: MfaEvent) -> None:
        """``EventPublisher`` subscriber: one tool outcome."""
        self.publish("mfa", event.to_dict())

    def publish_sandbox_text(self, text: SandboxText) -> None:
        """The sandbox outbox. Never raises: a failure here must not fail the delivery."""
        try:
            fields = {"to": mask_number(text.to), "body": text.body, "sandbox": True}
            self.publish("sandbox_text", {**fields, "at": text.sent_at})
        except Exception:
            log.exception("live_publish_failed")

    def publish_summary(self, call_id: Any, summary: Any) -> None:
        """The post-prompt summary's safe fields only; digit runs in its text are redacted."""
        try:
            said = summary if isinstance(summary, Mapping) else {}
            outcome = said.get("outcome")
            self.publish(
                "summary",
                {
                    "call_id": call_id[:128] if isinstance(call_id, str) else "",
                    "verified": _bool_or_none(said.get("verified")),
                    "code_sent": _bool_or_none(said.get("code_sent")),
                    "outcome": _safe_text(outcome) if isinstance(outcome, str) else None,
                },
            )
        except Exception:
            log.exception("live_publish_failed")

    def publish(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Show one event: through the shared relay when there is one, else here."""
        fields = {"at": time.time(), **fields}
        if self.relay is not None and self.relay(kind, fields):
            return
        self.fan_out(kind, fields)

    def fan_out(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Number, buffer and deliver one event to this process's readers; returns the
        event as streamed."""
        with self._lock:
            self._seq += 1
            data: dict[str, Any] = {
                "kind": kind,
                "id": f"{self.boot}-{self._seq}",
                "seq": self._seq,
                "agent_id": self.agent_id,
                "at": time.time(),
            }
            data.update((k, v) for k, v in fields.items() if k not in ("kind", "id", "seq"))
            frame = f"id: {data['id']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
            record = _Record(self._seq, data, frame.encode())
            self._buffer.append(record)
            if kind == "mfa":
                self._stats.count(data)
            targets = [s for s in self._subscribers if record.matches(s.agent_id, s.call_id)]
        for subscription in targets:
            self._deliver(subscription, record)
        return data

    def _deliver(self, subscription: Subscription, record: _Record) -> None:
        try:
            on_its_loop = asyncio.get_running_loop() is subscription.loop
        except RuntimeError:
            on_its_loop = False
        if on_its_loop:
            subscription._offer(record)
            return
        try:
            subscription.loop.call_soon_threadsafe(subscription._offer, record)
        except RuntimeError:  # that loop is closed: the reader is gone
            self._unsubscribe(subscription)

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1

    # -- reading (on an event loop) -------------------------------------------------------

    def subscribe(
        self,
        *,
        agent_id: str | None = None,
        call_id: str | None = None,
        last_event_id: str | None = None,
        queue_size: int | None = None,
    ) -> tuple[Subscription, list[_Record]]:
        """Register a reader on the running loop; returns it and the buffered records that
        match, newer than ``last_event_id`` when that id is from this process.

        Raises ``RuntimeError`` when the hub is closed or has ``max_subscribers`` readers.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size or self.queue_size)
        subscription = Subscription(self, loop, queue, agent_id, call_id)
        after = self._seq_after(last_event_id)
        with self._lock:
            if self._closed:
                raise RuntimeError("the live stream is shutting down")
            if len(self._subscribers) >= self.max_subscribers:
                raise RuntimeError("too many live subscribers")
            replay = [r for r in self._buffer if r.seq > after and r.matches(agent_id, call_id)]
            self._subscribers.append(subscription)
        return subscription, replay

    def recent(self, *, agent_id: str | None = None, call_id: str | None = None) -> list[dict]:
        """The buffered events that match, oldest first (copies)."""
        with self._lock:
            return [dict(r.data) for r in self._buffer if r.matches(agent_id, call_id)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.snapshot()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every stream and refuse new ones (shutdown). Safe from a signal handler."""
        with self._lock:
            self._closed = True
        self.end_streams()

    def end_streams(self) -> None:
        """End the open streams (their readers reconnect); the hub stays open."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            with suppress(RuntimeError):
                subscription.loop.call_soon_threadsafe(subscription._end)

    def _unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def _seq_after(self, last_event_id: str | None) -> int:
        boot, _, seq = (last_event_id or "").strip().partition("-")
        if boot == self.boot and seq.isdigit():
            return int(seq)
        return 0


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _safe_text(text: str) -> str:
    return _DIGIT_RUN.sub("[redacted]", text[:_SUMMARY_TEXT_MAX].replace("\n", " "))


def _stats_frame(hub: EventHub) -> bytes:
    return f"event: stats\ndata: {json.dumps(hub.stats(), separators=(',', ':'))}\n\n".encode()


# -- HTTP -------------------------------------------------------------------------------------


def live_router(agent: MfaAgent, hub: EventHub, *, sandbox: bool) -> APIRouter:
    """``GET /events`` (SSE) and ``GET /live`` (the page), both behind the agent's basic auth."""
    router = APIRouter()

    def unauthorized() -> Response:
        return PlainTextResponse(
            "Unauthorized", status_code=401, headers={"WWW-Authenticate": "Basic"}
        )

    @router.get("/events")
    async def events(request: Request) -> Response:
        if not agent._check_basic_auth(request):
            return unauthorized()
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
    async def live(request: Request) -> Response:
        if not agent._check_basic_auth(request):
            return unauthorized()
        nonce = secrets.token_urlsafe(16)
        page = (
            _PAGE.replace("{{NONCE}}", nonce)
            .replace("{{AGENT}}", html.escape(agent.name))
            .replace("{{SANDBOX}}", "true" if sandbox else "false")
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
            frames = [x.frame for x in batch if isinstance(x, _Record)]
            if frames:
                yield b"".join(frames)
            if any(x is _CLOSED for x in batch):
                return
            stats = _stats_frame(hub)
            if stats != stats_sent:
                stats_sent = stats
                yield stats
    finally:
        subscription.close()


# -- wiring -----------------------------------------------------------------------------------


def install_live_features(agent: MfaAgent, settings: Settings) -> None:
    """Feed the hub from the agent's events and mount ``/events`` and ``/live``.

    ``build_agent`` creates ``agent.live_hub`` before the provider (the sandbox outbox
    publishes to it); one is created here if it did not.
    """
    hub = agent.live_hub
    if hub is None:
        hub = agent.live_hub = EventHub()
    hub.agent_id = agent.agent_id
    agent.publisher.subscribe(hub.publish_mfa)
    agent.mount(live_router(agent, hub, sandbox=settings.provider is ProviderName.SANDBOX))
    _close_streams_on_exit_signals(agent, hub)


def _close_streams_on_exit_signals(agent: MfaAgent, hub: EventHub) -> None:
    """Chain a handler in front of uvicorn's SIGINT/SIGTERM handler that ends the streams.

    uvicorn installs its handler before the lifespan starts, and only in the main thread;
    a server in another thread (tests) stops once its clients have gone.
    """
    restore: dict[int, Any] = {}

    async def chain_signal_handlers() -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if callable(previous):
                restore[sig] = previous
                signal.signal(sig, _closing_then(hub, previous))

    async def close_streams() -> None:
        hub.close()
        for sig, previous in restore.items():
            with suppress(ValueError):
                signal.signal(sig, previous)

    agent.on_lifecycle(start=chain_signal_handlers, stop=close_streams)


def _closing_then(hub: EventHub, previous: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    def handler(signum: int, frame: Any) -> Any:
        hub.close()
        return previous(signum, frame)

    return handler


# -- the page ---------------------------------------------------------------------------------
# Self-contained (agent/live_page.html): no external resource, every dynamic value written with
# textContent (never innerHTML), script and style allowed by a per-response nonce.

_PAGE = Path(__file__).with_name("live_page.html").read_text(encoding="utf-8")
