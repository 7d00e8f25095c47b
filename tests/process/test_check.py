"""``python -m agent check`` against the fake space and real local servers, each failure too.

Every dependency is real on loopback: the fake SignalWire (its number list and MFA API),
a redis-server, a directory server and an outcome receiver, and the agent itself at its
public URL. Each test breaks one thing the way an operator would and reads the line; the
process test runs the ``check-run`` transcript the docs show (the operator's guide, "Check
before the phone rings") and must print what it shows.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.app import build_agent
from agent.config.settings import load_settings
from agent.ops.preflight import main as check_main
from skills.mfa.delivery.signing import verify_signature
from testkit.agent_env import agent_env, write_config
from testkit.fake_signalwire import API_TOKEN, FakeSignalWire
from testkit.servers import ServerThread, free_port
from tests.support.defaults import AUTH, SWAIG_SECRET
from tests.support.shown import shown_block, venv_bin

DIRECTORY_SECRET = "directory-secret-0123456789"
OUTCOME_SECRET = "outcome-secret-0123456789abc"
SIGNING_KEY = "PSKpreflight0123456789abcdef"


class SignedEndpoint:
    """A loopback server that checks the MFA signature and records what it got."""

    def __init__(self, secret: str, *, found_status: int = 404) -> None:
        self.secret = secret
        self.status = found_status
        self.received: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/", self._post, methods=["POST"])])

    async def _post(self, request: Request) -> Response:
        body = await request.body()
        ok = verify_signature(
            self.secret,
            request.headers.get("x-mfa-timestamp", ""),
            body,
            request.headers.get("x-mfa-signature"),
        )
        self.received.append({"body": json.loads(body), "headers": dict(request.headers)})
        if not ok:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.status == 204:  # no content: a body would break the HTTP response
            return Response(status_code=204)
        return JSONResponse({}, status_code=self.status)


@pytest.fixture
def world(tmp_path, redis_server) -> Iterator[dict[str, Any]]:
    """Everything a production configuration names, on loopback, all healthy."""
    fake = FakeSignalWire()
    directory = SignedEndpoint(DIRECTORY_SECRET)
    receiver = SignedEndpoint(OUTCOME_SECRET, found_status=204)
    with (
        ServerThread(fake.app()) as space,
        ServerThread(directory.app()) as directory_server,
        ServerThread(receiver.app()) as receiver_server,
    ):
        agent_port = free_port()
        env = agent_env(
            write_config(tmp_path),
            auth=AUTH,
            swaig_secret=SWAIG_SECRET,
            signalwire_url=space.url,
            redis_url=redis_server.url,
            SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
            SWML_PROXY_URL_BASE=f"http://127.0.0.1:{agent_port}",
            # The agent's own HOST:PORT, so that check's "does this agent answer /health
            # here?" asks the port the tests serve it on, never whatever holds :3000.
            HOST="127.0.0.1",
            PORT=str(agent_port),
            MFA_TRUSTED_PROXIES="",
            MFA_DIRECTORY_URL=directory_server.url + "/",
            MFA_DIRECTORY_SECRET=DIRECTORY_SECRET,
            MFA_OUTCOME_WEBHOOK_URL=receiver_server.url + "/",
            MFA_OUTCOME_WEBHOOK_SECRET=OUTCOME_SECRET,
        )
        yield {
            "env": env,
            "fake": fake,
            "directory": directory,
            "receiver": receiver,
            "agent_port": agent_port,
            "fake_host": space.url.split("://", 1)[1],
        }


def run_check(env: dict[str, str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = check_main([], load_settings=lambda: load_settings(env), out=out)
    return status, out.getvalue().splitlines()


def line_for(lines: list[str], name: str) -> str:
    (line,) = [line for line in lines if line.split(None, 1)[1].startswith(f"{name}:")]
    return line


@pytest.fixture
def serve_at():
    servers: list[ServerThread] = []

    def serve(env: dict[str, str], port: int) -> None:
        server = ServerThread(build_agent(load_settings(env)).get_app(), port=port)
        servers.append(server.__enter__())

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


def test_everything_ok_with_the_agent_answering_at_its_public_url(world, serve_at):
    serve_at(world["env"], world["agent_port"])
    status, lines = run_check(world["env"])
    assert status == 0, lines
    assert [line.split(None, 1)[0] for line in lines[:-1]] == ["ok"] * 10, lines
    names = [line.split(None, 1)[1].split(":", 1)[0] for line in lines[:-1]]
    assert names == [
        "configuration",
        "space",
        "MFA API",
        "from number",
        "line-type lookup",
        "signing key",
        "public URL",
        "redis",
        "directory",
        "outcome receiver",
    ]
    assert lines[-1] == "10 checks: 0 failed, 0 warnings; ready for a call"
    # The receiver got a signed test delivery; the directory a signed unknown lookup.
    (delivery,) = world["receiver"].received
    assert delivery["body"]["outcome"] == "test" and delivery["headers"]["x-mfa-delivery"]
    assert world["directory"].received[0]["body"] == {
        "account_number": "preflight-check-no-such-account"
    }
    # Nothing was texted: the check only read and probed an unknown request id.
    assert world["fake"].texts == []
    text = "\n".join(lines)
    for secret in (AUTH[1], SIGNING_KEY, DIRECTORY_SECRET, OUTCOME_SECRET, API_TOKEN):
        assert secret not in text


def test_nothing_at_the_public_url_yet_is_a_warning_not_a_failure(world):
    status, lines = run_check(world["env"])
    assert status == 0, lines
    assert line_for(lines, "public URL").startswith(
        f"warn  public URL: nothing answers at http://127.0.0.1:{world['agent_port']} yet"
    )
    assert lines[-1] == "10 checks: 0 failed, 1 warning; ready for a call"


def test_another_agent_at_the_public_url_fails(world, serve_at):
    other = {**world["env"], "SWML_BASIC_AUTH_PASSWORD": "another-password-entirely"}
    serve_at(other, world["agent_port"])
    status, lines = run_check(world["env"])
    assert status == 1
    assert line_for(lines, "public URL").startswith(
        f"FAIL  public URL: the agent at http://127.0.0.1:{world['agent_port']} refuses this "
        "configuration's credentials (HTTP 401): it runs with another configuration. Fix: "
    )


def test_a_wrong_api_token_fails_naming_the_scope(world):
    env = {**world["env"], "SIGNALWIRE_API_TOKEN": "PTnot-the-token-0123456789"}
    status, lines = run_check(env)
    assert status == 1
    line = line_for(lines, "MFA API")
    assert "refused the project id and API token (HTTP 401)" in line
    assert "needs the Management scope for SignalWire's MFA API" in line
    assert "PTnot-the-token" not in "\n".join(lines)


def test_a_token_without_the_mfa_scope_fails_leading_with_the_scope(world):
    """The space answers 403 (the pair is right, the scope is not): the line starts with
    what to fix, not with the host that refused."""
    world["fake"].scopes = {"numbers"}
    status, lines = run_check(world["env"])
    assert status == 1
    assert line_for(lines, "MFA API").startswith(
        "FAIL  MFA API: the API token lacks the Management scope that SignalWire's MFA API "
        f"needs (HTTP 403 from {world['fake_host']}). Fix: in the dashboard (API > Tokens) "
        "give this token the Management scope"
    )


def test_a_token_that_cannot_list_numbers_still_passes_with_a_warning(world):
    world["fake"].scopes = {"management"}
    status, lines = run_check(world["env"])
    assert status == 0, lines
    assert line_for(lines, "MFA API").startswith("ok    MFA API: the token is accepted")
    assert line_for(lines, "from number").startswith("warn  from number: cannot check")


def test_a_from_number_of_another_project_fails(world):
    world["fake"].owned_numbers = ["+15550000001"]
    status, lines = run_check(world["env"])
    assert status == 1
    assert line_for(lines, "from number").startswith(
        "FAIL  from number: +15559870000 is not a number of this project. Fix: "
    )


def test_a_space_that_does_not_answer_fails_naming_the_forms(world):
    env = {**world["env"], "SIGNALWIRE_SPACE": f"http://127.0.0.1:{free_port()}"}
    status, lines = run_check(env)
    assert status == 1
    line = line_for(lines, "space")
    assert line.startswith("FAIL  space: cannot reach 127.0.0.1:")
    assert "example, example.signalwire.com or https://example.signalwire.com" in line


def test_redis_down_fails(world):
    env = {**world["env"], "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    status, lines = run_check(env)
    assert status == 1
    assert line_for(lines, "redis").startswith("FAIL  redis: 127.0.0.1:")
    assert "start redis-server there, or fix REDIS_URL" in line_for(lines, "redis")


def test_a_directory_with_another_secret_fails(world):
    world["directory"].secret = "the-server-has-another-secret"
    status, lines = run_check(world["env"])
    assert status == 1
    assert line_for(lines, "directory").endswith(
        "refused the signed lookup (HTTP 401). Fix: MFA_DIRECTORY_SECRET must be the secret "
        "the directory server checks"
    )


def test_an_outcome_receiver_that_is_down_fails(world):
    env = {**world["env"], "MFA_OUTCOME_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/"}
    status, lines = run_check(env)
    assert status == 1
    assert line_for(lines, "outcome receiver").startswith("FAIL  outcome receiver: cannot reach")


def test_an_outcome_receiver_with_another_secret_fails(world):
    world["receiver"].secret = "the-receiver-has-another-one"
    status, lines = run_check(world["env"])
    assert status == 1
    assert "refused the signed test delivery (HTTP 401)" in line_for(lines, "outcome receiver")


def test_a_bad_configuration_is_one_failed_line(world):
    env = {**world["env"], "SIGNALWIRE_SPACE": "example/path"}
    status, lines = run_check(env)
    assert status == 1
    assert lines == [
        "FAIL  configuration: SIGNALWIRE_SPACE: must be your space's name or URL: example, "
        "example.signalwire.com or https://example.signalwire.com (http://127.0.0.1:PORT only "
        "for a test server on this machine)"
    ]


def test_no_signing_key_on_a_loopback_space_is_a_warning(world):
    env = {k: v for k, v in world["env"].items() if k != "SIGNALWIRE_SIGNING_KEY"}
    status, lines = run_check(env)
    assert status == 0, lines
    assert line_for(lines, "signing key").startswith("warn  signing key: not set")


def run_shown_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The README's ``check-run`` command in bash, the venv running the tests standing for
    the clone's ``.venv``."""
    (command, _), *more = shown_block("check-run").transcript
    assert not more, "the check-run transcript shows one command"
    command = re.sub(r"^\.venv/bin/", venv_bin(), command)
    return subprocess.run(
        ["bash", "-c", command],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_ports(lines: list[str]) -> list[str]:
    """Each run serves on free ports: the shown transcript's ports are another run's."""
    return [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line) for line in lines]


