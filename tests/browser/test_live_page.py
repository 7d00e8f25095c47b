"""The live page in a real headless Chromium, fed by calls played against the served agent.

Debian's ``chromium`` package driven by PyPI ``playwright`` (never ``playwright install``).
``MFA_SCREENSHOT=1`` saves the page, after a verified call and an exhausted one in sandbox
mode, to ``docs/live-page.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall
from tests.support.calls import new_call, wrong_code
from tests.support.defaults import CALLER, DASHBOARD
from tests.support.required_servers import find_chromium, missing_test_server

try:
    from playwright import async_api
except ImportError:  # the browser fixture skips, or fails where the test servers are required
    async_api = None

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def expect(locator: Any) -> Any:
    return async_api.expect(locator)


SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "live-page.png"
OTHER_CALLER = "+15551239876"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if async_api is None:
        missing_test_server("playwright is not installed (pip install -e '.[test]')")
    chromium = find_chromium()
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Page:
    """A logged-in page on /live with every console error and page error collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def card(self, call: PlatformCall) -> Any:
        return self.page.locator(f'article[data-call-id="{call.call_id}"]')

    async def counters(self, calls: int, codes: int, verified: int, failed: int) -> None:
        for element, value in (
            ("#c-calls", calls),
            ("#c-codes", codes),
            ("#c-verified", verified),
            ("#c-failed", failed),
        ):
            await expect(self.page.locator(element)).to_have_text(str(value))


async def open_live(browser: Any, url: str) -> Page:
    context = await browser.new_context(
        http_credentials={"username": DASHBOARD[0], "password": DASHBOARD[1]},
        viewport={"width": 1280, "height": 820},
        device_scale_factor=1,
    )
    page = Page(await context.new_page())
    await page.page.goto(url + "/live")
    await expect(page.page.locator("#conn")).to_have_class(re.compile(r"\blive\b"))
    return page


