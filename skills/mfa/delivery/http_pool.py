"""The process's one shared ``httpx.AsyncClient`` (``new_shared_client``) and its transport.

httpcore's connection pool scans every pooled connection for every request it
starts or finishes (encode/httpcore#1035), so its cost grows with the square of
the pool: at 100 concurrent calls a single 100-connection pool took 43% of the
agent's CPU. ``ShardedTransport`` keeps the one client (one set of timeouts,
headers and auth handling) but spreads requests round-robin over several small
pools, each with every connection allowed to stay alive, so the scan stays short
however many calls are in flight.

``post_retrying_unsent`` is the one retry rule both HTTP clients (SignalWire's API and the
business's account directory) follow: retry only a request that never left. It reads the
answer with ``read_bounded``: a body from outside is counted while it streams and the
request is abandoned as soon as it passes its limit, so a server that answers with
hundreds of megabytes costs the process one chunk, not the whole body (httpx's own
``response.content`` buffers everything before anyone can look at its size).
"""

from __future__ import annotations

import asyncio
import itertools
import select
import socket
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

SHARD_SIZE = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, shards: list[httpx.AsyncBaseTransport]) -> None:
        if not shards:
            raise ValueError("at least one shard")
        self._shards = shards
        self._next = itertools.cycle(shards)

    @classmethod
    def for_connections(
        cls, max_connections: int, *, keepalive_expiry: float = 30.0
    ) -> ShardedTransport:
        count = max(1, -(-max_connections // SHARD_SIZE))
        per_shard = max(1, -(-max_connections // count))
        limits = httpx.Limits(
            max_connections=per_shard,
            max_keepalive_connections=per_shard,
            keepalive_expiry=keepalive_expiry,
        )
        # One TLS context for all shards: loading the CA bundle costs ~15 ms each time.
        tls = httpx.create_ssl_context()
        shards = [
            httpx.AsyncHTTPTransport(verify=tls, limits=limits, retries=0) for _ in range(count)
        ]
        for shard in shards:
            _check_readable_cheaply(shard)
        return cls(shards)

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def _check_readable_cheaply(transport: httpx.AsyncHTTPTransport) -> None:
    """Every time a request starts or ends, httpcore asks each idle connection of the pool
    whether its socket is readable (the server closed it). Through anyio that question
    rebuilds the stream's attribute table (a ``getpeername`` included) before one
    ``poll``: about 6% of the agent's CPU per call at 100 calls. The same question,
    answered the same way (poll the raw socket), with the socket looked up once per
    connection. Left alone if httpx or httpcore no longer hold the pool's backend there."""
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = _ReadableCheckedBackend(httpcore.AnyIOBackend())


class _ReadableCheckedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _ReadableCheckedStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _ReadableCheckedStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ReadableCheckedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _ReadableCheckedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """httpcore's ``is_socket_readable``: a socket gone counts as readable (closed)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def new_shared_client(
    *,
    deadline_seconds: float,
    connect_timeout_seconds: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The process's one pooled client: explicit timeouts, bounded pools, no env proxies.

    Without a test transport, connections are spread over small pools
    (``ShardedTransport``): one big httpcore pool costs CPU quadratic in its size.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            deadline_seconds,
            connect=connect_timeout_seconds,
            pool=connect_timeout_seconds,
        ),
        transport=transport or ShardedTransport.for_connections(max_connections),
        headers={"User-Agent": "mfa-digital-employee/0.1", "Accept": "application/json"},
        trust_env=False,
        follow_redirects=False,
    )


class NoAnswer(Exception):
    """A POST that got no usable HTTP answer. ``kind`` is ``connect`` (no connection was
    opened: nothing reached the server), ``timeout``, ``transport`` (it may have arrived)
    or ``too_large`` (an answer whose body passed its limit: the request was abandoned)."""

    def __init__(self, kind: str, *, status_code: int | None = None) -> None:
        super().__init__(f"no answer: {kind}")
        self.kind = kind
        self.status_code = status_code
        self.may_have_arrived = kind != "connect"


@dataclass(frozen=True, slots=True)
class BoundedAnswer:
    """An HTTP answer whose body was read within its limit."""

    status_code: int
    content: bytes


class BodyTooLarge(Exception):
    """The body passed its limit; what was read so far is dropped with the connection."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code} answer over its size limit")
        self.status_code = status_code


async def read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed ``response`` (``client.stream(...)``), at most ``max_bytes``.

    Counts the bytes as they arrive and raises ``BodyTooLarge`` as soon as they pass the
    limit (a ``Content-Length`` above it at once, before a byte is read). The caller's
    ``async with client.stream(...)`` then closes the connection unread. A compressed
    body is refused too: its size on the wire says nothing about its size once inflated,
    and every request that reads this way asks for ``identity``.
    """
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(response.status_code)
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise BodyTooLarge(response.status_code)
    if response.is_stream_consumed:
        # An answer built in memory (a test transport's): already read, only measured.
        if len(response.content) > max_bytes:
            raise BodyTooLarge(response.status_code)
        return response.content
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise BodyTooLarge(response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


# Asked of every server whose answer is read with ``read_bounded``.
IDENTITY = {"Accept-Encoding": "identity"}


async def post_bounded(
    http: httpx.AsyncClient, url: str, *, max_body: int, **request: Any
) -> BoundedAnswer:
    """POST ``url`` once and read the answer with ``read_bounded``.

    Raises ``BodyTooLarge`` and httpx's own errors; ``post_retrying_unsent`` turns them
    into ``NoAnswer``. Also what the outcome receiver's answer should be read with."""
    headers = {**IDENTITY, **(request.pop("headers", None) or {})}
    async with http.stream("POST", url, headers=headers, **request) as response:
        content = await read_bounded(response, max_body)
        return BoundedAnswer(response.status_code, content)


async def post_retrying_unsent(
    http: httpx.AsyncClient, url: str, *, max_body: int, retries: int = 1, **request: Any
) -> BoundedAnswer:
    """POST ``url``, retrying only when no connection was opened; the answer's body is
    read up to ``max_body`` bytes (past it: ``NoAnswer("too_large")``).

    A request that may have reached the server (a send may have gone out, a try may have
    been used) is never retried blindly. Callers bound the whole call with their own
    deadline and turn ``NoAnswer`` into their domain's error.
    """
    for attempt in range(retries + 1):
        try:
            return await post_bounded(http, url, max_body=max_body, **request)
        except BodyTooLarge as exc:
            raise NoAnswer("too_large", status_code=exc.status_code) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            if attempt == retries:
                raise NoAnswer("connect") from None
            await asyncio.sleep(0.05)
        except httpx.TimeoutException:
            raise NoAnswer("timeout") from None
        except httpx.HTTPError:
            raise NoAnswer("transport") from None
    raise AssertionError("unreachable")  # pragma: no cover
