"""Generated meta_data over HTTP: it never verifies a caller and never gets a 5xx.

Each example posts ``verify_mfa`` with the right code of a real pending request, on
its own call or on another call (each with its own valid tool token), carrying a
generated ``meta_data``: random shapes of the mfa fields, or the real sealed claim
with one field replaced. Only the untouched claim on its own call may verify; the
test checks that, at the end, it still does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.app import build_agent
from agent.config.settings import load_settings
from agent.ops.platform import PlatformCall
from testkit.agent_env import agent_env, write_config
from testkit.servers import ServerThread
from tests.support.calls import reply_text
from tests.support.defaults import AUTH

pytestmark = [pytest.mark.e2e]

MFA_KEYS = [
    "mfa_request_id",
    "mfa_attempts_left",
    "mfa_number_last4",
    "mfa_sent_at",
    "mfa_account",
    "mfa_binding",
    "mfa_closed",
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=100),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


FIXTURE_OK = [HealthCheck.function_scoped_fixture]


class Target:
    def __init__(self, url: str, outbox: list) -> None:
        self.url, self.outbox = url, outbox
        self.http = httpx.Client(base_url=url, timeout=15)
        self.owner = self._call("+15551230001")
        self.other = self._call("+15551230002")
        sent = self.post(self.owner, "send_mfa", {}, {})
        self.owner.apply_actions("mfa_skill", sent.json()["action"])
        self.claim = dict(self.owner.meta_data["mfa_skill"])
        self.code = outbox[-1].code

    def _call(self, caller: str) -> PlatformCall:
        async def start() -> PlatformCall:
            async with httpx.AsyncClient(timeout=15) as http:
                call = PlatformCall(http=http, base_url=self.url, auth=AUTH, caller=caller)
                await call.start()
                return call

        return asyncio.run(start())

    def post(self, call: PlatformCall, function: str, args: dict, meta: Any) -> httpx.Response:
        body = call.request_body(function, args, "mfa_skill")
        body["meta_data"] = meta
        parts = urlsplit(call.functions[function]["web_hook_url"])
        return self.http.post(f"{parts.path}?{parts.query}", json=body, auth=AUTH)


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("trust-fuzz")
    environ = agent_env(write_config(tmp), auth=AUTH, swaig_secret="fuzz-swaig-secret")
    outbox: list = []
    agent = build_agent(load_settings(environ), sandbox_deliver=outbox.append)
    with ServerThread(agent.get_app()) as server:
        yield Target(server.url, outbox)


def verified(response: httpx.Response) -> bool:
    actions = response.json().get("action", [])
    return any(a.get("set_global_data", {}).get("mfa_verified") is True for a in actions)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:200]
    if response.status_code == 200:
        assert not verified(response)


@given(
    meta=st.dictionaries(st.sampled_from(MFA_KEYS), JSON, max_size=7),
    on_owner=st.booleans(),
)
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_generated_meta_data_never_verifies(target, meta, on_owner):
    call = target.owner if on_owner else target.other
    check(target.post(call, "verify_mfa", {"token": target.code}, meta))


@given(field=st.sampled_from(MFA_KEYS), value=JSON, on_owner=st.booleans())
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_real_claim_with_one_field_replaced_never_verifies(target, field, value, on_owner):
    meta = {**target.claim, field: value}
    assume(not (on_owner and meta == target.claim) and field != "mfa_closed")
    call = target.owner if on_owner else target.other
    check(target.post(call, "verify_mfa", {"token": target.code}, meta))
    check(target.post(call, "send_mfa", {}, meta))


def test_the_real_claim_of_another_call_never_verifies_and_the_owner_still_can(target):
    check(target.post(target.other, "verify_mfa", {"token": target.code}, target.claim))
    reply = target.post(target.owner, "verify_mfa", {"token": target.code}, target.claim)
    assert "caller is verified" in reply_text(reply.json())