async def test_calls_appear_live_in_sandbox_mode(make_settings, serve_agent, browser):
    # ``browser`` last: it closes before the server stops.
    agent = build_agent(make_settings())
    url = serve_agent(agent)
    try:
        live = await open_live(browser, url)
        page = live.page
        await expect(page.locator("#sandbox-banner")).to_be_visible()
        await expect(page.locator("#outbox-section")).to_be_visible()
        await live.counters(0, 0, 0, 0)

        async with httpx.AsyncClient(timeout=15) as http:
            # A caller who mistypes once, then reads the code from the (sandbox) text.
            first = await new_call(http, url)
            await first.invoke("send_mfa")
            code_on_page = page.locator("#outbox .text .code").first
            await expect(code_on_page).to_have_text(re.compile(r"^\d{6}$"))
            code = (await code_on_page.text_content()) or ""
            await expect(page.locator("#outbox .text .tag").first).to_have_text("SANDBOX")
            await expect(page.locator("#outbox .text .to").first).to_have_text("to ***0001")

            card = live.card(first)
            await expect(card.locator(".number")).to_have_text("***0001")
            await expect(card).to_have_attribute("data-state", "pending")
            await expect(card.locator(".state")).to_have_text("NOT VERIFIED")

            await first.invoke("verify_mfa", token=wrong_code(code))
            wrong = card.locator('li[data-outcome="wrong_code"]')
            await expect(wrong).to_contain_text("Wrong code, 2 tries left")
            await expect(card).to_have_attribute("data-state", "pending")

            await first.invoke("verify_mfa", token=" ".join(code))
            await expect(card).to_have_attribute("data-state", "verified")
            await expect(card.locator(".state")).to_have_text("VERIFIED")
            await expect(card.locator("ol.steps li")).to_have_count(3)
            await expect(card.locator("ol.steps time").first).to_have_text(
                re.compile(r"^\d\d:\d\d:\d\d$")
            )
            await expect(card.locator("ol.steps .dur").first).to_have_text(
                re.compile(r"^\d+ ms$|^\d+\.\d s$")
            )
            await first.post_summary(
                {
                    "caller_wanted": "update the mailing address",
                    "code_sent": True,
                    "verified": True,
                    "outcome": "Caller verified and asked to update the address.",
                }
            )
            await expect(card.locator(".summary")).to_contain_text("says verified")

            # Another caller runs out of tries.
            second = await new_call(http, url, caller=OTHER_CALLER)
            await second.invoke("send_mfa")
            await expect(page.locator("#outbox .text")).to_have_count(2)
            latest = (await page.locator("#outbox .text .code").first.text_content()) or ""
            for _ in range(3):
                await second.invoke("verify_mfa", token=wrong_code(latest))
            failed = live.card(second)
            await expect(failed).to_have_attribute("data-state", "failed")
            await expect(failed.locator(".state")).to_have_text("NOT VERIFIED")
            await expect(failed.locator(".why")).to_have_text("out of tries")

        await live.counters(calls=2, codes=2, verified=1, failed=1)
        # Newest activity first.
        await expect(page.locator("article.call").first).to_have_attribute(
            "data-call-id", second.call_id
        )
        body = await page.inner_text("body")
        for full in (CALLER, OTHER_CALLER, CALLER.lstrip("+"), OTHER_CALLER.lstrip("+")):
            assert full not in body

        # The history was read when the page opened: a search reads the two final outcomes.
        await page.click("#history-form button")
        await expect(page.locator("#history-rows tr")).to_have_count(2)

        if os.environ.get("MFA_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # A reload replays the buffer: the same calls, each step once.
        await page.reload()
        await expect(page.locator("#conn")).to_have_class(re.compile(r"\blive\b"))
        await expect(page.locator("article.call")).to_have_count(2)
        await expect(live.card(first).locator("ol.steps li")).to_have_count(3)
        await expect(live.card(second).locator("ol.steps li")).to_have_count(4)
        assert live.errors == []
    finally:
        assert agent.live_hub is not None
        agent.live_hub.end_streams()


async def test_replayed_events_are_shown_once_after_a_reconnect(
    fake_signalwire, make_settings, serve_agent, browser
):
    fake, sw_url = fake_signalwire
    agent = build_agent(make_settings(signalwire_url=sw_url))
    hub = agent.live_hub
    assert hub is not None
    url = serve_agent(agent)
    try:
        live = await open_live(browser, url)
        page = live.page
        await expect(page.locator("#outbox-section")).to_be_hidden()
        await expect(page.locator("#sandbox-banner")).to_be_hidden()
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url)
            await call.invoke("send_mfa")
            await call.invoke("verify_mfa", token=fake.last_code_for(CALLER))
            card = live.card(call)
            await expect(card).to_have_attribute("data-state", "verified")
            assert live.errors == []

            # The server refuses the next connection: EventSource gives up, the page
            # reconnects by itself with a new EventSource (no Last-Event-ID), and the
            # server replays everything it has.
            hub.max_subscribers = 0
            hub.end_streams()
            await expect(page.locator("#conn")).to_have_class(re.compile(r"\bdown\b"))
            hub.max_subscribers = 100
            await expect(page.locator("#conn")).to_have_class(
                re.compile(r"\blive\b"), timeout=10_000
            )
            other = await new_call(http, url, caller=OTHER_CALLER)
            await other.invoke("send_mfa")
            await expect(live.card(other)).to_have_attribute("data-state", "pending")

        await expect(page.locator("article.call")).to_have_count(2)
        await expect(card.locator("ol.steps li")).to_have_count(2)
        await live.counters(calls=2, codes=2, verified=1, failed=0)
        # The only errors are the refused connection's own.
        assert all("503" in error for error in live.errors), live.errors
    finally:
        hub.end_streams()


async def test_transfers_and_hang_ups_are_steps_of_the_call(
    fake_signalwire, make_settings, serve_agent, browser
):
    fake, sw_url = fake_signalwire
    config = {
        "code": {"max_attempts": 1},
        "limits": {"sends_per_call": 1},
        "handoff": {"on_verified": "+14155550123", "on_failed": "hangup"},
    }
    agent = build_agent(make_settings(signalwire_url=sw_url, config=config))
    url = serve_agent(agent)
    try:
        live = await open_live(browser, url)
        async with httpx.AsyncClient(timeout=15) as http:
            verified = await new_call(http, url)
            await verified.invoke("send_mfa")
            await verified.invoke("verify_mfa", token=fake.last_code_for(CALLER))
            card = live.card(verified)
            await expect(card).to_have_attribute("data-state", "verified")
            step = card.locator('li[data-outcome="handoff_transfer"]')
            await expect(step).to_contain_text("Transferred to ***0123")

            failed = await new_call(http, url, caller=OTHER_CALLER)
            await failed.invoke("send_mfa")
            await failed.invoke("verify_mfa", token=wrong_code(fake.last_code_for(OTHER_CALLER)))
            other = live.card(failed)
            await expect(other).to_have_attribute("data-state", "failed")
            await expect(other.locator(".why")).to_have_text("out of tries")
            await expect(other.locator('li[data-outcome="handoff_hangup"]')).to_contain_text(
                "Hung up"
            )
            await expect(other.locator("ol.steps li")).to_have_count(3)
        assert "14155550123" not in await live.page.inner_text("body")
        assert live.errors == []
    finally:
        assert agent.live_hub is not None
        agent.live_hub.end_streams()


