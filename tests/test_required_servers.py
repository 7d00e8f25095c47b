"""On CI a test whose server ``.ci/run`` installs may not quietly skip: it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.required_servers import (
    REQUIRE_TEST_SERVERS,
    find_chromium,
    missing_test_server,
    require_podman,
)


def test_a_missing_server_is_a_skip_on_a_workstation(monkeypatch):
    monkeypatch.delenv(REQUIRE_TEST_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        missing_test_server("redis-server is not installed")


def test_a_missing_server_is_a_failure_where_servers_are_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_TEST_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        missing_test_server("redis-server is not installed")


def test_chromium_is_found_on_the_path_under_either_name(monkeypatch, tmp_path):
    for name in ("chromium", "chromium-browser"):
        folder = tmp_path / name
        folder.mkdir()
        browser = folder / name
        browser.write_text("#!/bin/sh\n")
        browser.chmod(0o755)
        monkeypatch.setenv("PATH", str(folder))
        assert find_chromium() == str(browser)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(REQUIRE_TEST_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        find_chromium()


def test_ci_requires_the_servers_it_installs():
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert f"export {REQUIRE_TEST_SERVERS}=1" in script


def test_the_container_tests_skip_without_podman_and_fail_where_required(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(REQUIRE_TEST_SERVERS, raising=False)
    with pytest.raises(pytest.skip.Exception, match="podman and runc are not installed"):
        require_podman()
    monkeypatch.setenv(REQUIRE_TEST_SERVERS, "1")
    with pytest.raises(pytest.fail.Exception, match="podman and runc are not installed"):
        require_podman()


def test_ci_installs_podman_and_makes_the_base_image_before_the_tests():
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    packages = script.split("apt_packages=(", 1)[1].split(")", 1)[0].split()
    assert {"podman", "runc", "debootstrap"} <= set(packages)
    base = script.index(".venv/bin/python -m testkit.container base")
    assert script.index("\nmake lint\n") < base < script.index("\nmake test\n")
