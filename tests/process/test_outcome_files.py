"""The sandbox and an account never share a history by default, and each row names its
provider: ``python -m agent`` run twice from one directory with one configuration, as an
operator tries the sandbox before the account, then reads ``/outcomes``.

Before, both wrote ``outcomes.sqlite3`` beside ``sandbox_db_path``: the sandbox's verified
calls (nobody's phone) sat in the production history, indistinguishable from real ones.
"""

from __future__ import annotations

import httpx
import pytest

from agent.ops.platform import PlatformCall
from testkit.fake_signalwire import FakeSignalWire
from testkit.servers import ServerThread
from tests.process.test_outbox_process import verify_on
from tests.support.agent_process import AgentProcess
from tests.support.defaults import AUTH, DASHBOARD, account_on

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SANDBOX_CALLER, ACCOUNT_CALLER = "+15551110041", "+15551110042"


async def verify_on_the_space(url: str, fake: FakeSignalWire) -> str:
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=ACCOUNT_CALLER)
        await call.start()
        await call.invoke("send_mfa")
        reply = await call.invoke("verify_mfa", token=fake.last_code_for(ACCOUNT_CALLER))
        assert "caller is verified" in reply.response
        return call.call_id


def history(url: str) -> list[dict]:
    answer = httpx.get(url + "/outcomes", auth=DASHBOARD, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["outcomes"]


async def test_sandbox_outcomes_stay_out_of_the_accounts_history(tmp_path):
    sandbox = AgentProcess(tmp_path)
    try:
        sandbox.wait_ready()
        sandbox_call = await verify_on(sandbox.url, SANDBOX_CALLER)
        (row,) = history(sandbox.url)
    finally:
        sandbox.stop()
    assert (row["call_id"], row["provider"]) == (sandbox_call, "sandbox")

    fake = FakeSignalWire()
    with ServerThread(fake.app()) as space:
        account = AgentProcess(
            tmp_path,
            **account_on(space.url),
        )
        try:
            account.wait_ready()
            account_call = await verify_on_the_space(account.url, fake)
            rows = history(account.url)
        finally:
            account.stop()
    assert [(r["call_id"], r["provider"]) for r in rows] == [(account_call, "signalwire")]
    assert sorted(p.name for p in tmp_path.glob("outcomes*.sqlite3")) == [
        "outcomes-sandbox.sqlite3",
        "outcomes.sqlite3",
    ]
