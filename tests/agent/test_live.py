"""The live event stream: ``GET /events`` over real HTTP on loopback, and the hub behind it.

Calls are played through ``PlatformCall`` against the served agent, SignalWire faked on
loopback (or the sandbox provider); a subscriber reads the stream with ``httpx``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.app import MfaAgent, build_agent
from agent.ops.platform import PlatformCall, ToolReply
from agent.outcomes.counters import DailyCounters
from agent.outcomes.hub import EventHub
from agent.outcomes.mfa_events import LiveFeed
from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.flow.tools import META_REQUEST_ID
from skills.mfa.speech.spoken_code import normalize_spoken_code
from tests.support.agent_process import AgentProcess
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import AUTH, CALLER, DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

OTHER_CALLER = "+15551239876"
TOOL_ANSWER_BOUND = 2.0


# -- a small SSE client --------------------------------------------------------------------


@dataclass
class Frame:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return json.loads(self.data)


class SseReader:
    """Frames from an ``httpx`` streaming response, with a timeout per frame."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.raw: list[str] = []

    async def frame(self, within: float = 5.0) -> Frame:
        async with asyncio.timeout(within):
            frame = Frame()
            data: list[str] = []
            seen_any = False
            async for line in self._lines:
                self.raw.append(line)
                if line == "":
                    if seen_any:
                        frame.data = "\n".join(data)
                        return frame
                    continue
                seen_any = True
                if line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "event":
                    frame.event = value
                elif name == "id":
                    frame.id = value
            raise EOFError("stream ended")

    async def event(self, within: float = 5.0) -> tuple[Frame, dict[str, Any]]:
        """The next event frame (skipping comments and stats)."""
        deadline = time.monotonic() + within
        while True:
            frame = await self.frame(max(0.01, deadline - time.monotonic()))
            if frame.event == "message" and frame.data:
                return frame, frame.json()

    async def events(self, count: int, within: float = 5.0) -> list[dict[str, Any]]:
        return [(await self.event(within))[1] for _ in range(count)]

    async def nothing_more(self, within: float = 0.5) -> None:
        """No event frame arrives within ``within`` seconds (pings and stats are fine)."""
        with pytest.raises(TimeoutError):
            await self.event(within)


