"""One owner per rule (issue 19, item 7): credentials are compared in ``agent.http.ingress`` only,
and the body limit lives there only.

Before, basic auth was checked three times per request (Ingress, the request guard, the
SDK's handlers) and the 1 MB limit twice, so a change to one copy could leave the others
disagreeing. Now Ingress records who the request proved to be and everything after it
reads that verdict.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent.app import build_agent
from agent.http.ingress import MAX_BODY, Ingress, Principal, authenticated_as
from testkit.servers import ServerThread
from tests.support.defaults import AUTH

pytestmark = pytest.mark.anyio


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def request_with(headers: list[tuple[bytes, bytes]], **scope: object) -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/swaig", "headers": headers, **scope}
    )


def test_the_sdks_check_reads_the_ingress_verdict_not_the_header(make_settings):
    agent = build_agent(make_settings())
    right = [(b"authorization", basic(*AUTH))]
    # The right header alone does not count: only Ingress compares credentials.
    assert agent._check_basic_auth(request_with(right)) is False
    assert agent.check_auth(request_with(right)) is False
    # Ingress's verdict counts, whatever the header says now.
    assert agent._check_basic_auth(request_with([], **{"mfa.principal": "platform"})) is True
    assert agent._check_basic_auth(request_with(right, **{"mfa.principal": "dashboard"})) is False


def test_the_sdk_leaves_the_body_limit_to_ingress(make_settings):
    """The SDK's own read refused bodies over its 10 MB; Ingress refuses past 1 MB as they
    stream, so the SDK's copy of the rule is gone (a body never reaches it over 1 MB)."""
    agent = build_agent(make_settings())
    big = b" " * (11 * 1024 * 1024)

    async def receive() -> dict:
        return {"type": "http.request", "body": big, "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    assert anyio.run(agent._read_body_with_limit, request) == big


@pytest.fixture
def two_realms() -> Iterator[str]:
    async def whoami(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"principal": authenticated_as(request.scope), "bytes": len(body)})

    app = Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST"])])
    guarded = Ingress(
        app,
        principals=[
            Principal("platform", "mfa", "platform-pass", admits=lambda p: p != "/dash"),
            Principal("dashboard", "admin", "dash-pass", admits=lambda p: p == "/dash"),
        ],
    )
    with ServerThread(guarded) as server:
        yield server.url


@pytest.mark.parametrize(
    ("path", "credentials", "status", "principal"),
    [
        ("/swaig", ("mfa", "platform-pass"), 200, "platform"),
        ("/dash", ("admin", "dash-pass"), 200, "dashboard"),
        ("/dash", ("mfa", "platform-pass"), 401, None),  # the platform's pair opens no dashboard
        ("/swaig", ("admin", "dash-pass"), 401, None),
        ("/swaig", ("mfa", "wrong"), 401, None),
        ("/health", None, 200, None),  # open: no principal
    ],
)
async def test_ingress_names_the_principal_each_pair_of_credentials_proves(
    two_realms, path, credentials, status, principal
):
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(two_realms + path, auth=credentials)
    assert response.status_code == status
    if status == 200:
        assert response.json()["principal"] == principal


async def test_the_body_limit_is_ingress_alone_at_exactly_one_megabyte(two_realms):
    async with httpx.AsyncClient(timeout=30, auth=("mfa", "platform-pass")) as http:
        whole = await http.post(two_realms + "/x", content=b"x" * MAX_BODY)
        over = await http.post(two_realms + "/x", content=b"x" * (MAX_BODY + 1))
    assert (whole.status_code, whole.json()["bytes"]) == (200, MAX_BODY)
    assert over.status_code == 413 and json.loads(over.content) == {
        "error": "request body too large"
    }
