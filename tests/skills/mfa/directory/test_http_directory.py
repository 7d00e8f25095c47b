"""The business's directory server over ``httpx.MockTransport``: every fault is a domain
error (which the tools turn into a spoken sentence), never another exception."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx
import pytest

from skills.mfa.flow.directory.base import DirectoryRejected, DirectoryUnavailable
from skills.mfa.flow.directory.guarded import GuardedDirectory, directory_breaker
from skills.mfa.flow.directory.http_directory import HttpDirectory
from tests.support.fakes import T0, FakeClock

pytestmark = pytest.mark.anyio

URL = "https://directory.example.com/lookup"
SECRET = "dirsec-0123456789abcdef"


def make(handler, *, deadline: float = 1.0) -> tuple[HttpDirectory, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=5)
    directory = HttpDirectory(
        http=http,
        url=URL,
        secret=SECRET,
        default_region="US",
        deadline_seconds=deadline,
        clock=lambda: T0,
    )
    return directory, http


async def test_a_found_account_is_a_signed_post_answered_with_the_number():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"phone_number": "(555) 123-0199"})

    directory, http = make(handler)
    async with http:
        assert await directory.lookup("12345678") == "+15551230199"
    request = seen[0]
    assert request.method == "POST" and str(request.url) == URL
    assert json.loads(request.content) == {"account_number": "12345678"}
    # Computed from the documented formula, not with the product's sign().
    stamp = request.headers["X-MFA-Timestamp"]
    assert stamp == str(int(T0))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + request.content, hashlib.sha256)
    assert request.headers["X-MFA-Signature"] == "sha256=" + expected.hexdigest()
    assert request.headers["Content-Type"] == "application/json"


async def test_404_is_an_unknown_account():
    directory, http = make(lambda r: httpx.Response(404, json={"error": "not found"}))
    async with http:
        assert await directory.lookup("1") is None


def _raise(exc: Exception):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "error", "kind"),
    [
        (lambda r: httpx.Response(401, json={"error": "bad signature"}), DirectoryRejected, None),
        (lambda r: httpx.Response(403), DirectoryRejected, None),
        (lambda r: httpx.Response(400), DirectoryRejected, None),
        (lambda r: httpx.Response(500), DirectoryUnavailable, "server_error"),
        (lambda r: httpx.Response(503, text="<html>"), DirectoryUnavailable, "server_error"),
        (lambda r: httpx.Response(429), DirectoryUnavailable, "server_error"),
        (lambda r: httpx.Response(200, text="<html>ok</html>"), DirectoryUnavailable, "bad_body"),
        (lambda r: httpx.Response(200, json=["+15551230199"]), DirectoryUnavailable, "bad_body"),
        (lambda r: httpx.Response(200, json={"phone": "+1555"}), DirectoryUnavailable, "bad_body"),
        (
            lambda r: httpx.Response(200, json={"phone_number": "call me"}),
            DirectoryUnavailable,
            "bad_body",
        ),
        (
            lambda r: httpx.Response(200, content=b'{"phone_number":"' + b"1" * 20000 + b'"}'),
            DirectoryUnavailable,
            "too_large",
        ),
        (_raise(httpx.ReadTimeout("slow")), DirectoryUnavailable, "timeout"),
        (_raise(httpx.ConnectError("refused")), DirectoryUnavailable, "connect"),
        (_raise(httpx.RemoteProtocolError("reset")), DirectoryUnavailable, "transport"),
    ],
)
async def test_every_fault_is_a_domain_error(handler, error, kind):
    directory, http = make(handler)
    async with http:
        with pytest.raises(error) as caught:
            await directory.lookup("12345678")
    if kind is not None:
        assert caught.value.kind == kind
    # The text reaches logs at most: it never holds the secret, the account or a number.
    assert SECRET not in str(caught.value) and "12345678" not in str(caught.value)


async def test_a_slow_server_is_cut_at_the_deadline():
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"phone_number": "+15551230199"})

    directory, http = make(handler, deadline=0.2)
    async with http:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DirectoryUnavailable) as caught:
            await directory.lookup("1")
        assert asyncio.get_running_loop().time() - started < 1.0
    assert caught.value.kind == "timeout"


async def test_a_refused_connection_is_tried_once_more_a_sent_request_never():
    calls = {"connect": 0, "timeout": 0}

    def refuse_once(request: httpx.Request) -> httpx.Response:
        calls["connect"] += 1
        if calls["connect"] == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"phone_number": "+15551230199"})

    directory, http = make(refuse_once)
    async with http:
        assert await directory.lookup("1") == "+15551230199"

    def time_out(request: httpx.Request) -> httpx.Response:
        calls["timeout"] += 1
        raise httpx.ReadTimeout("slow")

    directory, http = make(time_out)
    async with http:
        with pytest.raises(DirectoryUnavailable):
            await directory.lookup("1")
    assert calls == {"connect": 2, "timeout": 1}


async def test_the_secret_is_not_in_the_repr():
    directory, http = make(lambda r: httpx.Response(404))
    async with http:
        assert SECRET not in repr(directory) and URL not in repr(directory)


async def test_the_breaker_opens_on_outages_only_and_then_fails_fast():
    answers = ["404", "500", "500", "401", "500", "500"]
    requests = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(int(answers.pop(0)))

    clock = FakeClock()
    directory, http = make(handler)
    guarded = GuardedDirectory(
        directory, directory_breaker(failure_threshold=2, open_seconds=30, clock=clock)
    )
    async with http:
        assert await guarded.lookup("1") is None  # 404: an answer
        with pytest.raises(DirectoryUnavailable):
            await guarded.lookup("1")  # first outage
        with pytest.raises(DirectoryUnavailable):
            await guarded.lookup("1")  # second: opens
        assert await guarded.is_open()
        with pytest.raises(DirectoryUnavailable) as caught:
            await guarded.lookup("1")
        assert caught.value.kind == "circuit_open" and len(requests) == 3
        clock.advance(31)
        with pytest.raises(DirectoryRejected):
            await guarded.lookup("1")  # the half-open trial: a 401 is an answer, closes it
        assert not await guarded.is_open()
