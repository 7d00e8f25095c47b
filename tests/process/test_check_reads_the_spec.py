"""``check``'s MFA probe read by SignalWire's REST OpenAPI, not by one space's habits.

The probe verifies a random request id. The spec declares 200, 401, 422 and 500 for that
verify (a mock of the spec, Prism, answers 200); the guide adds 404 for an unknown id. Any
of these but a refusal proves the token reached the MFA API. The product keeps those answers
in a small table (``agent.ops.preflight.mfa_answers``); the first test keeps it equal to the
vendored spec, the others serve each answer from a real loopback space and read the line.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.config.settings import load_settings
from agent.ops.preflight.account import check_space
from agent.ops.preflight.mfa_answers import DECLARED, DOCUMENTED
from testkit.agent_env import FROM_NUMBER, agent_env, write_config
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID
from testkit.openapi_subset import load_document
from testkit.servers import ServerThread
from tests.support.defaults import AUTH, SWAIG_SECRET
from tests.support.prism import SPEC

VERIFY = "/api/relay/rest/mfa/{mfa_request_id}/verify"
# Bodies of the spec's schemas for each answer (MfaVerifyResponse, StatusCode401, ...).
BODIES = {
    200: {"success": True},
    401: {"error": "Unauthorized"},
    404: {"error": "Not Found"},
    422: {"errors": [{"detail": "x", "status": "422", "title": "Invalid Attribute"}]},
    500: {"error": "Internal Server Error"},
}


def test_the_table_of_verify_answers_is_the_vendored_specs():
    operation = load_document(SPEC)["paths"][VERIFY]["post"]
    assert operation["operationId"] == "verify_mfa_token"
    assert set(DECLARED) == {int(status) for status in operation["responses"]}
    assert not set(DOCUMENTED) & set(DECLARED), "a documented answer the spec now declares"


def space_answering(verify_status: int) -> Starlette:
    """A space whose number list holds MFA_FROM_NUMBER and whose verify answers
    ``verify_status`` with the spec's body for it."""

    async def numbers(request: Request) -> Response:
        return JSONResponse({"data": [{"number": FROM_NUMBER}]})

    async def verify(request: Request) -> Response:
        return JSONResponse(BODIES[verify_status], status_code=verify_status)

    return Starlette(
        routes=[
            Route("/api/relay/rest/phone_numbers", numbers, methods=["GET"]),
            Route("/api/relay/rest/mfa/{request_id}/verify", verify, methods=["POST"]),
        ]
    )


async def mfa_api_line(tmp_path, verify_status: int) -> str:
    with ServerThread(space_answering(verify_status)) as space:
        settings = load_settings(
            agent_env(
                write_config(tmp_path),
                auth=AUTH,
                swaig_secret=SWAIG_SECRET,
                signalwire_url=space.url,
            )
        )
        async with httpx.AsyncClient(timeout=5) as http:
            lines = await check_space(settings, http)
    (line,) = [line.render() for line in lines if line.name == "MFA API"]
    return line


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 404, 422])
async def test_an_answer_the_spec_declares_proves_the_scope(tmp_path, status):
    line = await mfa_api_line(tmp_path, status)
    assert line == "ok    MFA API: the token is accepted by the MFA API (scope Management)"


@pytest.mark.anyio
async def test_a_declared_server_error_proves_the_scope_with_a_warning(tmp_path):
    line = await mfa_api_line(tmp_path, 500)
    assert line.startswith("warn  MFA API: the token is accepted by the MFA API"), line
    assert "answered HTTP 500 to a verify" in line


@pytest.mark.anyio
async def test_a_refusal_still_fails(tmp_path):
    line = await mfa_api_line(tmp_path, 401)
    assert line.startswith("FAIL  MFA API: ") and "(HTTP 401)" in line, line
    assert API_TOKEN not in line and PROJECT_ID not in line
