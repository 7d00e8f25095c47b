"""Serve the agent with bounded connections, instead of the SDK's bare ``uvicorn.run``.

The SDK's ``serve()`` runs uvicorn with nothing but host and port. Then a
connection that never finishes its request headers is held forever, and 1,100
of them use up a 1024-descriptor soft limit: ``/health`` stops answering and
CPython 3.11's accept loop logs "socket.accept() out of system resource" with
a traceback once per pending connection, thousands of times a second. Here:

- ``raise_descriptor_limit`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit;
- ``GuardedHttpToolsProtocol`` closes a connection that has not sent complete request
  headers within ``header_timeout`` seconds (from its start, or from the end of
  its previous response), and keeps the number of open connections under a cap
  set below the descriptor limit (room kept for one accept burst: asyncio
  accepts up to ``backlog`` connections before the protocol sees any): a new
  connection over the cap closes the oldest connection still waiting for its
  headers (an attacker's idle sockets go first, a health check's quick request
  gets through) and only when none is waiting is the new one refused with a 503;
- repeated alerts from asyncio and uvicorn (accept failures, invalid requests)
  are logged at most once a minute with a count (``RateLimitedLog``).

The event loop is uvloop and the HTTP parser httptools (llhttp, in C), as
``uvicorn[standard]`` runs them: with h11
(pure Python, uvicorn's fallback) the server side was 10% of the agent's CPU per call at
100 concurrent calls, with httptools 5-6% (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agent.http.sdk_surgery import serve_is_intercepted
from skills.mfa.log_throttle import RateLimitedLog

log = logging.getLogger("mfa.serving")
log.addFilter(RateLimitedLog(60, suffix=False))

MAX_CONNECTIONS = 4096
# Descriptors kept for everything but client connections: the listening socket,
# SQLite, Redis and upstream HTTP pools, log files.
RESERVED_DESCRIPTORS = 128
MAX_BACKLOG = 2048  # uvicorn's default
HEADER_TIMEOUT = 10.0
# The most a request's line and headers may take. uvicorn's h11 protocol had a limit;
# its httptools protocol has none, so without this one unauthenticated request with
# 300 MB of headers was held in memory (a second read found it). SignalWire's requests
# carry a few hundred bytes of headers.
MAX_HEADER_BYTES = 64 * 1024
KEEP_ALIVE_TIMEOUT = 5
THROTTLED_LOGGERS = ("asyncio", "uvicorn.error")
# On SIGTERM uvicorn stops accepting and waits for in-flight requests, then runs the stop
# hooks (outcome deliveries kept). A tool request ends within its upstream deadline (at most
# 9.5 s, config_file.UpstreamConfig); past this bound what is left is cancelled so that the
# stop hooks still run before an orchestrator's SIGKILL (compose.yaml's stop_grace_period
# leaves them 10 s more).
SHUTDOWN_DRAIN_SECONDS = 20

_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


def raise_descriptor_limit() -> int:
    """Soft ``RLIMIT_NOFILE`` up to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            log.warning("descriptor_limit_not_raised", extra={"soft": soft, "hard": hard})
    return soft


