"""The outcome webhook: final outcomes POSTed, signed, to a receiver served on loopback.

The receiver checks every request three ways that do not trust the product's signing code:
the README's own receiver snippet (extracted from README.md and executed; it calls the
PyPI ``standardwebhooks`` library, which nobody here wrote), the Standard Webhooks formula
computed here with ``hmac`` directly, and the earlier ``X-MFA-Signature`` formula (still
sent for one release). Retries are shortened in the YAML
file (``webhook.retry_base_seconds``); what happened to each outcome is read from
``/outcomes``, as an operator would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.app import MfaAgent, build_agent
from agent.config.settings import SettingsError
from agent.ops.platform import PlatformCall
from agent.outcomes.webhook import sign, verify_signature
from testkit.servers import ServerThread, free_port
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER, DASHBOARD
from tests.support.docs import REPO, page_holding

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

#: Standard Webhooks' form: whsec_ and the base64 of 32 bytes.
SECRET = "whsec_" + base64.b64encode(b"outcome-webhook-test-key-0123456").decode()
TOOL_ANSWER_BOUND = 2.0


def readme_receiver() -> Callable[..., bool]:
    """``mfa_webhook_ok`` from the docs' Python block (Monitoring, "Learn the outcome on your
    server"), executed as an operator would paste it."""
    page = page_holding("def mfa_webhook_ok")
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
    snippet = next((b for b in blocks if "def mfa_webhook_ok" in b), None)
    assert snippet is not None, f"{page.name} has no receiver snippet (def mfa_webhook_ok)"
    namespace: dict[str, Any] = {}
    where = f"{page.relative_to(REPO)}:mfa_webhook_ok"
    exec(compile(snippet, where, "exec"), namespace)
    return namespace["mfa_webhook_ok"]


def standard_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' formula, computed without the product: v1,base64(HMAC(id.ts.body))
    under the base64-decoded key after ``whsec_``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def documented_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The documented formula, computed without the product: sha256=hex(HMAC(timestamp.body))."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Receiver:
    """A loopback endpoint that records what it got and answers from a script."""

    answers: list[int | str] = field(default_factory=list)  # per request; then 200
    hang_seconds: float = 2.0
    received: list[dict[str, Any]] = field(default_factory=list)
    readme_ok: Callable[..., bool] = field(default_factory=readme_receiver)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            answer = self.answers.pop(0) if self.answers else 200
            self.received.append(
                {
                    "body": body,
                    "timestamp": request.headers.get("x-mfa-timestamp"),
                    "signature": request.headers.get("x-mfa-signature"),
                    "delivery": request.headers.get("x-mfa-delivery"),
                    "webhook_id": request.headers.get("webhook-id"),
                    "webhook_timestamp": request.headers.get("webhook-timestamp"),
                    "webhook_signature": request.headers.get("webhook-signature"),
                    "headers": dict(request.headers),
                    "content_type": request.headers.get("content-type"),
                    "valid": verify_signature(
                        SECRET,
                        request.headers.get("x-mfa-timestamp", ""),
                        body,
                        request.headers.get("x-mfa-signature"),
                    ),
                    "readme_ok": self.readme_ok(SECRET, request.headers, body),
                }
            )
        if answer == "hang":
            await asyncio.sleep(self.hang_seconds)
            return Response(status_code=200)
        return Response(status_code=int(answer))

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with ServerThread(receiver.app()) as server:
        yield receiver, server.url + "/hook"


#: Retries fast enough for a test: the first after 0.05 s, then doubling.
FAST_RETRIES = {"retry_base_seconds": 0.05, "request_timeout_seconds": 0.5}


@pytest.fixture
def hooked_agent(fake_signalwire, make_settings, serve_agent) -> Callable[..., tuple[Any, str]]:
    """An agent (SignalWire fake) whose outcomes go to ``url``, with fast retries."""

    def make(url: str, **webhook: float) -> tuple[MfaAgent, str]:
        _, sw_url = fake_signalwire
        settings = make_settings(
            signalwire_url=sw_url,
            config={"webhook": {**FAST_RETRIES, **webhook}},
            MFA_OUTCOME_WEBHOOK_URL=url,
            MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
        )
        agent = build_agent(settings)
        return agent, serve_agent(agent)

    return make


