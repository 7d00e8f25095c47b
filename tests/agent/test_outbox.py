"""The outbox, the history, the dashboard's credentials and the metrics, over HTTP.

Calls are played through ``PlatformCall`` against the served agent (the sandbox, or
SignalWire faked on loopback); the history is read from ``/outcomes`` and the metrics
from ``/metrics`` with the dashboard's pair, as an operator would. Times that decide
retention and retries come from an ``outbox_clock`` the test moves.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.app import build_agent
from agent.config.settings import SettingsError
from agent.ops.platform import PlatformCall
from agent.outcomes.history_routes import safe_cell
from skills.mfa.events import MfaEvent, Outcome
from testkit.servers import ServerThread
from tests.agent.test_outcome_webhook import SECRET, Receiver, async_equals, eventually
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import AUTH, CALLER, DASHBOARD
from tests.support.docs import REPO
from tests.support.docs import section as doc_section

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DAY = 86400.0
DASHBOARD_ROUTES = ("/live", "/events", "/outcomes", "/outcomes.csv", "/metrics")


async def get(url: str, path: str, auth: Any = DASHBOARD, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        if path == "/events":  # a stream: the status line is all this needs
            async with http.stream("GET", url + path, auth=auth) as response:
                return response
        return await http.get(url + path, params=params, auth=auth)


async def verified_call(http: httpx.AsyncClient, url: str, fake: Any, caller: str) -> str:
    call = await new_call(http, url, caller=caller)
    await call.invoke("send_mfa")
    reply = await call.invoke("verify_mfa", token=fake.last_code_for(caller))
    assert "caller is verified" in reply.response
    return call.call_id


async def exhausted_call(http: httpx.AsyncClient, url: str, fake: Any, caller: str) -> str:
    call = await new_call(http, url, caller=caller)
    await call.invoke("send_mfa")
    wrong = wrong_code(fake.last_code_for(caller))
    for _ in range(3):
        await call.invoke("verify_mfa", token=wrong)
    return call.call_id


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from the Prometheus text, parsed by the client library's parser."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# -- the history ---------------------------------------------------------------------------


async def test_the_history_lists_final_outcomes_newest_first(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    url = serve_agent(make_settings(signalwire_url=sw_url))
    before = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=15) as http:
        first = await verified_call(http, url, fake, "+15551230001")
        second = await exhausted_call(http, url, fake, "+15551230002")
        # Not final: a code sent, a wrong code. Not in the history.
        pending = await new_call(http, url, caller="+15551230003")
        await pending.invoke("send_mfa")
        await pending.invoke("verify_mfa", token="000000")

    response = await get(url, "/outcomes")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    rows = response.json()["outcomes"]
    assert [(r["call_id"], r["outcome"]) for r in rows] == [
        (second, "exhausted"),
        (first, "verified"),
    ]
    assert rows[1]["subject"] == {"number": "***0001", "account": None}
    assert rows[1]["handoff"] is None
    assert rows[1]["delivery"] is None  # no receiver configured: kept for the history only
    at = datetime.fromisoformat(rows[1]["at"])
    assert before.timestamp() - 1 <= at.timestamp() <= time.time() + 1
    assert "+1555" not in response.text and "5551230001" not in response.text

    by_call = (await get(url, "/outcomes", call_id=first)).json()["outcomes"]
    assert [r["call_id"] for r in by_call] == [first]
    by_last4 = (await get(url, "/outcomes", last4="0002")).json()["outcomes"]
    assert [r["call_id"] for r in by_last4] == [second]
    assert (await get(url, "/outcomes", last4="9999")).json()["outcomes"] == []
    newest = (await get(url, "/outcomes", limit="1")).json()["outcomes"]
    assert [r["call_id"] for r in newest] == [second]
    later = datetime.fromtimestamp(time.time() + 60, UTC).isoformat()
    assert (await get(url, "/outcomes", since=later)).json()["outcomes"] == []
    earlier = before.replace(tzinfo=None).isoformat()  # no zone: UTC
    assert len((await get(url, "/outcomes", since=earlier)).json()["outcomes"]) == 2


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"last4": "12a4"}, "last4"),
        ({"last4": "12345"}, "last4"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"call_id": "c" * 129}, "call_id"),
    ],
)
async def test_a_bad_history_parameter_is_a_400_naming_it(
    params, named, make_settings, serve_agent
):
    url = serve_agent(make_settings())
    for path in ("/outcomes", "/outcomes.csv"):
        response = await get(url, path, **params)
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"{named}:")


async def test_the_csv_export_holds_the_same_rows_and_runs_no_formula(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    url = serve_agent(make_settings(signalwire_url=sw_url))
    async with httpx.AsyncClient(timeout=15) as http:
        plain = await verified_call(http, url, fake, "+15551230001")
        # The call id is the request's claim: one shaped as a spreadsheet formula.
        call = PlatformCall(
            http=http, base_url=url, auth=AUTH, caller="+15551230002", call_id="=HYPERLINK(1)"
        )
        await call.start()
        await call.invoke("send_mfa")
        await call.invoke("verify_mfa", token=fake.last_code_for("+15551230002"))
    response = await get(url, "/outcomes.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["call_id"] for r in rows] == ["'=HYPERLINK(1)", plain]
    assert rows[1]["outcome"] == "verified" and rows[1]["number"] == "***0001"
    assert rows[1]["delivery_state"] == "" and rows[1]["account"] == ""
    assert rows[1]["provider"] == "signalwire"  # who checked the code: never the sandbox here
    # Every cell that a spreadsheet would run starts with a quote instead.
    for cell in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(cell) == "'" + cell
    assert safe_cell("***0001") == "***0001"


# -- retention and retries: the clock decides, in days and hours ------------------------


def outcome_at(at: float, call_id: str = "call-1") -> MfaEvent:
    return MfaEvent(
        agent_id="mfa-agent",
        call_id=call_id,
        tool="verify_mfa",
        outcome=Outcome.VERIFIED,
        masked_number="***0001",
        provider="sandbox",
        duration_ms=1.0,
        at=at,
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_outcomes_are_kept_retention_days_and_no_longer(backend, make_settings, request):
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    now = [1_800_000_000.0]
    settings = make_settings(config={"outcomes": {"retention_days": 30}}, **env)
    agent = build_agent(settings, outbox_clock=lambda: now[0])
    outbox = agent.outbox
    assert outbox is not None
    try:
        await outbox.record(outcome_at(now[0]))
        # A minute short of 30 days: still there (a window counted in hours would be gone).
        now[0] += 30 * DAY - 60
        assert await outbox.purge_expired() == 0
        assert len(await outbox.history(_all())) == 1
        # A minute past 30 days: gone (a window counted in weeks would keep it).
        now[0] += 120
        assert len(await outbox.history(_all())) == 0
        assert await outbox.purge_expired() == 1
        assert await outbox.store.history(_all()) == []  # gone from the store, not hidden
    finally:
        await outbox.store.aclose()
        if agent.state is not None:
            await agent.state.aclose()


def _all() -> Any:
    from agent.outcomes.entries import HistoryQuery

    return HistoryQuery(limit=1000)


async def test_delivery_is_retried_for_retry_hours_then_dead(make_settings, serve_agent):
    attempts: list[str] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        attempts.append(request.headers["x-mfa-delivery"])
        return httpx.Response(503)

    offset = [0.0]
    texts: list[Any] = []
    settings = make_settings(
        config={"webhook": {"retry_hours": 1, "retry_base_seconds": 0.05}},
        MFA_OUTCOME_WEBHOOK_URL="https://hooks.example.com/mfa",
        MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
    )
    agent = build_agent(
        settings,
        http_transport=httpx.MockTransport(receiver),
        sandbox_deliver=texts.append,
        outbox_clock=lambda: time.time() + offset[0],
    )
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = await new_call(http, url)
        await call.invoke("send_mfa")
        code = texts[-1].body.rsplit(" ", 1)[-1]
        assert "caller is verified" in (await call.invoke("verify_mfa", token=code)).response

    async def delivery() -> dict[str, Any]:
        return (await get(url, "/outcomes")).json()["outcomes"][0]["delivery"]

    await eventually(lambda: len(attempts) >= 2)
    assert (await delivery())["state"] == "pending"
    # 59 minutes 50 seconds after the outcome: still retried (not given up in minutes).
    offset[0] = 3590.0
    seen = len(attempts)
    await eventually(lambda: len(attempts) > seen + 1)
    assert (await delivery())["state"] == "pending"
    # Past the hour: the next failure is the last.
    offset[0] = 3605.0
    await eventually(async_equals(lambda: _state(delivery), "dead"))
    final = len(attempts)
    await asyncio.sleep(0.5)
    assert len(attempts) == final and len(set(attempts)) == 1  # one id, every attempt


async def _state(read: Callable[[], Any]) -> str:
    return (await read())["state"]


# -- never dropped: many final outcomes, a slow receiver -----------------------------------


async def test_a_flood_of_final_outcomes_behind_a_slow_receiver_loses_none(
    fake_signalwire, make_settings, serve_agent
):
    fake, sw_url = fake_signalwire
    hook = Receiver(hang_seconds=0.3)
    hook.answers = ["hang"] * 1000  # every answer takes 0.3 s
    with ServerThread(hook.app()) as server:
        settings = make_settings(
            signalwire_url=sw_url,
            # 40 callers in one number range: lift the pumping caps, as the load test does.
            config={
                "limits": {"agent_sends_per_minute": 1000},
                "pumping": {"per_prefix_per_hour": 1000, "per_country_per_hour": 1000},
            },
            MFA_OUTCOME_WEBHOOK_URL=server.url + "/hook",
            MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
        )
        url = serve_agent(settings)
        calls = 40
        async with httpx.AsyncClient(timeout=30) as http:
            results = await asyncio.gather(
                *(verified_call(http, url, fake, f"+1555124{n:04d}") for n in range(calls // 2)),
                *(exhausted_call(http, url, fake, f"+1555125{n:04d}") for n in range(calls // 2)),
            )
        await eventually(lambda: hook.count() >= calls, within=60)
        await asyncio.sleep(0.5)
    bodies = [json.loads(r["body"]) for r in hook.received]
    assert sorted(b["call_id"] for b in bodies) == sorted(results)  # each once, none lost
    assert len({r["delivery"] for r in hook.received}) == calls
    rows = (await get(url, "/outcomes")).json()["outcomes"]
    assert len(rows) == calls
    assert {r["delivery"]["state"] for r in rows} == {"delivered"}


# -- the dashboard's credentials ------------------------------------------------------------


async def test_the_dashboard_opens_with_its_own_pair_and_never_the_platforms(
    make_settings, serve_agent
):
    url = serve_agent(make_settings())
    for path in DASHBOARD_ROUTES:
        for auth in (None, AUTH, (DASHBOARD[0], AUTH[1]), (AUTH[0], DASHBOARD[1])):
            response = await get(url, path, auth=auth)
            assert response.status_code == 401, (path, auth)
            assert response.headers["www-authenticate"].startswith("Basic")
        assert (await get(url, path)).status_code == 200, path
    # The platform's routes still take the platform's pair, and not the dashboard's.
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url + "/", auth=AUTH)).status_code == 200
        assert (await http.get(url + "/", auth=DASHBOARD)).status_code == 401


async def test_with_an_account_and_no_dashboard_password_the_dashboard_stays_closed(
    fake_signalwire, make_settings, serve_agent
):
    _, sw_url = fake_signalwire
    settings = make_settings(signalwire_url=sw_url, MFA_DASHBOARD_PASSWORD="")
    assert settings.dashboard_credentials is None and not settings.dashboard_password_generated
    url = serve_agent(settings)
    for path in DASHBOARD_ROUTES:
        for auth in (AUTH, DASHBOARD, ("admin", ""), None):
            assert (await get(url, path, auth=auth)).status_code == 401, (path, auth)


def test_the_sandbox_generates_a_dashboard_password(make_settings):
    settings = make_settings(MFA_DASHBOARD_PASSWORD="")
    assert settings.dashboard_password_generated
    user, password = settings.dashboard_credentials
    assert user == "admin" and len(password) >= 16 and password != AUTH[1]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MFA_DASHBOARD_PASSWORD": AUTH[1]}, "must differ from SWML_BASIC_AUTH_PASSWORD"),
        ({"MFA_DASHBOARD_PASSWORD": "short-one"}, "at least 16 characters"),
    ],
)
def test_a_dashboard_password_that_would_not_guard_it_stops_start_up(
    env, problem, fake_signalwire, make_settings
):
    _, sw_url = fake_signalwire
    with pytest.raises(SettingsError, match="MFA_DASHBOARD_PASSWORD") as caught:
        make_settings(signalwire_url=sw_url, **env)
    assert problem in str(caught.value)
    assert AUTH[1] not in str(caught.value)


# -- metrics ---------------------------------------------------------------------------------


async def test_metrics_count_what_happened(fake_signalwire, make_settings, serve_agent, tmp_path):
    fake, sw_url = fake_signalwire
    hook = Receiver()
    hook.answers = [503]
    with ServerThread(hook.app()) as server:
        settings = make_settings(
            signalwire_url=sw_url,
            config={"webhook": {"retry_base_seconds": 0.05}},
            MFA_OUTCOME_WEBHOOK_URL=server.url + "/hook",
            MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
        )
        url = serve_agent(settings)
        # A second agent in this process (its own outbox file): its own registry.
        other = serve_agent(
            make_settings(config={"outcomes": {"outbox_path": str(tmp_path / "other.db")}})
        )
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url)
            await call.invoke("send_mfa")
            # A second send to the same call at once: refused by the resend cooldown.
            assert "code_sent" not in str((await call.invoke("send_mfa")).body)
            code = fake.last_code_for(CALLER)
            await call.invoke("verify_mfa", token=wrong_code(code))
            await call.invoke("verify_mfa", token=code)
        await eventually(lambda: hook.count() >= 2)
        await asyncio.sleep(0.2)

    response = await get(url, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "mfa_sends_total", outcome="code_sent") == 1
    assert metric(text, "mfa_verifications_total", outcome="wrong_code") == 1
    assert metric(text, "mfa_verifications_total", outcome="verified") == 1
    assert metric(text, "mfa_upstream_seconds_count", operation="send") == 1
    assert metric(text, "mfa_upstream_seconds_count", operation="verify") == 2
    assert metric(text, "mfa_breaker_open") == 0
    assert metric(text, "mfa_outbox_pending") == 0
    assert metric(text, "mfa_outbox_deliveries_total", result="retry") == 1
    assert metric(text, "mfa_outbox_deliveries_total", result="delivered") == 1
    refused = metric(text, "mfa_sends_total", outcome="rate_limited")
    assert metric(text, "mfa_limit_refusals_total", kind="rate_limited") == refused == 1
    assert code not in text and "5551230001" not in text

    untouched = (await get(other, "/metrics")).text
    assert metric(untouched, "mfa_sends_total", outcome="code_sent") == 0


async def test_the_readmes_alert_rules_and_table_name_real_metrics(make_settings, serve_agent):
    """Every metric the shipped alert rules and the docs' table (Monitoring, "Metrics") name
    is one the agent exposes."""
    import re

    rules = (REPO / "deploy" / "prometheus" / "mfa-alerts.yml").read_text(encoding="utf-8")
    section = doc_section("Metrics") + rules  # the section shows the rules file
    named = set(re.findall(r"\b(mfa_[a-z_]+)", section))
    assert {"mfa_breaker_open", "mfa_outbox_pending", "mfa_verifications_total"} <= named
    text = (await get(serve_agent(make_settings()), "/metrics")).text
    exposed = {family.name for family in text_string_to_metric_families(text)}
    # Counters are exposed as "<name>_total" samples of the family "<name>".
    exposed |= {f"{name}_total" for name in exposed}
    assert named <= exposed, named - exposed
