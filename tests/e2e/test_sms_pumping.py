"""SMS pumping across many numbers (issue 19, item 8), over HTTP, on both backends.

Pumping texts many numbers of one range once each; nobody ever reads a code back. The
per-call and per-number limits do not see it. Expected values come from the settings
each test writes, not from the product's code. The caller hears the same sentence as
for any other limit on their number, nothing is texted, and the event names the limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from agent.app import build_agent
from skills.mfa.log_throttle import RateLimitedLog
from tests.support.calls import new_call
from tests.support.docs import section as doc_section

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

LIMITED = (
    "Too many codes have gone to this phone number recently, so no code was sent. Apologise "
    "and ask the caller to try again later."
)


@pytest.fixture(params=["in-process", "redis"])
def backend(request) -> dict[str, str]:
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
def agent(fake_signalwire, make_settings, serve_agent, backend):
    """``agent(pumping={...}) -> (url, events)`` with SignalWire faked on loopback."""
    _, sw_url = fake_signalwire

    def start(**pumping) -> tuple[str, list[dict]]:
        settings = make_settings(
            signalwire_url=sw_url,
            config={"pumping": pumping, "limits": {"allowed_country_codes": [1, 44]}},
            **backend,
        )
        built = build_agent(settings)
        events: list[dict] = []
        built.publisher.subscribe(lambda event: events.append(event.to_dict()))
        return serve_agent(built), events

    return start


async def send_from(http: httpx.AsyncClient, url: str, caller: str):
    call = await new_call(http, url, caller=caller)
    return call, await call.invoke("send_mfa")


def refusals(events: list[dict]) -> list[str]:
    return [e["limit"] for e in events if e["outcome"] == "rate_limited"]


async def test_an_eleventh_number_in_one_range_within_the_hour_is_refused(fake_signalwire, agent):
    fake, _ = fake_signalwire
    url, events = agent()  # defaults: 10 an hour per prefix
    async with httpx.AsyncClient(timeout=15) as http:
        replies = [(await send_from(http, url, f"+120255501{i:02d}"))[1] for i in range(11)]
    assert ["was texted" in r.response for r in replies] == [True] * 10 + [False]
    assert replies[-1].body == {"response": LIMITED}
    assert len(fake.texts) == 10 and "+12025550110" not in [t["to"] for t in fake.texts]
    assert refusals(events) == ["prefix_hour"]
    # Another range is not troubled.
    async with httpx.AsyncClient(timeout=15) as http:
        _, other = await send_from(http, url, "+12025560100")
    assert "was texted" in other.response


async def test_a_country_has_its_own_hourly_budget(fake_signalwire, agent):
    fake, _ = fake_signalwire
    url, events = agent(per_country_per_hour=5)
    async with httpx.AsyncClient(timeout=15) as http:
        replies = [(await send_from(http, url, f"+1202{550 + i}0100"))[1] for i in range(6)]
        uk = (await send_from(http, url, "+447911123456"))[1]
    assert ["was texted" in r.response for r in replies] == [True] * 5 + [False]
    assert "was texted" in uk.response  # another country
    assert len(fake.texts) == 6
    assert refusals(events) == ["country_hour"]


async def test_codes_nobody_verifies_pause_the_country_and_verified_ones_do_not(
    fake_signalwire, agent, caplog
):
    fake, _ = fake_signalwire
    url, events = agent(per_prefix_per_hour=1000, conversion_min_sent=5, conversion_grace_seconds=0)
    async with httpx.AsyncClient(timeout=15) as http:
        # Five real callers, one of whom reads the code back: 1 in 5 is the 20% floor.
        calls = [(await send_from(http, url, f"+120255501{i:02d}"))[0] for i in range(5)]
        reply = await calls[0].invoke("verify_mfa", token=fake.last_code_for("+12025550100"))
        assert "caller is verified" in reply.response
        await asyncio.sleep(0.2)  # the success is counted after the reply
        _, sixth = await send_from(http, url, "+12025550105")
        assert "was texted" in sixth.response
        # Now 1 in 6 verified: under the floor. Every range of the country waits.
        throttle = next(
            f for f in logging.getLogger("mfa.alerts").filters if isinstance(f, RateLimitedLog)
        )
        held_back = throttle.suppressed()
        with caplog.at_level(logging.WARNING, logger="mfa.alerts"):
            for caller in ("+12025550106", "+12025990106", "+12025550107"):
                _, refused = await send_from(http, url, caller)
                assert refused.body == {"response": LIMITED}
    assert len(fake.texts) == 6
    assert refusals(events) == ["conversion"] * 3
    alerts = [r for r in caplog.records if r.getMessage() == "sms_pumping_suspected"]
    # Throttled: at most one line a minute (an earlier test may have had it), the rest counted.
    assert len(alerts) <= 1
    assert len(alerts) + throttle.suppressed() - held_back == 3


def write_lists(path: Path, text: str) -> None:
    """Atomically, as the README says (write, then rename), and settled."""
    draft = path.with_suffix(".new")
    draft.write_text(text)
    then = time.time() - 5
    os.utime(draft, (then, then))
    os.replace(draft, path)


async def test_block_and_allow_lists_apply_and_reload(
    fake_signalwire, make_settings, serve_agent, backend, tmp_path
):
    fake, sw_url = fake_signalwire
    lists = tmp_path / "pumping.txt"
    write_lists(lists, "# test\nblock +44\nallow +1202555\n")
    settings = make_settings(
        signalwire_url=sw_url,
        config={
            "pumping": {"per_prefix_per_hour": 2, "lists_path": str(lists)},
            "limits": {"allowed_country_codes": [1, 44]},
        },
        **backend,
    )
    url = serve_agent(settings)
    async with httpx.AsyncClient(timeout=15) as http:
        _, blocked = await send_from(http, url, "+447911123456")
        assert blocked.body == {"response": LIMITED}
        allowed = [(await send_from(http, url, f"+120255501{i:02d}"))[1] for i in range(4)]
        assert all("was texted" in r.response for r in allowed)  # past the prefix's 2
        write_lists(lists, "allow +44\n")
        await asyncio.sleep(1.1)  # the file is looked at once a second at most
        _, unblocked = await send_from(http, url, "+447911123456")
        assert "was texted" in unblocked.response
    assert [t["to"] for t in fake.texts].count("+447911123456") == 1


def test_a_bad_lists_file_stops_start_up_naming_the_line(make_settings, tmp_path):
    from agent.config.settings import SettingsError

    lists = tmp_path / "pumping.txt"
    lists.write_text("block +44\npermit +1\n")
    with pytest.raises(SettingsError, match=r"pumping\.lists_path .*line 2"):
        build_agent(make_settings(config={"pumping": {"lists_path": str(lists)}}))


def test_the_readme_lists_example_reads_as_documented(tmp_path):
    from skills.mfa.limits.pumping_lists import read_lists_file

    section = doc_section("SMS pumping")  # the reference page's lists example
    example = section.split("```\n# comments", 1)[1].split("```", 1)[0]
    path = tmp_path / "lists.txt"
    path.write_text("# comments" + example)
    lists = read_lists_file(path)
    assert lists.block == {"+234", "+4470"} and lists.allow == {"+1202555"}
    assert lists.verdict("+2348012345678") == "block"
    assert lists.verdict("+447011123456") == "block"
    assert lists.verdict("+12025550100") == "allow"
    assert lists.verdict("+12025560100") is None