def test_check_as_a_process_prints_the_readme_transcript_and_exits_0_and_1(
    world, serve_at, tmp_path
):
    """The command as the README shows it (``.venv/bin/python -m agent check``), against
    everything healthy and the agent answering at its public URL: the output is the README's
    transcript line for line, ports aside. With Redis down it exits 1 naming Redis."""
    serve_at(world["env"], world["agent_port"])
    ok = run_shown_check(world["env"], tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    block = shown_block("check-run")
    ((_, shown),) = block.transcript
    assert without_ports(ok.stdout.splitlines()) == without_ports(shown), (
        f"{block.where}: the check-run transcript no longer matches the program's output:\n"
        + ok.stdout
    )
    broken = run_shown_check({**world["env"], "REDIS_URL": "redis://127.0.0.1:9/0"}, tmp_path)
    assert broken.returncode == 1
    assert any(line.startswith("FAIL  redis:") for line in broken.stdout.splitlines())


def test_an_untrusted_certificate_is_named_not_taken_for_nothing_answering():
    """A ConnectError whose cause is a certificate the client cannot verify."""
    import ssl

    import httpx

    from agent.ops.preflight.public_url import is_certificate_problem as _is_certificate_problem

    try:
        try:
            raise ssl.SSLCertVerificationError(1, "self-signed certificate")
        except ssl.SSLError as cause:
            raise httpx.ConnectError("handshake failed") from cause
    except httpx.ConnectError as exc:
        assert _is_certificate_problem(exc)
    assert not _is_certificate_problem(httpx.ConnectError("connection refused"))


@pytest.mark.anyio
async def test_a_public_name_that_does_not_resolve_fails_rather_than_waits(world):
    """ "Nothing answers yet" is a warning because the agent may not be up; a name DNS does
    not know is a mistake SignalWire would hit too. The resolver's failure is raised at the
    transport, as httpx raises it (a ConnectError caused by socket.gaierror)."""
    import socket

    import httpx

    from agent.ops.preflight.public_url import check_public_url

    def unresolvable(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as cause:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from cause

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    settings = load_settings({**world["env"], "SWML_PROXY_URL_BASE": "https://agent.example.com"})
    for handler, status, text in (
        (unresolvable, "FAIL", "the name agent.example.com does not resolve here (DNS)"),
        (refused, "warn", "nothing answers at https://agent.example.com yet"),
    ):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            (line,) = await check_public_url(settings, http)
        assert line.status == status and line.detail.startswith(text), line
