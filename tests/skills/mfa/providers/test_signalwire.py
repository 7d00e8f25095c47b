"""SignalWireProvider against an in-process ``httpx.MockTransport``.

The handler routes on ``request.url.path`` like SignalWire's MFA API would
(see /work/shared/signalwire-notes.md). Every failure must come out as a
domain error from ``base.py``, only a connection that never opened is retried,
the deadline holds whatever the server does, and no error text carries the
credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skills.mfa.delivery.http_pool import new_shared_client
from skills.mfa.delivery.providers.base import (
    CodeNotFound,
    CodeProvider,
    MfaError,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)
from skills.mfa.delivery.providers.signalwire import SignalWireProvider, normalize_space_url

pytestmark = pytest.mark.anyio

BASE = "https://example.signalwire.com"
PROJECT_ID = "a1b2c3d4-proj-9e8f-7a6b-5c4d3e2f1a0b"
API_TOKEN = "PTsecret0123456789abcdefTOKEN"
FROM_NUMBER = "+15559870000"
REQUEST_ID = "9f8e7d6c-5b4a-3210-fedc-ba9876543210"
SMS_PATH = "/api/relay/rest/mfa/sms"
VERIFY_PATH = f"/api/relay/rest/mfa/{REQUEST_ID}/verify"

SEND_REQUEST = SendRequest(
    to="+15551230001",
    message="Your verification code is:",
    token_length=6,
    valid_for=600,
    max_attempts=3,
)

Handler = Callable[[httpx.Request], Any]


class Recorder:
    """Wraps a handler and keeps every request it was given."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, Awaitable):
            result = await result
        return result

    @property
    def calls(self) -> int:
        return len(self.requests)


