"""The image built once per session from the shipped Containerfile, by the README's commands.

Skipped where podman is missing; a failure instead with ``MFA_REQUIRE_TEST_SERVERS=1``
(CI installs podman, runc and debootstrap). The base image stays in podman's store and
``wheels/`` (gitignored) in the repository between runs: the dependencies are downloaded
again only when ``pyproject.toml``'s list changes; the project's wheel is rebuilt every time.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest

from testkit import container
from tests.support.agent_container import README_DIR, readme_command, run_shell
from tests.support.required_servers import require_podman

REPO = README_DIR
TEST_IMAGE = "localhost/mfa-agent:test"


@pytest.fixture(scope="session")
def agent_image() -> Iterator[str]:
    """The image's name, built by the README's commands (tagged for the tests)."""
    require_podman()
    run_shell(readme_command(".venv/bin/python -m testkit.container base"))
    wheels = REPO / "wheels"
    if not container.wheelhouse_is_current(wheels, REPO):
        run_shell(readme_command(".venv/bin/pip download "))
        container.mark_wheelhouse_current(wheels, REPO)
    # setuptools builds in build/ and never deletes there: a module removed from the tree
    # would still be packaged from a previous build's copy.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    run_shell(readme_command(".venv/bin/pip wheel "))
    build = readme_command("podman --runtime runc build ")
    run_shell(build.replace("-t localhost/mfa-agent ", f"-t {TEST_IMAGE} "))
    container.remove_untagged_images()
    yield TEST_IMAGE


@pytest.fixture
def volume_name() -> Iterator[str]:
    """A podman volume of this test's own, removed afterwards."""
    name = f"mfa-test-{secrets.token_hex(4)}"
    yield name
    container.podman("volume", "rm", "--force", name, check=False)