async def timed(call: PlatformCall, function: str, **arguments: Any) -> None:
    started = time.perf_counter()
    reply = await call.invoke(function, **arguments)
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200
    assert elapsed < TOOL_ANSWER_BOUND, f"{function} took {elapsed:.2f}s"


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await _checked(check):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _checked(check: Callable[[], Any]) -> bool:
    result = check()
    return bool(await result) if asyncio.iscoroutine(result) else bool(result)


async def deliveries(url: str, **params: str) -> dict[str, dict[str, Any] | None]:
    """call id -> its outcome's delivery, read from ``/outcomes`` as an operator would."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url + "/outcomes", params=params, auth=DASHBOARD)
    assert response.status_code == 200
    return {row["call_id"]: row["delivery"] for row in response.json()["outcomes"]}


# -- delivery ------------------------------------------------------------------------------


async def test_a_verified_call_posts_one_signed_outcome(fake_signalwire, receiver, hooked_agent):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    _, url = hooked_agent(hook_url)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await timed(call, "send_mfa")
        code = fake.last_code_for(CALLER)
        await timed(call, "verify_mfa", token=wrong_code(code))
        await timed(call, "verify_mfa", token=code)

    await eventually(lambda: hook.count() >= 1)
    await asyncio.sleep(0.3)  # nothing else follows: code_sent and wrong_code are not final
    assert hook.count() == 1
    got = hook.received[0]
    # The README's snippet (the standardwebhooks library), run on the real delivery, accepts
    # it...
    assert got["readme_ok"] is True
    # ...the headers are Standard Webhooks' formula, computed here without the product, the
    # id being the delivery's...
    assert got["webhook_id"] == got["delivery"]
    assert got["webhook_timestamp"] == got["timestamp"]
    assert got["webhook_signature"] == standard_signature(
        SECRET, got["webhook_id"], got["webhook_timestamp"], got["body"]
    )
    # ...and the earlier pair is still there for one release.
    assert got["signature"] == documented_signature(SECRET, got["timestamp"], got["body"])
    assert got["valid"] is True
    assert got["content_type"] == "application/json"
    assert abs(int(got["timestamp"]) - time.time()) < 60
    payload = json.loads(got["body"])
    assert set(payload) == {
        "call_id",
        "agent_id",
        "masked_number",
        "outcome",
        "handoff",
        "at",
        "channel",
        "provider",
    }
    assert payload["channel"] == "sms"  # how the code went; "call" for a voice code
    # Who checked the code: a sandbox outcome verified nobody's phone.
    assert payload["provider"] == "signalwire"
    assert payload["handoff"] is None  # no handoff configured: the caller stays
    assert payload["call_id"] == call.call_id
    assert payload["agent_id"] == "mfa-agent"
    assert payload["masked_number"] == "***0001"
    assert payload["outcome"] == "verified"
    assert abs(payload["at"] - time.time()) < 60
    for secret in (code, CALLER, "5551230001"):
        assert secret not in got["body"].decode()
    await eventually(
        async_equals(lambda: deliveries(url), {call.call_id: {"state": "delivered", "attempts": 1}})
    )


def async_equals(read: Callable[[], Any], expected: Any) -> Callable[[], Any]:
    async def check() -> bool:
        return await read() == expected

    return check


async def test_a_5xx_is_retried_then_delivered(fake_signalwire, receiver, hooked_agent):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    hook.answers = [500, 429, 408]
    _, url = hooked_agent(hook_url)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await timed(call, "send_mfa")
        await timed(call, "verify_mfa", token=fake.last_code_for(CALLER))

    await eventually(
        async_equals(lambda: deliveries(url), {call.call_id: {"state": "delivered", "attempts": 4}})
    )
    assert hook.count() == 4
    assert all(r["valid"] and r["readme_ok"] for r in hook.received)
    assert len({r["delivery"] for r in hook.received}) == 1  # one outcome, retried
    assert len({r["body"] for r in hook.received}) == 1


async def test_a_4xx_is_not_retried(fake_signalwire, receiver, hooked_agent):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    hook.answers = [400]
    _, url = hooked_agent(hook_url)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await timed(call, "send_mfa")
        await timed(call, "verify_mfa", token=fake.last_code_for(CALLER))
    await eventually(
        async_equals(lambda: deliveries(url), {call.call_id: {"state": "dead", "attempts": 1}})
    )
    await asyncio.sleep(0.3)
    assert hook.count() == 1


@pytest.mark.parametrize("dead", ["nothing listening", "hangs"])
async def test_a_dead_receiver_never_delays_the_tools_and_retries_stop(
    dead, fake_signalwire, receiver, hooked_agent
):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    if dead == "hangs":
        hook.answers = ["hang"] * 100
        target = hook_url
    else:
        target = f"http://127.0.0.1:{free_port()}/hook"
    # Retried for 2 seconds after each outcome (retry_hours in hours), then dead.
    _, url = hooked_agent(target, retry_hours=2 / 3600, request_timeout_seconds=0.3)
    calls = []
    async with httpx.AsyncClient(timeout=15) as http:
        # Several finals wait behind the dead receiver; every answer stays fast.
        for n in range(3):
            call = await new_call(http, url, caller=f"+1555123000{n + 1}")
            await timed(call, "send_mfa")
            await timed(call, "verify_mfa", token=fake.last_code_for(call.caller))
            await timed(call, "send_mfa")
            calls.append(call.call_id)

    async def all_dead() -> bool:
        found = await deliveries(url)
        return set(found) == set(calls) and all(d["state"] == "dead" for d in found.values())

    await eventually(all_dead, within=20)
    found = await deliveries(url)
    # Retried (more than one attempt each), then given up: nothing more is tried.
    assert all(d["attempts"] >= 2 for d in found.values()), found
    seen = hook.count()
    await asyncio.sleep(0.5)
    assert hook.count() == seen and await deliveries(url) == found


async def test_exhausted_and_expired_are_delivered_too(fake_signalwire, receiver, hooked_agent):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    _, url = hooked_agent(hook_url)
    async with httpx.AsyncClient(timeout=15) as http:
        exhausted = await new_call(http, url)
        await timed(exhausted, "send_mfa")
        wrong = wrong_code(fake.last_code_for(CALLER))
        for _ in range(3):
            await timed(exhausted, "verify_mfa", token=wrong)

        expired = await new_call(http, url, caller="+15551230002")
        await timed(expired, "send_mfa")
        code = fake.last_code_for("+15551230002")
        fake.clock_offset = 601
        await timed(expired, "verify_mfa", token=code)

    await eventually(lambda: hook.count() >= 2)
    await asyncio.sleep(0.2)
    assert hook.count() == 2
    payloads = {json.loads(r["body"])["call_id"]: json.loads(r["body"]) for r in hook.received}
    assert payloads[exhausted.call_id]["outcome"] == "exhausted"
    assert payloads[expired.call_id]["outcome"] == "expired"
    assert payloads[expired.call_id]["masked_number"] == "***0002"
    assert all(r["valid"] for r in hook.received)


async def test_the_secret_is_never_logged(fake_signalwire, receiver, hooked_agent, caplog):
    fake, _ = fake_signalwire
    hook, hook_url = receiver
    hook.answers = [503]
    caplog.set_level(logging.DEBUG)
    agent, url = hooked_agent(hook_url + "?token=in-the-url")
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await timed(call, "send_mfa")
        await timed(call, "verify_mfa", token=fake.last_code_for(CALLER))
    await eventually(
        async_equals(lambda: deliveries(url), {call.call_id: {"state": "delivered", "attempts": 2}})
    )
    ours = [record for record in caplog.records if record.name.startswith("mfa")]
    logged = "\n".join(str(record.__dict__) for record in ours)
    assert "outcome_webhook_delivered" in logged and "outcome_webhook_retry" in logged
    assert SECRET not in logged and "in-the-url" not in logged
    assert SECRET not in repr(agent.deliverer)


# -- signatures ----------------------------------------------------------------------------


def test_sign_is_the_documented_formula():
    body = b'{"call_id":"c","outcome":"verified"}'
    assert sign(SECRET, "1764072000", body) == documented_signature(SECRET, "1764072000", body)
    assert sign(SECRET, 1764072000, body.decode()) == documented_signature(
        SECRET, "1764072000", body
    )


def test_the_readme_receiver_takes_the_standard_formula_and_refuses_others():
    """The README's receiver accepts Standard Webhooks' signature of now, computed here, and
    refuses a colon-joined one, another id and a signature without its version."""
    readme_ok = readme_receiver()
    body = b'{"call_id":"c","outcome":"verified"}'
    stamp = str(int(time.time()))
    good = {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp,
        "webhook-signature": standard_signature(SECRET, "msg_1", stamp, body),
    }
    assert readme_ok(SECRET, good, body)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    colon = hmac.new(key, f"msg_1:{stamp}:".encode() + body, hashlib.sha256).digest()
    assert not readme_ok(
        SECRET, {**good, "webhook-signature": "v1," + base64.b64encode(colon).decode()}, body
    )
    assert not readme_ok(SECRET, {**good, "webhook-id": "msg_2"}, body)
    unversioned = good["webhook-signature"].removeprefix("v1,")
    assert not readme_ok(SECRET, {**good, "webhook-signature": unversioned}, body)


def test_verify_signature_still_checks_the_earlier_headers():
    body = b'{"call_id":"c","outcome":"verified"}'
    stamp = str(int(time.time()))
    assert verify_signature(SECRET, stamp, body, documented_signature(SECRET, stamp, body))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b":" + body, hashlib.sha256)
    assert not verify_signature(SECRET, stamp, body, "sha256=" + mac.hexdigest())


def test_verify_signature_accepts_the_real_thing_and_rejects_tampering():
    body = b'{"call_id":"c","agent_id":"a","masked_number":"***0001","outcome":"verified","at":1}'
    now = 1_764_072_000
    stamp = str(now)
    signature = documented_signature(SECRET, stamp, body)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, stamp, body, signature, now=now)
    assert verify_signature(SECRET, now, body.decode(), signature, now=now + 299)

    tampered = body.replace(b"verified", b"exhausted")
    assert not verify_signature(SECRET, stamp, tampered, signature, now=now)
    assert not verify_signature("another-secret-0123456789", stamp, body, signature, now=now)
    assert not verify_signature(SECRET, str(now + 1), body, signature, now=now)
    assert not verify_signature(SECRET, stamp, body, signature.upper(), now=now)
    assert not verify_signature(SECRET, stamp, body, signature[len("sha256=") :], now=now)
    for bad in (None, "", "sha256=", "md5=abc"):
        assert not verify_signature(SECRET, stamp, body, bad, now=now)
    for bad_stamp in ("", "abc", "-1", "1.5", "١٧٦٤"):
        assert not verify_signature(SECRET, bad_stamp, body, sign(SECRET, bad_stamp, body))


def test_verify_signature_rejects_old_and_future_timestamps():
    body = b"{}"
    now = 1_764_072_000
    old = str(now - 301)
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body), now=now)
    future = str(now + 301)
    assert not verify_signature(SECRET, future, body, sign(SECRET, future, body), now=now)
    edge = str(now - 300)
    assert verify_signature(SECRET, edge, body, sign(SECRET, edge, body), now=now)
    assert not verify_signature(SECRET, edge, body, sign(SECRET, edge, body), now=now, window=60)


# -- settings ------------------------------------------------------------------------------


def test_a_url_without_a_secret_stops_start_up(make_settings):
    with pytest.raises(SettingsError, match="MFA_OUTCOME_WEBHOOK_SECRET"):
        make_settings(MFA_OUTCOME_WEBHOOK_URL="https://hooks.example.com/mfa")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MFA_OUTCOME_WEBHOOK_URL": "hooks.example.com/mfa"}, "MFA_OUTCOME_WEBHOOK_URL"),
        ({"MFA_OUTCOME_WEBHOOK_URL": "ftp://hooks.example.com"}, "MFA_OUTCOME_WEBHOOK_URL"),
        ({"MFA_OUTCOME_WEBHOOK_SECRET": "short"}, "MFA_OUTCOME_WEBHOOK_SECRET"),
    ],
)
def test_bad_webhook_settings_are_named(make_settings, env, named):
    full = {"MFA_OUTCOME_WEBHOOK_URL": "https://hooks.example.com/mfa"}
    full["MFA_OUTCOME_WEBHOOK_SECRET"] = SECRET
    full.update(env)
    with pytest.raises(SettingsError, match=named) as caught:
        make_settings(**full)
    assert SECRET not in str(caught.value)


def test_webhook_settings_are_optional_and_kept_secret(make_settings):
    plain = make_settings()
    assert plain.outcome_webhook_url is None and plain.outcome_webhook_secret is None
    assert build_agent(plain).deliverer is None

    hooked = make_settings(
        MFA_OUTCOME_WEBHOOK_URL="https://hooks.example.com/mfa",
        MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
    )
    assert hooked.outcome_webhook_url == "https://hooks.example.com/mfa"
    assert hooked.outcome_webhook_secret.get_secret_value() == SECRET
    assert SECRET not in repr(hooked) and SECRET not in str(hooked.model_dump())