def accept_backlog(descriptor_limit: int) -> int:
    """The listen backlog, which asyncio also uses as the number of connections it
    accepts in one go, before any of them is seen (and could be closed) by the
    protocol: a quarter of the descriptors at most."""
    return max(16, min(MAX_BACKLOG, descriptor_limit // 4))


def connection_cap(descriptor_limit: int, wanted: int = MAX_CONNECTIONS) -> int:
    """At most ``wanted``, leaving room for one accept burst and the reserved descriptors:
    then ``accept()`` never meets EMFILE."""
    spare = descriptor_limit - RESERVED_DESCRIPTORS - accept_backlog(descriptor_limit)
    return max(8, min(wanted, spare))


class _ConnectionGuard:
    """A header deadline and a connection cap over uvicorn's protocol (its attributes
    ``connections``, ``cycle``, ``transport`` and ``loop`` are the ones read here).

    Use ``guarded_protocol(...)`` to get a subclass with its own limits and
    its own record of the connections waiting for request headers.
    """

    max_connections: ClassVar[int] = MAX_CONNECTIONS
    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    max_header_bytes: ClassVar[int] = MAX_HEADER_BYTES
    _header_bytes: int
    # Connections waiting for request headers, oldest first (a dict keeps order).
    waiting: ClassVar[dict[Any, asyncio.TimerHandle]] = {}
    connections: set[Any]
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.max_connections and not self._evict_oldest_waiting():
            log.warning("connection_refused_at_cap", extra={"cap": self.max_connections})
            transport.write(_REFUSED)
            transport.close()
            return
        self._start_waiting()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not None and not self.cycle.response_complete:
            self._stop_waiting()  # a request is under way: its headers are complete
            return
        if self in self.waiting and not self.transport.is_closing():
            # Still no complete headers: what has come so far is all line and headers
            # (a body's bytes only count once the headers above are complete).
            self._header_bytes += len(data)  # set by _start_waiting
            if self._header_bytes > self.max_header_bytes:
                self._stop_waiting()
                log.warning("request_headers_too_large", extra={"limit": self.max_header_bytes})
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self._start_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)  # type: ignore[misc]

    def _start_waiting(self) -> None:
        self._header_bytes = 0
        if self not in self.waiting:
            self.waiting[self] = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_waiting(self) -> None:
        timer = self.waiting.pop(self, None)
        if timer is not None:
            timer.cancel()

    def _headers_too_slow(self) -> None:
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def _evict_oldest_waiting(self) -> bool:
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            return False
        oldest._stop_waiting()
        oldest.transport.close()
        log.warning("connection_evicted_at_cap", extra={"cap": self.max_connections})
        return True


class GuardedHttpToolsProtocol(_ConnectionGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol plus the guard."""


def guarded_protocol(
    *, max_connections: int = MAX_CONNECTIONS, header_timeout: float = HEADER_TIMEOUT
) -> type[GuardedHttpToolsProtocol]:
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_connections": max_connections, "header_timeout": header_timeout, "waiting": {}},
    )


def throttle_repeated_alerts(interval: float = 60.0) -> None:
    """One line per ``interval`` for each kind of asyncio / uvicorn alert, with a count."""
    for name in THROTTLED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(RateLimitedLog(interval))


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    max_connections: int = MAX_CONNECTIONS,
    header_timeout: float = HEADER_TIMEOUT,
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn config ``serve`` runs; raises the descriptor limit first."""
    descriptors = raise_descriptor_limit()
    cap = connection_cap(descriptors, max_connections)
    options.setdefault("backlog", accept_backlog(descriptors))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(max_connections=cap, header_timeout=header_timeout),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        timeout_graceful_shutdown=SHUTDOWN_DRAIN_SECONDS,
        # Ingress owns forwarded headers (MFA_TRUSTED_PROXIES). uvicorn's own handling
        # would apply X-Forwarded-Proto/-For from 127.0.0.1 before Ingress sees the peer.
        proxy_headers=False,
        # uvloop (libuv): the event loop and its socket calls were a seventh of the CPU per
        # call, and with two replicas on Redis the stdlib loop's lag let limits' 1 s Redis
        # timeouts fire (docs/performance.md). uvicorn[standard] runs it the same way.
        loop="uvloop",
        **options,
    )
    # After uvicorn.Config, which applies its logging config: the filters stay.
    throttle_repeated_alerts()
    return config


def serve_agent(agent: Any) -> None:
    """Run the agent's app until stopped; what ``agent.serve()`` does, with the limits above.

    The SDK's stdout banner is not printed (its "source" of the credentials is
    wrong for a generated password); the SDK's logging and its warning about
    unsigned webhooks are kept.
    """
    from signalwire.core.logging_config import configure_logging

    if serve_is_intercepted():
        # swaig-test loads an agent by replacing AgentBase.serve (the SDK defines it on
        # a mixin) and calling main(): let its stand-in capture the agent, serve nothing.
        agent.serve()
        return
    configure_logging()
    warn = getattr(agent, "_warn_unsigned_webhooks", None)
    if callable(warn):
        warn()
    config = server_config(agent.get_app(), host=agent.host, port=agent.port)
    uvicorn.Server(config).run()
