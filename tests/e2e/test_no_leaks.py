"""No secret leaves the agent: not in logs, not in events, not in HTTP answers.

Every flow (send, wrong, right, reuse, exhaustion, malformed input, another number,
the SWML fetch, the post-prompt summary, provider faults and the open breaker) runs
against both providers while everything the agent emits is captured:

* every log record of the root, ``mfa``, ``signalwire`` and ``uvicorn`` loggers at
  DEBUG, rendered with the product's ``JsonFormatter`` so extra fields are included
  (our loggers may have ``propagate=False``, so the capture is attached to each);
* every event: the publisher's and, when the live hub exists, the hub's;
* every HTTP response body the agent sent.

None may hold a code that was texted, the API token, the basic-auth password, the
SWAIG secret or a full phone number. Request ids are for ``meta_data`` only: never in a
tool's ``response`` text or in an event. Allowed on purpose: the sandbox outbox itself
(the ``mfa.sandbox`` logger's ``sandbox_text`` record and ``sandbox_text`` events hold
the code: in the sandbox the operator's screen is the phone), and the basic-auth
credentials in the SWML's webhook URLs (SignalWire needs them to call back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from agent.app import MfaAgent, build_agent, log_sandbox_text
from agent.http.logging_setup import JsonFormatter
from agent.ops.platform import PlatformCall
from skills.mfa.delivery.providers.sandbox import SandboxText
from skills.mfa.flow.tools import META_REQUEST_ID
from testkit.fake_signalwire import API_TOKEN, FakeSignalWire
from testkit.servers import ServerThread
from tests.support.calls import wrong_code
from tests.support.defaults import AUTH, CALLER, SWAIG_SECRET
from tests.support.fakes import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

OTHER = "+15557654321"
NUMBERS = [CALLER, CALLER.lstrip("+"), OTHER, OTHER.lstrip("+")]
LOGGERS = ["", "mfa", "agent", "skills", "signalwire", "uvicorn", "uvicorn.error"]


# -- capture ---------------------------------------------------------------------------


class CaptureHandler(logging.Handler):
    """Keeps each record once (it may reach us through several loggers), rendered."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.formatter_ = JsonFormatter()
        self.records: list[tuple[logging.LogRecord, str]] = []
        self._seen: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            if id(record) in self._seen:
                return
            self._seen.add(id(record))  # the record stays referenced: ids do not repeat
            try:
                rendered = self.formatter_.format(record)
            except Exception as exc:  # a record we cannot render is a finding too
                rendered = f"<unrenderable {type(exc).__name__}> {record.msg!r}"
            self.records.append((record, rendered))


@pytest.fixture
def captured_logs() -> Iterator[CaptureHandler]:
    handler = CaptureHandler()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


@dataclass
class Run:
    """What one provider's run produced, and the secrets it involved."""

    provider: str
    agent: MfaAgent
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[tuple[str, str]] = field(default_factory=list)
    codes: set[str] = field(default_factory=set)
    request_ids: set[str] = field(default_factory=set)
    outbox: list[SandboxText] = field(default_factory=list)
    fake: FakeSignalWire | None = None
    sandbox_fault: bool = False
    breaker_clock: FakeClock = field(default_factory=FakeClock)

    def code_for(self, number: str) -> str:
        if self.fake is not None:
            return self.fake.last_code_for(number)
        return next(t.code for t in reversed(self.outbox) if t.to == number)


@pytest.fixture
def fake_server() -> Iterator[tuple[FakeSignalWire, str, ServerThread]]:
    fake = FakeSignalWire()
    server = ServerThread(fake.app()).__enter__()
    try:
        yield fake, server.url, server
    finally:
        fake.fault = None
        stop(server)


def stop(server: ServerThread) -> None:
    """Stop gracefully, or by force when a "hang" request still holds the shutdown."""
    server.server.should_exit = True
    server.thread.join(timeout=2)
    server.server.force_exit = True
    server.__exit__(None, None, None)


