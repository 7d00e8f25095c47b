"""The agent's image built and run with podman where no image registry is reachable.

CI and the container tests use it: the base image comes from ``debootstrap`` (Debian trixie,
Python 3.13) and ``podman import`` instead of ``python:3.13-slim``, the dependencies from a
wheelhouse made on the host (``wheels/`` in the build context: the Containerfile installs
from it with ``--no-index``). podman runs with ``--runtime runc`` (crun refuses this machine's
hybrid cgroups) and lowered limits on every build and run (raising them is not permitted).

``python -m testkit.container base`` makes the base image once (``.ci/run`` does it before
the tests); the image store keeps it between test runs.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

BASE_IMAGE = "localhost/debian-base:trixie"
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
IMAGE_PYTHON = "3.13"
PODMAN = ("podman", "--runtime", "runc")
LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# The wheelhouse's record of the dependency list it was downloaded for.
WHEELHOUSE_STAMP = ".dependencies"


class ContainerError(RuntimeError):
    """A podman, debootstrap or pip step failed; the message holds its output."""


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("runc") is not None


def debootstrap_available() -> bool:
    return shutil.which("debootstrap") is not None


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """``podman --runtime runc ARGS``; ``build`` and ``run`` get the lowered limits."""
    command = [*PODMAN, *args]
    if args and args[0] in ("build", "run"):
        command[len(PODMAN) + 1 : len(PODMAN) + 1] = LIMITS
    return _run(command, timeout=timeout, check=check)


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_base_image(name: str = BASE_IMAGE) -> None:
    """Make the Debian base with debootstrap and import it, unless the store has it."""
    if image_exists(name):
        return
    if not debootstrap_available():
        raise ContainerError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="mfa-base-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                DEBIAN_SUITE,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            timeout=900,
        )
        # What python:3.13-slim leaves out too: the downloaded packages and the apt lists.
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        for listing in (rootfs / "var/lib/apt/lists").glob("*_*"):
            listing.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                [*PODMAN, "import", "-", name],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait(timeout=60)
        if imported.returncode != 0 or tar.returncode != 0:
            raise ContainerError(f"podman import failed: {imported.stderr.strip()}")


def dependencies_key(repo: Path) -> str:
    """What the wheelhouse depends on: the project's dependency list and the image's Python."""
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = "\n".join([IMAGE_PYTHON, *project["dependencies"]])
    return hashlib.sha256(listed.encode()).hexdigest()


def wheelhouse_is_current(wheels: Path, repo: Path) -> bool:
    stamp = wheels / WHEELHOUSE_STAMP
    return stamp.is_file() and stamp.read_text().strip() == dependencies_key(repo)


def mark_wheelhouse_current(wheels: Path, repo: Path) -> None:
    (wheels / WHEELHOUSE_STAMP).write_text(dependencies_key(repo) + "\n")


def image_size_bytes(name: str) -> int:
    return int(podman("image", "inspect", name, "--format", "{{.Size}}").stdout.strip())


def remove_untagged_images() -> None:
    """Each build leaves the build stage's image untagged, and the previous image of the
    tag it reuses: drop those of ours (``prune`` spares tagged images)."""
    for label in ("mfa-agent.stage=build", "org.opencontainers.image.title=mfa-agent"):
        podman("image", "prune", "--force", "--filter", f"label={label}", check=False)


def _run(command: list[str], *, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        shown = " ".join(command[:6])
        raise ContainerError(
            f"{shown} ... exited {result.returncode}: {(result.stderr or result.stdout)[-3000:]}"
        )
    return result


def main(argv: list[str]) -> int:
    if argv != ["base"]:
        print("usage: python -m testkit.container base", file=sys.stderr)
        return 2
    ensure_base_image()
    print(f"{BASE_IMAGE}: {image_size_bytes(BASE_IMAGE) / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
