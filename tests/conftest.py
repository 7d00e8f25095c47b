"""Shared fixtures: a fake SignalWire served on loopback, settings, the agent served for real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from agent.app import MfaAgent, build_agent
from agent.config.settings import Settings, load_settings
from agent.ops import platform
from testkit.agent_env import agent_env, write_config
from testkit.fake_signalwire import FakeSignalWire
from testkit.redis_server import RedisServer
from testkit.servers import ServerThread
from tests.support.defaults import AUTH, DASHBOARD, SWAIG_SECRET
from tests.support.prism import PrismMock, Window, prism_mock
from tests.support.required_servers import find_prism, require_redis_server
from tests.support.swml_schema import reply_problems, swml_problems

# Property tests judge answers, not speed: no per-example deadline, which a stall on a busy
# 2-core machine would break. Tests' own @settings inherit this profile.
hypothesis_settings.register_profile("mfa", deadline=None)
hypothesis_settings.load_profile("mfa")


@pytest.fixture(scope="session")
def _schema_findings() -> Iterator[list[str]]:
    findings: list[str] = []

    def check(kind: str, body: dict[str, Any]) -> None:
        problems = swml_problems(body) if kind == "swml" else reply_problems(body)
        findings.extend(f"{kind} {json.dumps(body)[:400]}\n    {p}" for p in problems)

    stop = platform.watch(check)
    yield findings
    stop()


@pytest.fixture(autouse=True)
def swml_conforms(_schema_findings: list[str]) -> Iterator[None]:
    """Every SWML document and SWAIG reply a test receives through ``PlatformCall`` passes
    SignalWire's JSON schema for SWML (``tests/support/swml_schema.py``), or the test fails."""
    _schema_findings.clear()
    yield
    found, _schema_findings[:] = list(_schema_findings), []
    assert not found, "SignalWire's SWML schema refuses:\n" + "\n".join(found[:10])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_signalwire() -> Iterator[tuple[FakeSignalWire, str]]:
    fake = FakeSignalWire()
    with ServerThread(fake.app()) as server:
        yield fake, server.url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(
        *,
        signalwire_url: str | None = None,
        config: dict[str, Any] | None = None,
        **env: str,
    ) -> Settings:
        return load_settings(
            agent_env(
                write_config(tmp_path, config),
                auth=AUTH,
                dashboard=DASHBOARD,
                swaig_secret=SWAIG_SECRET,
                signalwire_url=signalwire_url,
                **env,
            )
        )

    return make


@pytest.fixture
def serve_agent() -> Iterator[Callable[[MfaAgent | Settings], str]]:
    """Serve an agent (or one built from settings) on a loopback port; returns its base URL."""
    servers: list[ServerThread] = []

    def serve(agent_or_settings: MfaAgent | Settings) -> str:
        agent = (
            agent_or_settings
            if isinstance(agent_or_settings, MfaAgent)
            else build_agent(agent_or_settings)
        )
        server = ServerThread(agent.get_app()).__enter__()
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (``.ci/run`` installs Debian's redis-server)."""
    require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may stop and start (outage tests)."""
    require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return str(redis_server.url)


@pytest.fixture(scope="session")
def prism_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismMock]:
    """One Stoplight Prism for the session, mocking SignalWire's REST OpenAPI
    (``tests/support/prism.py``; ``.ci/run`` installs it under ``.prism/``)."""
    with prism_mock(find_prism(), tmp_path_factory.mktemp("prism")) as server:
        yield server


@pytest.fixture
def prism(prism_server: PrismMock) -> Window:
    """The session's Prism, its log read from where this test begins."""
    return prism_server.window()
