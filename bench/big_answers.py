"""``python -m bench.big_answers``: four parallel 200 MB answers, and the agent's memory.

A loopback server answers every POST with 200 and a 200 MB body, streamed in 64 KB
chunks. Four account lookups (``HttpDirectory``) and then four sends (``SignalWireProvider``)
run at once against it through the process's shared client. Before issue 19 each answer
was read whole before its size was checked (four took RSS from 134 MB to 1.65 GB); now it
is read with a limit while it streams (``skills/mfa/http_pool.read_bounded``). Prints the
RSS and the peak RSS (VmHWM) before and after, and how much each server really sent.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from skills.mfa.delivery.http_pool import new_shared_client
from skills.mfa.delivery.providers.base import ProviderUnavailable, SendRequest
from skills.mfa.delivery.providers.signalwire import SignalWireProvider
from skills.mfa.flow.directory.base import DirectoryUnavailable
from skills.mfa.flow.directory.http_directory import HttpDirectory
from testkit.servers import ServerThread

BODY_MB = 200
PARALLEL = 4
CHUNK = b"7" * 65536


def memory_mb() -> tuple[float, float]:
    """(RSS, peak RSS) of this process in MB, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class HugeAnswers:
    def __init__(self) -> None:
        self.sent = 0

    async def _body(self) -> AsyncIterator[bytes]:
        for _ in range(BODY_MB * 1024 * 1024 // len(CHUNK)):
            self.sent += len(CHUNK)
            yield CHUNK
            await asyncio.sleep(0)  # lets the server notice a client that left

    async def answer(self, request: Request) -> StreamingResponse:
        await request.body()
        return StreamingResponse(self._body(), media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.answer, methods=["POST"])])


async def run() -> dict[str, float]:
    server = HugeAnswers()
    with ServerThread(server.app()) as thread:
        http = new_shared_client(deadline_seconds=60, connect_timeout_seconds=2, max_connections=16)
        directory = HttpDirectory(
            http=http,
            url=thread.url + "/lookup",
            secret="bench-directory-secret-0123",
            default_region="US",
            deadline_seconds=60,
        )
        provider = SignalWireProvider(
            http=http,
            base_url=thread.url,
            project_id="bench",
            api_token="bench-token",
            from_number="+15550000000",
            deadline_seconds=60,
        )
        request = SendRequest(
            to="+15551230199", message="Code:", token_length=6, valid_for=600, max_attempts=3
        )
        gc.collect()
        rss_before, peak_before = memory_mb()
        lookups = await asyncio.gather(
            *(directory.lookup("12345678") for _ in range(PARALLEL)), return_exceptions=True
        )
        sends = await asyncio.gather(
            *(provider.send(request) for _ in range(PARALLEL)), return_exceptions=True
        )
        gc.collect()
        rss_after, peak_after = memory_mb()
        await http.aclose()
    outage = all(isinstance(r, DirectoryUnavailable) and r.kind == "too_large" for r in lookups)
    outage = outage and all(
        isinstance(r, ProviderUnavailable) and r.kind == "too_large" for r in sends
    )
    return {
        "answers": 2 * PARALLEL,
        "body_mb_each": BODY_MB,
        "all_refused_as_too_large": float(outage),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_delta_mb": round(rss_after - rss_before, 1),
        "peak_delta_mb": round(peak_after - peak_before, 1),
        "server_sent_mb": round(server.sent / 1024 / 1024, 1),
        "server_would_send_mb": 2 * PARALLEL * BODY_MB,
    }


def main() -> None:
    result = asyncio.run(run())
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