def signalwire_api(
    *,
    send: Callable[[httpx.Request], httpx.Response] | None = None,
    verify: Callable[[httpx.Request], httpx.Response] | None = None,
) -> Handler:
    """A handler routing on the path: the two MFA endpoints, 404 for anything else."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == SMS_PATH and send is not None:
            return send(request)
        if path.startswith("/api/relay/rest/mfa/") and path.endswith("/verify") and verify:
            return verify(request)
        return httpx.Response(404, json={"error": "Not Found"})

    return handler


def answer_everywhere(response: Callable[[], httpx.Response]) -> Handler:
    return signalwire_api(send=lambda _r: response(), verify=lambda _r: response())


async def run_with(
    handler: Handler,
    operation: Callable[[SignalWireProvider], Awaitable[Any]],
    *,
    base_url: str = BASE,
    deadline_seconds: float = 8.0,
) -> tuple[Any, Recorder]:
    """Run one provider call against ``handler``; returns (result or raised error, recorder)."""
    recorder = Recorder(handler)
    async with new_shared_client(
        deadline_seconds=deadline_seconds,
        connect_timeout_seconds=2.0,
        max_connections=10,
        transport=httpx.MockTransport(recorder),
    ) as http:
        provider = SignalWireProvider(
            http=http,
            base_url=base_url,
            project_id=PROJECT_ID,
            api_token=API_TOKEN,
            from_number=FROM_NUMBER,
            deadline_seconds=deadline_seconds,
        )
        try:
            result: Any = await operation(provider)
        except MfaError as exc:
            result = exc
    return result, recorder


def do_send(provider: SignalWireProvider) -> Awaitable[SentCode]:
    return provider.send(SEND_REQUEST)


def do_verify(provider: SignalWireProvider) -> Awaitable[VerifyOutcome]:
    return provider.verify(REQUEST_ID, "123456")


OPERATIONS = {"send": do_send, "verify": do_verify}


def assert_no_credentials(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(getattr(exc, "reason", ""))):
        assert API_TOKEN not in text
        assert PROJECT_ID not in text


def sent_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={"id": REQUEST_ID, "success": True, "to": SEND_REQUEST.to, "channel": "sms"},
    )


# -- send ------------------------------------------------------------------------------------


def test_provider_satisfies_protocol() -> None:
    provider = SignalWireProvider(
        http=httpx.AsyncClient(),
        base_url=BASE,
        project_id=PROJECT_ID,
        api_token=API_TOKEN,
        from_number=FROM_NUMBER,
    )
    assert isinstance(provider, CodeProvider)
    assert provider.name == "signalwire"


async def test_send_posts_the_documented_request() -> None:
    result, rec = await run_with(signalwire_api(send=sent_ok), do_send)

    assert result == SentCode(request_id=REQUEST_ID)
    assert rec.calls == 1
    request = rec.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/api/relay/rest/mfa/sms"
    expected_auth = base64.b64encode(f"{PROJECT_ID}:{API_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert body == {
        "to": "+15551230001",
        "from": FROM_NUMBER,
        "message": "Your verification code is:",
        "token_length": 6,
        "valid_for": 600,
        "max_attempts": 3,
        "allow_alphas": False,
    }
    assert body["allow_alphas"] is False
    assert b'"allow_alphas":false' in request.content.replace(b" ", b"")


async def test_send_passes_the_rules_through_unchanged() -> None:
    request = SendRequest(
        to="+447700900123", message="Code:", token_length=20, valid_for=604800, max_attempts=20
    )
    _, rec = await run_with(signalwire_api(send=sent_ok), lambda p: p.send(request))
    body = json.loads(rec.requests[0].content)
    assert body["to"] == "+447700900123"
    assert body["message"] == "Code:"
    assert (body["token_length"], body["valid_for"], body["max_attempts"]) == (20, 604800, 20)


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True, "to": "+15551230001", "channel": "sms"},
        {"id": 12345, "success": True},
        {"id": None, "success": True},
        {"id": "", "success": True},
        {"id": ["abc"], "success": True},
        {"id": "x" * 129, "success": True},
    ],
    ids=["missing", "int", "null", "empty", "list", "too-long"],
)
async def test_send_without_a_usable_id_is_bad_body(payload: dict[str, Any]) -> None:
    result, rec = await run_with(
        signalwire_api(send=lambda _r: httpx.Response(200, json=payload)), do_send
    )
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "bad_body"
    assert result.may_have_arrived is True
    assert rec.calls == 1


async def test_send_not_queued() -> None:
    result, _ = await run_with(
        signalwire_api(
            send=lambda _r: httpx.Response(200, json={"id": REQUEST_ID, "success": False})
        ),
        do_send,
    )
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "not_queued"
    assert result.may_have_arrived is False


# -- verify ----------------------------------------------------------------------------------


async def test_verify_posts_the_documented_request() -> None:
    ok = signalwire_api(verify=lambda _r: httpx.Response(200, json={"success": True}))
    result, rec = await run_with(ok, do_verify)

    assert result == VerifyOutcome(verified=True)
    assert result.attempts_left is None
    assert rec.calls == 1
    request = rec.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/api/relay/rest/mfa/{REQUEST_ID}/verify"
    expected_auth = base64.b64encode(f"{PROJECT_ID}:{API_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert json.loads(request.content) == {"token": "123456"}


async def test_verify_wrong_code() -> None:
    result, _ = await run_with(
        signalwire_api(verify=lambda _r: httpx.Response(200, json={"success": False})), do_verify
    )
    assert result == VerifyOutcome(verified=False)


async def test_verify_404_is_code_not_found() -> None:
    for response in (
        httpx.Response(404),
        httpx.Response(404, json={"error": "Not Found"}),
        httpx.Response(404, text="<html>gone</html>"),
    ):
        result, rec = await run_with(signalwire_api(verify=lambda _r, r=response: r), do_verify)
        assert isinstance(result, CodeNotFound)
        assert rec.calls == 1


@pytest.mark.parametrize(
    "payload",
    [{}, {"success": "true"}, {"success": 1}, {"success": None}, {"verified": True}],
)
async def test_verify_without_a_boolean_success_is_bad_body(payload: dict[str, Any]) -> None:
    result, _ = await run_with(
        signalwire_api(verify=lambda _r: httpx.Response(200, json=payload)), do_verify
    )
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "bad_body"


@pytest.mark.parametrize(
    "request_id",
    [
        "../sms",
        "..",
        "abc/def",
        "/abc",
        "abc?x=1",
        "abc#frag",
        "abc%2Fdef",
        "abc def",
        "abc.def",
        "",
        "a" * 129,
        "abc\n",
    ],
)
async def test_verify_refuses_ids_that_could_change_the_path(request_id: str) -> None:
    ok = signalwire_api(verify=lambda _r: httpx.Response(200, json={"success": True}))
    result, rec = await run_with(ok, lambda p: p.verify(request_id, "123456"))
    assert isinstance(result, CodeNotFound)
    assert rec.calls == 0


_ALLOWED_ID_CHARS = st.sampled_from("abcdefABCDEF0123456789-_")


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=40).filter(
        lambda s: any(not (ch.isalnum() or ch in "-_") for ch in s)
    )
)
def test_verify_never_sends_an_id_outside_the_safe_alphabet(request_id: str) -> None:
    ok = signalwire_api(verify=lambda _r: httpx.Response(200, json={"success": True}))
    result, rec = asyncio.run(run_with(ok, lambda p: p.verify(request_id, "123456")))
    assert isinstance(result, CodeNotFound)
    assert rec.calls == 0


@settings(max_examples=60, deadline=None)
@given(st.text(_ALLOWED_ID_CHARS, min_size=1, max_size=128))
def test_verify_puts_a_safe_id_in_exactly_one_path_segment(request_id: str) -> None:
    ok = signalwire_api(verify=lambda _r: httpx.Response(200, json={"success": True}))
    result, rec = asyncio.run(run_with(ok, lambda p: p.verify(request_id, "123456")))
    assert result == VerifyOutcome(verified=True)
    assert rec.requests[0].url.path == f"/api/relay/rest/mfa/{request_id}/verify"


# -- faults, for both calls ------------------------------------------------------------------

UNAUTHORIZED = {"error": "Unauthorized"}
INVALID_ATTRIBUTE = {
    "errors": [
        {
            "detail": "to is not a valid phone number",
            "status": "422",
            "title": "Invalid Attribute",
            "code": "422",
        }
    ]
}


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize(
    "status, body",
    [
        (401, UNAUTHORIZED),
        (403, {"error": "Forbidden"}),
        (403, None),
    ],
)
async def test_auth_failures_are_rejected(op: str, status: int, body: Any) -> None:
    def respond() -> httpx.Response:
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    result, rec = await run_with(answer_everywhere(respond), OPERATIONS[op])
    assert isinstance(result, ProviderRejected)
    assert result.status_code == status
    assert result.is_auth_failure
    assert rec.calls == 1
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
async def test_422_reason_is_the_documented_detail(op: str) -> None:
    result, _ = await run_with(
        answer_everywhere(lambda: httpx.Response(422, json=INVALID_ATTRIBUTE)), OPERATIONS[op]
    )
    assert isinstance(result, ProviderRejected)
    assert result.status_code == 422
    assert not result.is_auth_failure
    assert result.reason == "to is not a valid phone number"
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
async def test_401_reason_and_other_4xx(op: str) -> None:
    result, _ = await run_with(
        answer_everywhere(lambda: httpx.Response(401, json=UNAUTHORIZED)), OPERATIONS[op]
    )
    assert isinstance(result, ProviderRejected)
    assert result.reason == "Unauthorized"

    result, _ = await run_with(
        answer_everywhere(lambda: httpx.Response(400, text="<html>bad</html>")), OPERATIONS[op]
    )
    assert isinstance(result, ProviderRejected)
    assert result.status_code == 400
    assert not result.is_auth_failure
    assert result.reason == ""


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize(
    "status, kwargs",
    [
        (500, {"json": {"error": "Internal Server Error"}}),
        (502, {"text": "<html><body>Bad Gateway</body></html>"}),
        (503, {}),
        (500, {"content": b"[" * 60_000}),
        (503, {"content": b"x" * (1024 * 1024)}),
    ],
    ids=["500-json", "502-html", "503-empty", "500-nested", "503-1MB"],
)
async def test_server_errors_may_have_arrived(op: str, status: int, kwargs: dict[str, Any]) -> None:
    result, rec = await run_with(
        answer_everywhere(lambda: httpx.Response(status, **kwargs)), OPERATIONS[op]
    )
    assert isinstance(result, ProviderUnavailable)
    # A body past the 64 KB limit is abandoned while it streams: an outage all the same.
    too_large = len(kwargs.get("content", b"")) > 64 * 1024
    assert result.kind == ("too_large" if too_large else "server_error")
    assert result.may_have_arrived is True
    assert result.status_code == status
    assert rec.calls == 1  # a 5xx is never retried: the request reached SignalWire
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("status", [429, 408])
async def test_throttled(op: str, status: int) -> None:
    result, rec = await run_with(
        answer_everywhere(lambda: httpx.Response(status, json={"error": "Too Many Requests"})),
        OPERATIONS[op],
    )
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "throttled"
    assert result.status_code == status
    assert rec.calls == 1
    assert_no_credentials(result)


UNPARSABLE_200 = {
    "html": {"text": "<html><body>Service Unavailable</body></html>"},
    "empty": {"content": b""},
    "json-array": {"json": [{"id": REQUEST_ID, "success": True}]},
    "json-string": {"json": "success"},
    "not-utf8": {"content": b"\xff\xfe{\x00"},
    "1MB": {
        "content": json.dumps(
            {"id": REQUEST_ID, "success": True, "pad": "x" * (1024 * 1024)}
        ).encode()
    },
    "deeply-nested": {"content": b"[" * 60_000},
}


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("body", UNPARSABLE_200)
async def test_unparsable_body_is_bad_body(op: str, body: str) -> None:
    result, rec = await run_with(
        answer_everywhere(lambda: httpx.Response(200, **UNPARSABLE_200[body])), OPERATIONS[op]
    )
    assert isinstance(result, ProviderUnavailable)
    # Past 64 KB the body is abandoned while it streams (http_pool.read_bounded).
    assert result.kind == ("too_large" if body == "1MB" else "bad_body")
    assert result.may_have_arrived is True
    assert rec.calls == 1
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_unopened_connection_is_retried_once(op: str, error: type[Exception]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise error("connection refused", request=request)

    result, rec = await run_with(refuse, OPERATIONS[op])
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "connect"
    assert result.may_have_arrived is False
    assert rec.calls == 2
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
async def test_connect_error_then_success(op: str) -> None:
    ok = signalwire_api(send=sent_ok, verify=lambda _r: httpx.Response(200, json={"success": True}))
    failures = [httpx.ConnectError]

    def flaky(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop()("connection refused", request=request)
        return ok(request)

    result, rec = await run_with(flaky, OPERATIONS[op])
    assert result in (SentCode(request_id=REQUEST_ID), VerifyOutcome(verified=True))
    assert rec.calls == 2
    # The retry is the same request.
    assert rec.requests[0].url == rec.requests[1].url
    assert rec.requests[0].content == rec.requests[1].content


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.WriteTimeout])
async def test_timeout_after_sending_is_never_retried(op: str, error: type[Exception]) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise error("timed out", request=request)

    result, rec = await run_with(slow, OPERATIONS[op])
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "timeout"
    assert result.may_have_arrived is True
    assert rec.calls == 1
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("error", [httpx.RemoteProtocolError, httpx.ReadError])
async def test_other_transport_errors_are_not_retried(op: str, error: type[Exception]) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise error("peer closed connection", request=request)

    result, rec = await run_with(broken, OPERATIONS[op])
    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "transport"
    assert result.may_have_arrived is True
    assert rec.calls == 1


@pytest.mark.parametrize("op", OPERATIONS)
async def test_overall_deadline_holds_against_a_hanging_server(op: str) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"id": REQUEST_ID, "success": True})

    started = time.monotonic()
    result, rec = await run_with(hang, OPERATIONS[op], deadline_seconds=0.2)
    elapsed = time.monotonic() - started

    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "timeout"
    assert result.may_have_arrived is True
    assert rec.calls == 1
    assert elapsed < 2.0
    assert_no_credentials(result)


@pytest.mark.parametrize("op", OPERATIONS)
async def test_deadline_covers_the_connect_retry(op: str) -> None:
    """A retry never stretches the call beyond its deadline."""

    refused = [False]

    async def refuse_then_hang(request: httpx.Request) -> httpx.Response:
        if not refused[0]:
            refused[0] = True
            raise httpx.ConnectError("connection refused", request=request)
        await asyncio.sleep(5)
        return httpx.Response(200, json={"id": REQUEST_ID, "success": True})

    started = time.monotonic()
    result, rec = await run_with(refuse_then_hang, OPERATIONS[op], deadline_seconds=0.2)
    elapsed = time.monotonic() - started

    assert isinstance(result, ProviderUnavailable)
    assert result.kind == "timeout"
    assert rec.calls == 2
    assert elapsed < 2.0


# -- base URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, expected_base",
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("example.signalwire.com", "https://example.signalwire.com"),
        ("example", "https://example.signalwire.com"),
        ("https://example.signalwire.com/", "https://example.signalwire.com"),
    ],
)
async def test_normalized_space_urls(space: str, expected_base: str) -> None:
    base_url = normalize_space_url(space)
    assert base_url == expected_base
    ok = signalwire_api(send=sent_ok, verify=lambda _r: httpx.Response(200, json={"success": True}))

    sent, rec = await run_with(ok, do_send, base_url=base_url)
    assert sent == SentCode(request_id=REQUEST_ID)
    assert str(rec.requests[0].url) == f"{expected_base}/api/relay/rest/mfa/sms"

    verified, rec = await run_with(ok, do_verify, base_url=base_url)
    assert verified == VerifyOutcome(verified=True)
    assert str(rec.requests[0].url) == f"{expected_base}/api/relay/rest/mfa/{REQUEST_ID}/verify"


async def test_shared_client_ignores_environment_and_redirects() -> None:
    async with new_shared_client(
        deadline_seconds=3.0, connect_timeout_seconds=1.0, max_connections=5
    ) as http:
        assert http.trust_env is False
        assert http.follow_redirects is False
        assert http.timeout.connect == 1.0
        assert http.timeout.read == 3.0


async def test_redirect_is_not_followed() -> None:
    """A redirect could resend the credentials elsewhere: it is refused, not followed."""
    result, rec = await run_with(
        answer_everywhere(
            lambda: httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        ),
        do_send,
    )
    assert isinstance(result, ProviderRejected)
    assert result.status_code == 302
    assert rec.calls == 1


class SlowRefusalThenLoopback(httpx.AsyncBaseTransport):
    """The first connection attempt takes ``connect_seconds`` and then fails (as a connect
    timeout would); later attempts go over a real loopback connection."""

    def __init__(self, connect_seconds: float) -> None:
        self.connect_seconds = connect_seconds
        self.attempts = 0
        self._real = httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.attempts == 1:
            await asyncio.sleep(self.connect_seconds)
            raise httpx.ConnectTimeout("connect timed out", request=request)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@contextlib.asynccontextmanager
async def silent_loopback_server() -> AsyncIterator[str]:
    """A loopback HTTP server that accepts, reads the request and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("op", OPERATIONS)