@asynccontextmanager
async def subscribe(
    http: httpx.AsyncClient,
    url: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SseReader]:
    async with http.stream(
        "GET", url + "/events", params=params, headers=headers, auth=DASHBOARD
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        first = await reader.frame()
        assert "connected" in first.comments  # subscribed: nothing published from now is missed
        yield reader


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def live_agent(fake_signalwire, make_settings, serve_agent) -> Callable[..., tuple[MfaAgent, str]]:
    """Build and serve an agent (SignalWire fake by default); its streams end at teardown so
    the server can stop."""
    built: list[MfaAgent] = []

    def make(*, sandbox: bool = False, heartbeat: float = 0.2) -> tuple[MfaAgent, str]:
        _, sw_url = fake_signalwire
        settings = make_settings() if sandbox else make_settings(signalwire_url=sw_url)
        agent = build_agent(settings)
        assert agent.live_hub is not None
        agent.live_hub.heartbeat_seconds = heartbeat
        built.append(agent)
        return agent, serve_agent(agent)

    yield make
    for agent in built:
        assert agent.live_hub is not None
        agent.live_hub.end_streams()


async def timed(call: PlatformCall, function: str, **arguments: Any) -> ToolReply:
    started = time.perf_counter()
    reply = await call.invoke(function, **arguments)
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200
    assert elapsed < TOOL_ANSWER_BOUND, f"{function} took {elapsed:.2f}s"
    return reply


def assert_clean(text: str, *secrets: str) -> None:
    """No code, request id or full number in what the stream carried."""
    for secret in (*secrets, CALLER, CALLER.lstrip("+"), "5551230001"):
        assert secret not in text


# -- the stream ----------------------------------------------------------------------------


async def test_a_call_streams_its_outcomes_in_order(fake_signalwire, live_agent):
    fake, _ = fake_signalwire
    agent, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http, subscribe(http, url) as stream:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code = fake.last_code_for(CALLER)
        request_id = call.meta_data["mfa_skill"][META_REQUEST_ID]
        await call.invoke("verify_mfa", token=wrong_code(code))
        await call.invoke("verify_mfa", token=" ".join(code))

        frames = [await stream.event() for _ in range(3)]
        events = [data for _, data in frames]
        assert [e["outcome"] for e in events] == ["code_sent", "wrong_code", "verified"]
        assert [e["tool"] for e in events] == ["send_mfa", "verify_mfa", "verify_mfa"]
        assert events[1]["attempts_left"] == 2
        for frame, event in frames:
            assert event["kind"] == "mfa"
            assert frame.id == event["id"]
            assert event["call_id"] == call.call_id
            assert event["agent_id"] == agent.agent_id == "mfa-agent"
            assert event["masked_number"] == "***0001"
            assert event["provider"] == "signalwire"
            assert event["duration_ms"] >= 0
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        assert_clean("\n".join(stream.raw), code, request_id)

        # Today's counters follow on the stream.
        stats = await _stats_where(stream, lambda s: s["verified"] == 1)
        assert (stats["calls"], stats["codes_sent"], stats["failed"]) == (1, 1, 0)
    assert agent.live_hub is not None
    assert all(e["kind"] == "mfa" for e in agent.live_hub.recent())  # no sandbox text here


async def _stats_where(
    stream: SseReader, wanted: Callable[[dict[str, Any]], bool], within: float = 5.0
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            frame = await stream.frame(within)
            if frame.event == "stats" and wanted(stats := frame.json()):
                return stats


async def test_filter_by_call_id_shows_only_that_call(fake_signalwire, live_agent):
    fake, _ = fake_signalwire
    _, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http:
        first = await new_call(http, url)
        second = await new_call(http, url, caller=OTHER_CALLER)
        async with (
            subscribe(http, url, {"call_id": second.call_id}) as only_second,
            subscribe(http, url, {"agent_id": "another-agent"}) as other_agent,
            subscribe(http, url, {"agent_id": "mfa-agent"}) as this_agent,
        ):
            await first.invoke("send_mfa")
            await second.invoke("send_mfa")
            await first.invoke("verify_mfa", token=fake.last_code_for(CALLER))
            await second.invoke("verify_mfa", token=fake.last_code_for(OTHER_CALLER))

            events = await only_second.events(2)
            assert [e["call_id"] for e in events] == [second.call_id] * 2
            assert [e["outcome"] for e in events] == ["code_sent", "verified"]
            assert events[0]["masked_number"] == "***9876"
            await only_second.nothing_more()
            assert len(await this_agent.events(4)) == 4
            await other_agent.nothing_more()


async def test_a_new_subscriber_gets_the_buffered_events_first(fake_signalwire, live_agent):
    fake, _ = fake_signalwire
    agent, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        await call.invoke("verify_mfa", token=wrong_code(fake.last_code_for(CALLER)))

        async with subscribe(http, url) as stream:
            replayed = await stream.events(2)
            assert [e["outcome"] for e in replayed] == ["code_sent", "wrong_code"]
            await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
            (live,) = await stream.events(1)
            assert live["outcome"] == "verified" and live["seq"] > replayed[-1]["seq"]

        # A reconnecting EventSource sends Last-Event-ID: only newer events come back...
        after_first = {"Last-Event-ID": replayed[0]["id"]}
        async with subscribe(http, url, headers=after_first) as stream:
            assert [e["outcome"] for e in await stream.events(2)] == ["wrong_code", "verified"]
            await stream.nothing_more(0.3)
        # ...unless the id is from another run of the agent (a restart): then everything.
        assert agent.live_hub is not None
        stale = {"Last-Event-ID": "0ld0b00t-2"}
        async with subscribe(http, url, headers=stale) as stream:
            assert len(await stream.events(3)) == 3


async def test_stream_and_page_need_the_dashboards_credentials(live_agent):
    _, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http:
        for path in ("/events", "/live"):
            # The platform's pair sits in every URL the SWML names: it opens no dashboard.
            for auth in (None, (DASHBOARD[0], "wrong-password"), AUTH):
                response = await http.get(url + path, auth=auth)
                assert response.status_code == 401
                assert response.headers["www-authenticate"].startswith("Basic")

        page = await http.get(url + "/live", auth=DASHBOARD)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<script nonce="{nonce}">' in page.text
        # Self-contained: nothing is fetched from anywhere else.
        for marker in ("<script src", 'rel="stylesheet"', "http://", "https://", "@import"):
            assert marker not in page.text
        assert "EventSource('/events')" in page.text


async def test_heartbeat_comments_keep_an_idle_stream_alive(live_agent):
    _, url = live_agent(heartbeat=0.1)
    async with httpx.AsyncClient(timeout=15) as http, subscribe(http, url) as stream:
        pings = 0
        while pings < 2:
            frame = await stream.frame(2.0)
            pings += "ping" in frame.comments


async def test_stuck_subscribers_never_slow_the_tools(fake_signalwire, live_agent):
    fake, _ = fake_signalwire
    agent, url = live_agent()
    hub = agent.live_hub
    assert hub is not None
    # A subscriber whose queue is full at once and is never read...
    stuck, _ = hub.subscribe(queue_size=1)
    try:
        # ...and a real client that connects and never reads a byte.
        async with (
            httpx.AsyncClient(timeout=15) as http,
            http.stream("GET", url + "/events", auth=DASHBOARD) as never_read,
        ):
            assert never_read.status_code == 200
            call = await new_call(http, url)
            await timed(call, "send_mfa")
            code = fake.last_code_for(CALLER)
            for _ in range(3):
                await timed(call, "verify_mfa", token=wrong_code(code))
            await timed(call, "send_mfa")
            await timed(call, "verify_mfa", token=fake.last_code_for(CALLER))
            await asyncio.sleep(0.05)  # the threadsafe hand-offs to this loop run
        assert stuck.dropped == 5  # six outcomes, room for one
        assert hub.dropped >= 5
    finally:
        stuck.close()


async def test_sandbox_texts_are_on_the_stream_code_included(live_agent):
    agent, url = live_agent(sandbox=True)
    async with httpx.AsyncClient(timeout=15) as http, subscribe(http, url) as stream:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        text, sent = await stream.events(2)
        assert text["kind"] == "sandbox_text" and text["sandbox"] is True
        assert text["to"] == "***0001" and text["agent_id"] == agent.agent_id
        code = text["body"].rsplit(" ", 1)[1]
        assert text["body"] == (
            "From our company: only say this code on the call you made to us. We never call to "
            f"ask for it. Your code: {code}"
        )
        assert len(code) == 6
        assert sent["kind"] == "mfa" and sent["outcome"] == "code_sent"
        assert sent["provider"] == "sandbox"

        await call.invoke("verify_mfa", token=code)
        (verified,) = await stream.events(1)
        assert verified["outcome"] == "verified"
        # Only the sandbox text carries the code; no event carries the full number.
        others = [line for line in stream.raw if line.startswith("data:") and "sandbox" not in line]
        assert_clean("\n".join(others), code)
        assert_clean("\n".join(stream.raw))


async def test_the_summary_is_published_with_its_safe_fields_only(live_agent):
    _, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http, subscribe(http, url) as stream:
        call = await new_call(http, url)
        status = await call.post_summary(
            {
                "caller_wanted": "to change the address on file at 12 Main St",
                "code_sent": True,
                "verified": True,
                "outcome": "Caller +1 555 123 0001 was verified with code 4 8 1 5 1 6, "
                "after 7, 3, 9, 1, 5, 5 and seven three nine one five five failed.",
                "extra": "anything else",
            }
        )
        assert status == 200
        _, summary = await stream.event()
        assert summary["kind"] == "summary"
        assert set(summary) == {
            "kind",
            "id",
            "seq",
            "agent_id",
            "at",
            "call_id",
            "verified",
            "code_sent",
            "outcome",
        }
        assert summary["call_id"] == call.call_id
        assert summary["verified"] is True and summary["code_sent"] is True
        assert "[redacted]" in summary["outcome"]
        assert_clean(
            summary["outcome"],
            "481516",
            "4 8 1 5 1 6",
            "555 123",
            "7, 3, 9, 1",
            "seven three nine",
        )
        assert normalize_spoken_code(summary["outcome"], 6) is None


@pytest.mark.parametrize(
    ("spoken", "code"),
    [
        ("fourEightOneTwoTwoNine", "481229"),
        ("four-eight-one-two-two-nine", "481229"),
        ("cuatro ocho uno dos dos nueve", "481229"),
        ("vier acht eins zwei zwei neun", "481229"),
        ("veintiséis once sesenta y dos", "261162"),
    ],
)
async def test_a_code_in_the_summary_is_masked_in_any_language(live_agent, spoken, code):
    """Issue 19's findings: a code the model wrote in words of any language we ship, or
    run together, reaches /events masked."""
    _, url = live_agent()
    async with httpx.AsyncClient(timeout=15) as http, subscribe(http, url) as stream:
        call = await new_call(http, url)
        said = f"El cliente leyó {spoken} y fue verificado."
        assert await call.post_summary({"verified": True, "outcome": said}) == 200
        _, summary = await stream.event()
        assert summary["outcome"] == "El cliente leyó [redacted] y fue verificado."
        assert normalize_spoken_code(summary["outcome"], 6, ("en", "es")) != code
        assert spoken not in "\n".join(stream.raw)


# -- the hub on its own --------------------------------------------------------------------


def _event(call_id: str = "call-1", outcome: Outcome = Outcome.CODE_SENT) -> MfaEvent:
    return MfaEvent(
        agent_id="mfa-agent",
        call_id=call_id,
        tool="send_mfa",
        outcome=outcome,
        masked_number="***0001",
        provider="sandbox",
        duration_ms=1.0,
    )


async def test_the_buffer_is_bounded_and_keeps_the_newest():
    hub = EventHub(agent_id="mfa-agent", buffer_size=3)
    live = LiveFeed(hub.publish)
    for n in range(5):
        live.mfa(_event(call_id=f"call-{n}"))
    assert [e["call_id"] for e in hub.recent()] == ["call-2", "call-3", "call-4"]
    subscription, replay = hub.subscribe()
    assert [r.data["seq"] for r in replay] == [3, 4, 5]
    subscription.close()
    assert hub.subscriber_count == 0


async def test_publishing_from_other_threads_reaches_the_loop_in_full():
    hub = EventHub(agent_id="mfa-agent", counters=DailyCounters(), queue_size=10_000)
    live = LiveFeed(hub.publish)
    subscription, _ = hub.subscribe()
    threads = [
        threading.Thread(target=lambda n=n: [live.mfa(_event(f"t{n}-{i}")) for i in range(250)])
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received: list[int] = []
    while len(received) < 1000:
        record = await subscription.next(2.0)
        assert record is not None
        received.append(record.data["seq"])  # type: ignore[union-attr]
    assert sorted(received) == list(range(1, 1001))
    assert subscription.dropped == 0 and hub.stats()["calls"] == 1000
    subscription.close()


async def test_daily_counters():
    hub = EventHub(agent_id="mfa-agent", counters=DailyCounters())
    live = LiveFeed(hub.publish)
    for call_id, outcome in [
        ("a", Outcome.CODE_SENT),
        ("a", Outcome.WRONG_CODE),
        ("a", Outcome.VERIFIED),
        ("b", Outcome.CODE_SENT),
        ("b", Outcome.EXHAUSTED),
        ("c", Outcome.PROVIDER_UNAVAILABLE),
        ("c", Outcome.MALFORMED_CODE),
    ]:
        live.mfa(_event(call_id, outcome))
    live.summary("a", {"verified": True})  # not a tool outcome: not counted
    stats = hub.stats()
    assert (stats["calls"], stats["codes_sent"], stats["verified"], stats["failed"]) == (3, 2, 1, 2)


async def test_a_closed_hub_ends_streams_and_refuses_new_ones(live_agent):
    agent, url = live_agent()
    assert agent.live_hub is not None
    async with httpx.AsyncClient(timeout=15) as http:
        async with subscribe(http, url) as stream:
            agent.live_hub.close()
            with pytest.raises(EOFError):
                while True:
                    await stream.frame(2.0)
        async with http.stream("GET", url + "/events", auth=DASHBOARD) as response:
            assert (await response.aread()) == b""


def test_sigterm_stops_the_agent_with_a_viewer_connected(tmp_path: Path):
    """uvicorn waits for open responses before it stops; the hub ends its streams first."""
    agent = AgentProcess(tmp_path, capture=True)
    try:
        agent.wait_ready("/health")
        with (
            httpx.Client(timeout=10) as http,
            http.stream("GET", agent.url + "/events", auth=DASHBOARD) as stream,
        ):
            assert stream.status_code == 200
            agent.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            returncode = agent.process.wait(timeout=10)
            assert time.monotonic() - started < 10
            # Whatever was still unread (the opening frames) arrives whole: the stream is
            # ended cleanly, not cut mid-frame (iter_raw would raise on a broken chunk).
            rest = b"".join(stream.iter_raw())
            assert rest == b"" or rest.endswith(b"\n\n"), "the viewer's stream is ended cleanly"
    finally:
        output = agent.stop()
    # uvicorn re-raises the signal after a graceful stop, so the status is "terminated by
    # SIGTERM" either way; the log tells a graceful stop from a kill.
    assert returncode == -signal.SIGTERM
    assert "Application shutdown complete." in output
    assert "Finished server process" in output


async def test_the_sandbox_beside_an_account_is_a_banner_on_the_live_page(
    fake_signalwire, make_settings, serve_agent
):
    """MFA_SANDBOX_WITH_ACCOUNT=1: whoever watches the page sees that phones get nothing."""
    _, sw_url = fake_signalwire
    on_purpose = make_settings(
        signalwire_url=sw_url, MFA_PROVIDER="sandbox", MFA_SANDBOX_WITH_ACCOUNT="1"
    )
    plain = make_settings()
    async with httpx.AsyncClient(timeout=15) as http:
        warned = await http.get(serve_agent(on_purpose) + "/live", auth=DASHBOARD)
        quiet = await http.get(serve_agent(plain) + "/live", auth=DASHBOARD)
    banner = '<div class="banner warning" id="warning-banner" role="alert" >'
    assert banner + "MFA_SANDBOX_WITH_ACCOUNT=1: the sandbox runs beside" in warned.text
    assert "never to callers&#x27; phones" in warned.text
    assert 'id="warning-banner" role="alert" hidden></div>' in quiet.text