async def test_the_history_finds_final_outcomes_by_call_id_or_last_four(
    make_settings, serve_agent, browser
):
    texts: list[Any] = []
    agent = build_agent(make_settings(), sandbox_deliver=texts.append)
    url = serve_agent(agent)
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            verified = await new_call(http, url, caller="+15551230001")
            await verified.invoke("send_mfa")
            code = texts[-1].body.rsplit(" ", 1)[-1]
            await verified.invoke("verify_mfa", token=code)
            exhausted = await new_call(http, url, caller="+15551230002")
            await exhausted.invoke("send_mfa")
            wrong = wrong_code(texts[-1].body.rsplit(" ", 1)[-1])
            for _ in range(3):
                await exhausted.invoke("verify_mfa", token=wrong)

        live = await open_live(browser, url)
        page = live.page
        rows = page.locator("#history-rows tr")
        await expect(rows).to_have_count(2)  # newest first, before any search
        await expect(rows.first).to_have_attribute("data-call-id", exhausted.call_id)

        await page.fill("#history-q", "0001")
        await page.click("#history-form button")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-call-id", verified.call_id)
        await expect(rows.first.locator("td").nth(2)).to_have_text("verified")
        await expect(rows.first.locator("td").nth(3)).to_have_text("***0001")

        await page.fill("#history-q", exhausted.call_id)
        await page.click("#history-form button")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator("td").nth(2)).to_have_text("exhausted")

        await page.fill("#history-q", "9999")
        await page.click("#history-form button")
        await expect(rows).to_have_count(0)
        await expect(page.locator("#history-note")).to_have_text("No final outcome found.")
        assert live.errors == []
    finally:
        assert agent.live_hub is not None
        agent.live_hub.end_streams()


async def test_each_call_shows_its_language(make_settings, serve_agent, browser):
    """With English and Spanish, a call's card names the language send_mfa was given."""
    config = {
        "languages": [
            {"code": "en", "name": "English", "voice": "rime.spore"},
            {"code": "es", "name": "Spanish", "voice": "rime.luna"},
        ],
        "code": {
            "message": {
                "en": "From {company}: your code:",
                "es": "De {company}: su codigo:",
            }
        },
    }
    agent = build_agent(make_settings(config=config))
    url = serve_agent(agent)
    live = await open_live(browser, url)
    async with httpx.AsyncClient(timeout=15) as http:
        spanish = await new_call(http, url)
        await spanish.invoke("send_mfa", language="es")
        english = await new_call(http, url, caller=OTHER_CALLER)
        await english.invoke("send_mfa")
        await spanish.invoke("verify_mfa", token="cero cero cero cero cero cero")
    await expect(live.card(spanish).locator(".lang")).to_have_text("es")
    await expect(live.card(spanish)).to_have_attribute("data-language", "es")
    await expect(live.card(english).locator(".lang")).to_have_text("en")
    assert live.errors == []


async def test_each_call_shows_how_its_code_went(
    fake_signalwire, make_settings, serve_agent, browser, tmp_path
):
    """A text, or a voice call to a landline on file: the card names the channel."""
    fake, sw_url = fake_signalwire
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_number,phone_number\n12345678,+12025550199\n")
    config = {"directory": {"path": str(accounts), "neutral_answer_seconds": 0}}
    fake.line_types["+12025550199"] = "landline"
    agent = build_agent(make_settings(signalwire_url=sw_url, config=config))
    url = serve_agent(agent)
    live = await open_live(browser, url)
    async with httpx.AsyncClient(timeout=15) as http:
        voiced = await new_call(http, url)
        await voiced.invoke("send_mfa", account_number="12345678")
    await expect(live.card(voiced)).to_have_attribute("data-channel", "call")
    await expect(live.card(voiced).locator(".channel")).to_have_text("voice call")
    assert live.errors == []
