"""Shared fixtures: a fake SignalWire served on loopback, settings, the agent served for real."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from hypothesis import settings as hypothesis_settings

from agent.app import MfaAgent, build_agent
from agent.settings import Settings, load_settings
from tests.support.fake_signalwire import API_TOKEN, PROJECT_ID, FakeSignalWire
from tests.support.servers import ServerThread

# Property tests judge answers, not speed: no per-example deadline, which a stall on a busy
# 2-core machine would break. Tests' own @settings inherit this profile.
hypothesis_settings.register_profile("mfa", deadline=None)
hypothesis_settings.load_profile("mfa")

AUTH = ("operator", "s3cret-test-password")
CALLER = "+15551230001"

# Set by .ci/run, which installs every server the tests use: there a missing one is a failure.
REQUIRE_TEST_SERVERS = "MFA_REQUIRE_TEST_SERVERS"


def missing_test_server(reason: str) -> NoReturn:
    """Skip a test whose server (redis-server, Chromium, playwright) is not installed here;
    fail it instead where ``MFA_REQUIRE_TEST_SERVERS=1`` promises the server is installed."""
    if os.environ.get(REQUIRE_TEST_SERVERS) == "1":
        pytest.fail(f"{reason}; {REQUIRE_TEST_SERVERS}=1 requires it", pytrace=False)
    pytest.skip(reason)


def require_redis_server() -> None:
    from tests.support.redis_server import RedisServer

    if not RedisServer.available():
        missing_test_server("redis-server is not installed (apt-get install redis-server)")


def find_chromium() -> str:
    """Debian's ``chromium`` (or ``chromium-browser`` elsewhere) on PATH."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    missing_test_server("Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_signalwire() -> Iterator[tuple[FakeSignalWire, str]]:
    fake = FakeSignalWire()
    with ServerThread(fake.app()) as server:
        yield fake, server.url


def write_config(tmp_path: Path, overrides: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {"sandbox_db_path": str(tmp_path / "sandbox.sqlite3")}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(
        *,
        signalwire_url: str | None = None,
        config: dict[str, Any] | None = None,
        **env: str,
    ) -> Settings:
        environ = {
            "MFA_AGENT_CONFIG": str(write_config(tmp_path, config)),
            "SWML_BASIC_AUTH_USER": AUTH[0],
            "SWML_BASIC_AUTH_PASSWORD": AUTH[1],
            "SIGNALWIRE_SWAIG_SECRET": "test-swaig-secret",
        }
        if signalwire_url:
            environ.update(
                {
                    "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
                    "SIGNALWIRE_API_TOKEN": API_TOKEN,
                    "SIGNALWIRE_SPACE": signalwire_url,
                    "MFA_FROM_NUMBER": "+15559870000",
                }
            )
        else:
            environ["MFA_PROVIDER"] = "sandbox"
        environ.update(env)
        return load_settings(environ)

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
def redis_server() -> Iterator[Any]:
    """One redis-server for the session (``.ci/run`` installs Debian's redis-server)."""
    from tests.support.redis_server import RedisServer

    require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server() -> Iterator[Any]:
    """A redis-server for this test alone, which it may stop and start (outage tests)."""
    from tests.support.redis_server import RedisServer

    require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    redis_server.flush()
    return str(redis_server.url)