CONFIG = {
    "upstream": {"deadline_seconds": 1.0},
    "breaker": {"failure_threshold": 3, "open_seconds": 0.5},
    "limits": {
        "sends_per_call": 20,
        "per_recipient_per_hour": 1000,
        "per_recipient_per_day": 10000,
    },
}


@pytest.fixture(params=["signalwire", "sandbox"])
def run(request, captured_logs, fake_server, make_settings, serve_agent) -> Run:
    fake, sw_url, _ = fake_server
    box: dict[str, Run] = {}

    def deliver(text: SandboxText) -> None:
        current = box["run"]
        current.outbox.append(text)
        current.codes.add(text.code)
        current.request_ids.add(text.request_id)
        if current.sandbox_fault:
            # Exception text holding the code and the number: it must go nowhere.
            raise RuntimeError(f"handset {text.to} unreachable, lost {text.body}")
        log_sandbox_text(text)  # what the agent does by default, plus the live page
        feed = getattr(current.agent, "live_feed", None)
        if feed is not None:
            feed.sandbox_text(text)

    # The breaker's window moves when the test says so, not when a busy machine stalls.
    breaker_clock = FakeClock()
    if request.param == "signalwire":
        agent = build_agent(
            make_settings(signalwire_url=sw_url, config=CONFIG), breaker_clock=breaker_clock
        )
    else:
        agent = build_agent(
            make_settings(config=CONFIG), sandbox_deliver=deliver, breaker_clock=breaker_clock
        )
    current = Run(
        request.param,
        agent,
        "",
        fake=fake if request.param == "signalwire" else None,
        breaker_clock=breaker_clock,
    )
    box["run"] = current
    agent.publisher.subscribe(lambda event: current.events.append(event.to_dict()))
    current.url = serve_agent(agent)
    return current


# -- the flows ---------------------------------------------------------------------------


async def new_call(run: Run, http: httpx.AsyncClient, caller: str = CALLER) -> PlatformCall:
    call = PlatformCall(http=http, base_url=run.url, auth=AUTH, caller=caller)
    await call.start()
    return call


