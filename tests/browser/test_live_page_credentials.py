"""The live page opened with the dashboard's pair in its address
(``http://admin:password@host/live``), as an operator pastes it: Chromium refuses a
``fetch()`` whose URL carries credentials, and a path such as ``/outcomes`` resolved
against that address inherits them, so the history stayed empty ("The history could not
be read."). The page now fetches from ``location.origin``, which has none, and the
browser sends the pair it was given for the page.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from agent.app import build_agent
from tests.browser.test_live_page import browser, expect  # noqa: F401 (a fixture)
from tests.support.calls import new_call
from tests.support.defaults import DASHBOARD

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_the_history_shows_with_the_credentials_in_the_address(
    make_settings,
    serve_agent,
    browser,  # noqa: F811 (the fixture)
):
    texts: list[Any] = []
    agent = build_agent(make_settings(), sandbox_deliver=texts.append)
    url = serve_agent(agent)
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            call = await new_call(http, url, caller="+15551230001")
            await call.invoke("send_mfa")
            await call.invoke("verify_mfa", token=texts[-1].body.rsplit(" ", 1)[-1])

        context = await browser.new_context()  # no credentials but the address's
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        user, password = (quote(part, safe="") for part in DASHBOARD)
        await page.goto(url.replace("://", f"://{user}:{password}@", 1) + "/live")
        await expect(page.locator("#conn")).to_have_class(re.compile(r"\blive\b"))

        rows = page.locator("#history-rows tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-call-id", call.call_id)
        await expect(page.locator("#history-note")).to_have_text("")
        await page.fill("#history-q", "0001")  # a search goes the same way
        await page.click("#history-form button")
        await expect(rows).to_have_count(1)
        assert errors == []
    finally:
        assert agent.live_hub is not None
        agent.live_hub.end_streams()
