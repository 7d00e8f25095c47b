"""Line types: SignalWire's free-text ``carrier.linetype`` read as ours, a lookup that fails
in any way is ``LookupFailed`` (never the call's problem), and answers are cached under a
hash of the number, never the number itself."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from skills.mfa.delivery.line_type import (
    CachedLineTypes,
    InProcessLineTypeCache,
    LineType,
    LookupFailed,
    LookupSource,
    SignalWireLineTypes,
    StaticLineTypes,
    cache_key,
    parse_line_type,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("said", "read"),
    [
        ("wireless", LineType.WIRELESS),
        ("Wireless", LineType.WIRELESS),
        ("landline", LineType.LANDLINE),
        ("fixed", LineType.LANDLINE),
        ("non-fixed VoIP", LineType.VOIP),
        ("voip", LineType.VOIP),
        ("pager", LineType.OTHER),
        ("", LineType.UNKNOWN),
        (None, LineType.UNKNOWN),
        (7, LineType.UNKNOWN),
    ],
)
def test_signalwires_linetype_is_read_as_ours(said, read):
    assert parse_line_type(said) is read


def lookup_on(handler) -> SignalWireLineTypes:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SignalWireLineTypes(
        http=http, base_url="https://example.signalwire.com", project_id="p", api_token="t"
    )


async def test_the_lookup_asks_for_the_carrier_with_basic_auth():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"e164": "+12025550199", "carrier": {"linetype": "landline"}}
        )

    assert await lookup_on(handler).lookup("+12025550199") is LineType.LANDLINE
    (request,) = seen
    assert request.url.path == "/api/relay/rest/lookup/phone_number/+12025550199"
    assert request.url.params["include"] == "carrier"
    assert request.headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "Unauthorized"}),
        httpx.Response(500, text="no"),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, content=b"x" * 70_000),
    ],
)
async def test_any_bad_answer_is_a_failed_lookup(answer):
    with pytest.raises(LookupFailed):
        await lookup_on(lambda request: answer).lookup("+12025550199")


async def test_a_connection_error_is_a_failed_lookup():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(LookupFailed):
        await lookup_on(refuse).lookup("+12025550199")


async def test_answers_are_cached_failures_are_not_and_keys_hide_the_number():
    calls: list[str] = []

    class Counting(StaticLineTypes):
        async def lookup(self, e164: str) -> LineType:
            calls.append(e164)
            return await super().lookup(e164)

    cache = InProcessLineTypeCache()
    lines = CachedLineTypes(Counting({"+12025550199": "landline"}), cache, ttl_seconds=60)
    first = await lines.line_of("+12025550199")
    again = await lines.line_of("+12025550199")
    assert (first.line_type, first.source) == (LineType.LANDLINE, LookupSource.LOOKED_UP)
    assert (again.line_type, again.source) == (LineType.LANDLINE, LookupSource.CACHED)
    assert calls == ["+12025550199"]
    assert "2025550199" not in cache_key("+12025550199")

    class Failing:
        async def lookup(self, e164: str) -> LineType:
            raise LookupFailed("timeout")

    failing = CachedLineTypes(Failing(), InProcessLineTypeCache(), ttl_seconds=60)
    for _ in range(2):
        answer = await failing.line_of("+12025550199")
        assert (answer.line_type, answer.source) == (LineType.UNKNOWN, LookupSource.FAILED)


async def test_a_cached_answer_expires():
    now = [0.0]
    cache = InProcessLineTypeCache(clock=lambda: now[0])
    await cache.put("k", "landline", ttl_seconds=10)
    assert await cache.get("k") == "landline"
    now[0] = 9.9  # from below: a TTL cut short would be gone already
    assert await cache.get("k") == "landline"
    now[0] = 10.0
    assert await cache.get("k") is None


async def test_sends_to_one_number_at_once_share_one_lookup():
    calls: list[str] = []
    release = asyncio.Event()

    class Slow(StaticLineTypes):
        async def lookup(self, e164: str) -> LineType:
            calls.append(e164)
            await release.wait()
            return LineType.LANDLINE

    lines = CachedLineTypes(Slow({}), InProcessLineTypeCache(), ttl_seconds=60)
    pending = [asyncio.ensure_future(lines.line_of("+12025550199")) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    answers = await asyncio.gather(*pending)
    assert calls == ["+12025550199"]
    assert [a.line_type for a in answers] == [LineType.LANDLINE] * 5
    assert sorted(a.source for a in answers) == sorted(
        [LookupSource.LOOKED_UP] + [LookupSource.CACHED] * 4
    )