async def every_flow(run: Run, http: httpx.AsyncClient) -> None:
    url = run.url
    # The SWML fetch, both ways, and the probes.
    assert (await http.get(url + "/", auth=AUTH)).status_code == 200
    assert (await http.get(url + "/health")).status_code == 200
    assert (await http.get(url + "/ready")).status_code == 200

    # Send, wrong, right, reuse.
    call = await new_call(run, http)
    assert "texted" in (await call.invoke("send_mfa")).response
    code = run.code_for(CALLER)
    kept = dict(call.meta_data["mfa_skill"])
    assert "not correct" in (await call.invoke("verify_mfa", token=wrong_code(code))).response
    said = " ".join(code)
    assert "verified" in (await call.invoke("verify_mfa", token=f"my code is {said}")).response
    assert "No code" in (await call.invoke("verify_mfa", token=code)).response
    call.meta_data["mfa_skill"] = kept  # a replayed request id: finished, answered here
    assert "No code is waiting" in (await call.invoke("verify_mfa", token=code)).response
    # The summary, written by a model that ignored "never include a code or a number".
    status = await call.post_summary(
        {
            "caller_wanted": f"verify {CALLER}",
            "code_sent": True,
            "verified": True,
            "outcome": f"Verified {CALLER} with code {code} ({said}).",
        }
    )
    assert status == 200

    # A resend within the cooldown is refused.
    call = await new_call(run, http)
    await call.invoke("send_mfa")
    assert "can be sent in about" in (await call.invoke("send_mfa")).response

    # Exhaustion, then a new code works.
    call = await new_call(run, http)
    await call.invoke("send_mfa")
    code = run.code_for(CALLER)
    for _ in range(3):
        await call.invoke("verify_mfa", token=wrong_code(code))
    assert "no tries left" in call.transcript[-1][2].response
    await call.invoke("send_mfa")
    assert "verified" in (await call.invoke("verify_mfa", token=run.code_for(CALLER))).response

    # Malformed input.
    call = await new_call(run, http)
    await call.invoke("send_mfa")
    code = run.code_for(CALLER)
    for token in ("banana", code + "9", code[:-1], "x" * 5000, None, ["1"], {"t": code}):
        assert (await call.invoke("verify_mfa", token=token)).status_code == 200
    hook = call.functions["verify_mfa"]["web_hook_url"]
    target = url + hook[hook.index("/swaig") :]
    for raw in (b"not json", b"[1]", json.dumps({"function": "verify_mfa", "call_id": 5}).encode()):
        response = await http.post(
            target, content=raw, auth=AUTH, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
    huge = call.request_body("verify_mfa", {"token": code * 200_000}, "mfa_skill")
    assert (await http.post(target, json=huge, auth=AUTH)).status_code == 413
    unknown = call.request_body("drop_database", {"token": code}, "mfa_skill")
    assert (await http.post(target, json=unknown, auth=AUTH)).status_code < 500
    no_token = call.request_body("verify_mfa", {"token": code}, "mfa_skill")
    reply = await http.post(url + "/swaig/", json=no_token, auth=AUTH)
    assert "security token" in reply.json()["response"]
    assert (await http.post(url + "/swaig/", json=no_token)).status_code == 401

    # Another number, and a caller without one.
    call = await new_call(run, http)
    assert "only be texted" in (await call.invoke("send_mfa", phone_number=OTHER)).response
    anonymous = await new_call(run, http, caller="anonymous")
    assert "cannot see a phone number" in (await anonymous.invoke("send_mfa")).response

    # Provider faults, until the breaker opens; then it recovers.
    call = await new_call(run, http)
    if run.fake is not None:
        await call.invoke("send_mfa")
        code = run.code_for(CALLER)
        run.fake.fault = "500"
        other_call = await new_call(run, http)
        assert "did not confirm" in (await other_call.invoke("send_mfa")).response
        run.fake.fault = "garbage"
        reply = await call.invoke("verify_mfa", token=code)
        assert "did not answer in time" in reply.response
        run.fake.fault = "hang"
        reply = await call.invoke("verify_mfa", token=code)
        assert "did not answer in time" in reply.response
        run.fake.fault = None
    else:
        await call.invoke("send_mfa")  # a pending code for the check below
        run.sandbox_fault = True
        for _ in range(3):
            failing = await new_call(run, http)
            assert "did not answer in time" in (await failing.invoke("send_mfa")).response
        run.sandbox_fault = False
    # Three outages in a row: open, so this one fails fast.
    assert "did not answer in time" in (await call.invoke("verify_mfa", token="123456")).response
    run.breaker_clock.advance(0.6)
    call = await new_call(run, http)
    assert "texted" in (await call.invoke("send_mfa")).response
    assert "verified" in (await call.invoke("verify_mfa", token=run.code_for(CALLER))).response


# -- the checks --------------------------------------------------------------------------


def whole(code: str) -> re.Pattern[str]:
    """The code as a digit run of its own (not inside a longer number), or spoken."""
    spaced = r"\s*".join(code)
    return re.compile(rf"(?<!\d)(?:{code}|{spaced})(?!\d)")


def without_meta_actions(body: Any) -> Any:
    """The body minus its ``set_meta_data`` actions, where request ids belong."""
    if isinstance(body, dict) and isinstance(body.get("action"), list):
        actions = [a for a in body["action"] if not (isinstance(a, dict) and "set_meta_data" in a)]
        return {**body, "action": actions}
    return body


def without_webhook_credentials(text: str) -> str:
    return re.sub(r"(https?://)[^/\s:@\"]+:[^/\s@\"]+@", r"\1", text)


async def test_nothing_secret_leaks(run: Run, captured_logs: CaptureHandler):
    bodies = run.bodies

    async def keep_body(response: httpx.Response) -> None:
        await response.aread()
        bodies.append((str(response.request.url.path), response.text))

    async with httpx.AsyncClient(timeout=15, event_hooks={"response": [keep_body]}) as http:
        await asyncio.wait_for(every_flow(run, http), 60)

    if run.fake is not None:
        run.codes |= {str(t["code"]) for t in run.fake.texts}
        run.request_ids |= {
            r["path"].split("/")[-2] for r in run.fake.requests if r["path"].endswith("/verify")
        }
    for _, text in bodies:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        for action in data.get("action", []) if isinstance(data, dict) else []:
            if isinstance(action, dict) and isinstance(action.get("set_meta_data"), dict):
                rid = action["set_meta_data"].get(META_REQUEST_ID)
                if isinstance(rid, str):
                    run.request_ids.add(rid)
    assert len(run.codes) >= 5 and len(run.request_ids) >= 5  # the flows really ran

    secrets = {"API token": API_TOKEN, "password": AUTH[1], "SWAIG secret": SWAIG_SECRET}
    secrets |= {f"number {n}": n for n in NUMBERS}
    code_patterns = {code: whole(code) for code in run.codes}
    leaks: list[str] = []

    def scan(where: str, text: str, *, codes: bool = True, ids: bool = True) -> None:
        for name, secret in secrets.items():
            if secret in text:
                leaks.append(f"{where}: {name}: {text[:300]}")
        if codes:
            for code, pattern in code_patterns.items():
                if pattern.search(text):
                    leaks.append(f"{where}: code {code}: {text[:300]}")
        if ids:
            for rid in run.request_ids:
                if rid in text:
                    leaks.append(f"{where}: request id: {text[:300]}")

    # Logs. The sandbox outbox record is the one place a code may be logged.
    # httpx logs each upstream request's URL at INFO, and a verify URL holds the request
    # id (root at DEBUG here; the product leaves the root logger alone). Only request ids
    # are let through there: codes, tokens, numbers are still checked.
    records = list(captured_logs.records)
    for record, rendered in records:
        outbox = record.name == "mfa.sandbox" and record.msg == "sandbox_text"
        client_log = record.name.split(".")[0] in ("httpx", "httpcore")
        scan(f"log {record.name}", rendered, codes=not outbox, ids=not client_log)

    if run.provider == "sandbox":
        # The scan does see codes: the outbox record holds one (and is the allowed place).
        outbox_lines = [
            line for rec, line in records if rec.name == "mfa.sandbox" and rec.msg == "sandbox_text"
        ]
        assert any(p.search(line) for line in outbox_lines for p in code_patterns.values())

    # Events: the publisher's, and the live hub's (sandbox_text is the outbox).
    events = [("publisher", e) for e in run.events]
    hub = getattr(run.agent, "live_hub", None)
    if hub is not None:
        events += [("hub", e) for e in hub.recent()]
    for source, event in events:
        scan(f"event {source}", json.dumps(event), codes=event.get("kind") != "sandbox_text")

    # HTTP answers: no code anywhere; request ids only in set_meta_data; the SWML may carry
    # the basic-auth credentials in its webhook URLs.
    for path, text in bodies:
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = text
        scan(f"response {path}", without_webhook_credentials(text), ids=False)
        outside = json.dumps(without_meta_actions(data))
        scan(f"response {path} (outside set_meta_data)", without_webhook_credentials(outside))

    print(
        f"\nno-leak check [{run.provider}]: {len(records)} log records, {len(events)} events, "
        f"{len(bodies)} response bodies, {len(run.codes)} codes, "
        f"{len(run.request_ids)} request ids; leaks: {len(leaks)}"
    )
    assert leaks == [], "\n".join(leaks[:20])
    assert len(records) > 20 and len(events) > 20 and len(bodies) > 30
