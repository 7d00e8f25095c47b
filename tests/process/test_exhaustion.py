"""No credentials, no way to exhaust the process: memory, descriptors, log.

Each test starts ``python -m agent`` as an operator does and attacks it from
loopback with bounded traffic, then measures what the issue measured: the
agent's resident memory, whether ``/health`` answers, the size of its log.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import time

import httpx
import pytest

from tests.support.defaults import AUTH
from tests.support.limited_agent import LimitedAgent

pytestmark = pytest.mark.slow

SIGNING_KEY = "PSKtest0123456789abcdef"
MB = 1024 * 1024


@pytest.fixture
def started():
    agents: list[LimitedAgent] = []

    def start(agent: LimitedAgent) -> LimitedAgent:
        agents.append(agent)
        agent.wait_ready()
        return agent

    yield start
    for agent in agents:
        agent.stop()


def stream_chunked(url: str, path: str, total: int, authorization: str | None) -> tuple[int, int]:
    """POST ``total`` bytes chunked, as fast as the server takes them; (status, bytes sent)."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "Content-Type: application/json\r\n"
    if authorization:
        head += f"Authorization: {authorization}\r\n"
    sock.sendall((head + "\r\n").encode())
    piece = f"{MB:x}\r\n".encode() + b"{" * MB + b"\r\n"
    sent, status, reply = 0, 0, b""
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
                if not status and b"\r\n" in reply:
                    status = int(reply.split(b" ", 2)[1])
            if writable:
                sock.sendall(piece)
                sent += MB
            if not readable and not writable:
                break
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    return status, sent


def test_unauthenticated_huge_chunked_posts_get_401_and_no_memory(tmp_path, started):
    """Before: the signature check buffered every body (4 x 300 MB -> 3 GB of RSS)."""
    agent = started(LimitedAgent(tmp_path, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY))
    for _ in range(3):  # warm up: imports and pools settle
        assert httpx.get(agent.url + "/", auth=AUTH).status_code == 200
    before = agent.rss_kb()
    for path in ("/swaig/", "/", "/post_prompt/"):
        status, _sent = stream_chunked(agent.url, path, 50 * MB, authorization=None)
        assert status == 401
    time.sleep(0.5)
    grown_mb = (agent.rss_kb() - before) / 1024
    assert grown_mb < 8, f"RSS grew by {grown_mb:.1f} MB"
    assert httpx.get(agent.url + "/health").status_code == 200


def test_authenticated_chunked_body_stops_at_the_limit(tmp_path, started):
    agent = started(LimitedAgent(tmp_path, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY))
    authorization = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    before = agent.rss_kb()
    status, _ = stream_chunked(agent.url, "/swaig/", 50 * MB, authorization)
    assert status == 413
    assert (agent.rss_kb() - before) / 1024 < 8


def test_descriptor_soft_limit_is_raised_to_the_hard_limit(tmp_path, started):
    agent = started(LimitedAgent(tmp_path, nofile=(256, 4096)))
    assert agent.soft_nofile() == 4096


def test_idle_connections_cannot_take_health_down_or_flood_the_log(tmp_path, started):
    """Before: 1,100 slow-header connections at a 1024 limit -> /health dead, 245 MB of log.

    Here the limit is 256 (soft and hard, so it cannot be raised) and 1,200 connections
    send half a request each and wait.
    """
    agent = started(LimitedAgent(tmp_path, nofile=(256, 256)))
    held: list[socket.socket] = []
    health: list[int] = []
    try:
        for number in range(1200):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", agent.port))
            held.append(sock)
            if number % 200 == 199:
                time.sleep(0.2)
                for s in held[-200:]:
                    # Already closed by the agent is fine: that is the point.
                    with contextlib.suppress(OSError):
                        s.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
                health.append(httpx.get(agent.url + "/health", timeout=5).status_code)
        time.sleep(1.5)
        started_at = time.monotonic()
        health.append(httpx.get(agent.url + "/health", timeout=5).status_code)
        assert time.monotonic() - started_at < 2
        assert health == [200] * len(health)
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert httpx.get(agent.url + "/health", timeout=5).status_code == 200
    log = agent.stop()
    assert len(log) < 50_000, log[-2000:]
    assert log.count("out of system resource") <= 1
    assert "Traceback" not in log


def test_connections_that_never_finish_their_headers_are_closed(tmp_path, started):
    """Before: held open for ever. Now: closed at the 10 s header deadline."""
    agent = started(LimitedAgent(tmp_path))
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=20)
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    started_at = time.monotonic()
    assert sock.recv(100) == b""  # closed by the agent, not by us
    assert time.monotonic() - started_at < 15
    sock.close()


def test_oversized_request_headers_are_refused_before_they_fill_memory(tmp_path, started):
    """Before (httptools has no header limit of its own): 300 MB of headers from a client
    without credentials were held in memory and answered. Now: a 431 and a closed
    connection past 64 KB, memory flat, and headers of a normal size still served."""
    agent = started(LimitedAgent(tmp_path))
    for _ in range(3):  # warm up: imports and pools settle
        assert httpx.get(agent.url + "/health").status_code == 200
    before = agent.rss_kb()
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    line = b"X-Filler: " + b"a" * 1014 + b"\r\n"  # 1 KB a header
    sent, reply = 0, b""
    try:
        while sent < 50 * MB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                reply = sock.recv(1000)
                break
            sock.sendall(line * 64)
            sent += 64 * len(line)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 431 "), (sent, reply)
    assert sent < 4 * MB, sent
    assert (agent.rss_kb() - before) / 1024 < 8
    # A request with 32 KB of headers is still a request.
    filler = {f"x-filler-{n}": "a" * 1000 for n in range(32)}
    assert httpx.get(agent.url + "/health", headers=filler).status_code == 200
    assert "request_headers_too_large" in agent.log_text()