async def test_deadline_covers_a_slow_connect_failure_and_a_hanging_retry(op):
    """The caller's answer is bounded by ONE deadline for the whole send, retry included.

    A deadline per attempt would let the retry start a fresh one: the caller would wait
    ``connect_seconds + deadline`` (about 2 + 8 s with the defaults). Timers never fire
    early, so that break takes at least 2.7 s here; a whole-send deadline takes 1.5 s.
    """
    deadline, connect_seconds = 1.5, 1.2
    transport = SlowRefusalThenLoopback(connect_seconds)
    async with (
        silent_loopback_server() as url,
        new_shared_client(
            deadline_seconds=deadline,
            connect_timeout_seconds=connect_seconds,
            max_connections=4,
            transport=transport,
        ) as http,
    ):
        provider = SignalWireProvider(
            http=http,
            base_url=url,
            project_id=PROJECT_ID,
            api_token=API_TOKEN,
            from_number=FROM_NUMBER,
            deadline_seconds=deadline,
        )
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as failed:
            await OPERATIONS[op](provider)
        elapsed = time.monotonic() - started

    assert transport.attempts == 2, "the refused connection is retried once"
    assert failed.value.kind == "timeout"
    assert failed.value.may_have_arrived is True
    assert elapsed < connect_seconds + deadline - 0.2, f"answered after {elapsed:.2f} s"


async def test_a_space_that_does_not_answer_is_named_in_the_log(caplog) -> None:
    """``SIGNALWIRE_SPACE=example`` that cannot be reached: the log says which host."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    caplog.set_level("WARNING", logger="mfa.signalwire")
    error, _ = await run_with(refuse, do_send, base_url="https://example.signalwire.com")
    assert isinstance(error, ProviderUnavailable)
    (record,) = [r for r in caplog.records if r.getMessage() == "signalwire_unreachable"]
    assert record.host == "example.signalwire.com"
    assert record.kind == error.kind
