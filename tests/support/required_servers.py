"""Servers some tests need (redis-server and redis-sentinel, Chromium, Prism): skipped
where missing, unless required.

``.ci/run`` installs every server the tests use and sets ``MFA_REQUIRE_TEST_SERVERS=1``:
there a missing one is a failure, so a broken install step cannot hide behind a skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from testkit import container
from testkit.redis_sentinel import SentinelCluster
from testkit.redis_server import RedisServer
from tests.support.prism import INSTALL_HINT, PRISM_ENV, prism_executable

REQUIRE_TEST_SERVERS = "MFA_REQUIRE_TEST_SERVERS"


def missing_test_server(reason: str) -> NoReturn:
    """Skip a test whose server (redis-server, Chromium, playwright) is not installed here;
    fail it instead where ``MFA_REQUIRE_TEST_SERVERS=1`` promises the server is installed."""
    if os.environ.get(REQUIRE_TEST_SERVERS) == "1":
        pytest.fail(f"{reason}; {REQUIRE_TEST_SERVERS}=1 requires it", pytrace=False)
    pytest.skip(reason)


def require_redis_server() -> None:
    if not RedisServer.available():
        missing_test_server("redis-server is not installed (apt-get install redis-server)")


def require_redis_sentinel() -> None:
    """redis-server and redis-sentinel (Debian packages them apart)."""
    if not SentinelCluster.available():
        missing_test_server(
            "redis-server and redis-sentinel are not installed "
            "(apt-get install redis-server redis-sentinel)"
        )


def require_podman() -> None:
    """podman and runc to build and run the image, and debootstrap unless the base exists."""
    if not container.podman_available():
        missing_test_server("podman and runc are not installed (apt-get install podman runc)")
    if not container.image_exists(container.BASE_IMAGE) and not container.debootstrap_available():
        missing_test_server("debootstrap is not installed (apt-get install debootstrap)")


def find_chromium() -> str:
    """Debian's ``chromium`` (or ``chromium-browser`` elsewhere) on PATH."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    missing_test_server("Chromium is not installed (apt-get install chromium)")


def find_prism() -> str:
    """Stoplight Prism: ``$MFA_PRISM``, else ``.prism/node_modules/.bin/prism`` (where
    ``.ci/run`` installs it)."""
    found = prism_executable()
    if found:
        return found
    where = os.environ.get(PRISM_ENV) or ".prism/node_modules/.bin/prism"
    missing_test_server(f"Stoplight Prism is not installed at {where} ({INSTALL_HINT})")
