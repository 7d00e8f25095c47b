"""A directory file rewritten in place while the agent serves calls (issue 19, item 2).

The issue's scenario, over HTTP: a writer opens the CSV with ``"w"``, writes a row up to
the last digit of its number, and pauses. Before, a lookup in the pause texted the
truncated number (``+44 7911 12345``: the right length for the UK, so "possible"), a
stranger's phone. Now a file that changed less than a second ago is not taken, a
truncated number is no *valid* number, and the old table serves until the file is whole.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.support.calls import new_call

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ACCOUNT, ON_FILE = "12345678", "+12025550199"
NEW_ACCOUNT, NEW_NUMBER = "99998888", "+447911123456"
TRUNCATED = NEW_NUMBER[:-1]
CALLER = "+15557770001"


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def next_check() -> None:
    """The directory looks at its file at most once a second."""
    await asyncio.sleep(1.1)


async def test_a_lookup_while_the_file_is_half_written_never_texts_the_truncated_number(
    fake_signalwire, make_settings, serve_agent, tmp_path
):
    fake, sw_url = fake_signalwire
    book = tmp_path / "accounts.csv"
    book.write_text(f"account_number,phone_number\n{ACCOUNT},{ON_FILE}\n")
    age(book, 5)
    settings = make_settings(
        signalwire_url=sw_url,
        config={
            "directory": {"path": str(book), "neutral_answer_seconds": 0},
            "limits": {"allowed_country_codes": [1, 44]},
        },
    )
    url = serve_agent(settings)

    async def send(account: str) -> str:
        call = await new_call(http, url, caller=CALLER)
        return (await call.invoke("send_mfa", account_number=account)).response

    async with httpx.AsyncClient(timeout=15) as http:
        with book.open("w") as writer:
            writer.write(f"account_number,phone_number\n{ACCOUNT},{ON_FILE}\n")
            writer.write(f"{NEW_ACCOUNT},+44 7911 12345")  # ... and the writer pauses
            writer.flush()
            await next_check()
            assert "No code was sent" in await send(NEW_ACCOUNT)
            assert "was texted" in await send(ACCOUNT)  # the old table still serves

            age(book, 5)  # a long pause: the file looks settled, the number is cut short
            await next_check()
            assert "No code was sent" in await send(NEW_ACCOUNT)
            writer.write("6\n")  # the writer finishes
        age(book, 5)
        await next_check()
        assert "was texted" in await send(NEW_ACCOUNT)

    recipients = [text["to"] for text in fake.texts]
    assert TRUNCATED not in recipients
    assert recipients == [ON_FILE, NEW_NUMBER]
