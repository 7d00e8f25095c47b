"""deploy/prometheus/mfa-alerts.yml: the alert rules fire in the failures they are named for.

``promtool`` (Debian's ``prometheus`` package; ``.ci/run`` installs it) checks the rules and
runs their unit tests (``mfa-alerts.test.yml``). Those tests feed the rules series as the
agent exposes them; the other tests here hold the agent to that: every ``mfa_*`` series the
unit tests use (name and labels, ``instance`` aside) is on a freshly started agent's
``/metrics`` (at 0: an alert over a series that does not exist yet never fires), and the
oldest undelivered outcome's age grows while a stuck backlog stays flat, on the SQLite
outbox and on Redis's.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testkit.servers import ServerThread
from tests.agent.test_outbox import get, metric
from tests.agent.test_outcome_webhook import SECRET, Receiver, eventually
from tests.support.calls import new_call
from tests.support.defaults import CALLER
from tests.support.docs import section as doc_section
from tests.support.required_servers import missing_test_server

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "mfa-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "mfa-alerts.test.yml"
_SERIES = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\}$")


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        missing_test_server("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(
        [found, *arguments], cwd=RULES.parent, capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_the_rules():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout


def test_the_rules_pass_their_unit_tests():
    """Each alert fires in its failure (nothing verified since start, a backlog stuck but
    flat, the breaker open) and stays silent on a healthy agent."""
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def unit_test_series() -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Every series the rules' unit tests feed them, ``instance`` left out."""
    found = set()
    for case in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]:
        for series in case["input_series"]:
            match = _SERIES.match(series["series"])
            assert match, series
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            labels.pop("instance", None)
            found.add((match["name"], frozenset(labels.items())))
    return found


@pytest.mark.anyio
async def test_every_series_the_rules_are_tested_with_is_there_from_start_up(
    make_settings, serve_agent
):
    """A fresh agent, nothing asked of it yet: each series the unit tests use is exposed,
    at 0 (``mfa_verifications_total{outcome="verified"} 0`` among them)."""
    text = (await get(serve_agent(make_settings()), "/metrics")).text
    exposed = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    wanted = unit_test_series()
    assert ("mfa_verifications_total", frozenset({("outcome", "verified")})) in wanted
    missing = wanted - exposed.keys()
    assert not missing, missing
    assert {key: exposed[key] for key in wanted} == dict.fromkeys(wanted, 0.0)


def test_the_docs_show_the_shipped_rules_file_not_a_copy():
    section = doc_section("Metrics")
    assert '--8<-- "deploy/prometheus/mfa-alerts.yml"' in section
    assert "alert: " not in section, "a second copy of the rules"


@pytest.mark.anyio
@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_a_stuck_flat_backlog_grows_older(
    store, request, fake_signalwire, make_settings, serve_agent
):
    """A receiver that refuses every delivery, one verified call, then nothing: the
    backlog stays at 1 while its oldest outcome's age grows from scrape to scrape."""
    fake, sw_url = fake_signalwire
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else {}
    hook = Receiver()
    hook.answers = [503] * 1000
    with ServerThread(hook.app()) as server:
        url = serve_agent(
            make_settings(
                signalwire_url=sw_url,
                config={"webhook": {"retry_base_seconds": 0.05}},
                MFA_OUTCOME_WEBHOOK_URL=server.url + "/hook",
                MFA_OUTCOME_WEBHOOK_SECRET=SECRET,
                **env,
            )
        )
        first = (await get(url, "/metrics")).text
        assert metric(first, "mfa_outbox_oldest_pending_seconds") == 0
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url)
            await call.invoke("send_mfa")
            await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
        await eventually(lambda: hook.count() >= 2)  # delivery tried, refused, retried
        early = (await get(url, "/metrics")).text
        await asyncio.sleep(1.5)
        later = (await get(url, "/metrics")).text
    assert metric(early, "mfa_outbox_pending") == metric(later, "mfa_outbox_pending") == 1
    early_age = metric(early, "mfa_outbox_oldest_pending_seconds")
    later_age = metric(later, "mfa_outbox_oldest_pending_seconds")
    assert early_age > 0
    assert later_age >= early_age + 1.0, (early_age, later_age)
