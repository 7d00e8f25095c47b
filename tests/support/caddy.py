"""Running the README's reverse-proxy blocks (tests/deploy/) as a reader would, on a test machine.

A block is run with bash as written, except for what cannot be the same here: the ports (free
loopback ones), the certificate (made at test time with openssl: no ACME, no internet), the
paths a server has (a scratch directory) and ``.venv/bin`` (the venv running the tests). Caddy
keeps its state under the test's directory and its admin endpoint is off, so that runs side by
side do not meet. A block's public host name (``agent.example.com``) may stay as written: the
test's clients resolve every name to 127.0.0.1, as ``curl --resolve`` would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from agent.ops.local_server import free_port
from tests.support.process_group import ShellRun
from tests.support.required_servers import missing_test_server

REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "deploy" / "Caddyfile"
# What the guide's blocks start Caddy with: the variables checked, then caddy run on CADDYFILE.
CADDY_RUN = REPO / "deploy" / "caddy-run"
SANDBOX_CODE = re.compile(r"Your code: (\d{6})")
LOOPBACK = "127.0.0.1"


def require_caddy_and_openssl() -> None:
    """Skipped without Caddy or openssl; a failure on CI, which installs both."""
    for tool, package in (("caddy", "caddy"), ("openssl", "openssl")):
        if not shutil.which(tool):
            missing_test_server(f"{tool} is not installed (apt-get install {package})")


def make_certificate(directory: Path, name: str = LOOPBACK) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (an IP address or a host name) and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    kind = "IP" if re.fullmatch(r"[\d.]+", name) else "DNS"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName={kind}:{name}"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def distinct_free_ports(count: int) -> list[int]:
    """Free loopback ports, no two alike (the kernel may hand the same one out twice)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


def substituted(script: str, mine: Mapping[str, str]) -> str:
    """``script`` with each shown value replaced by this machine's, all in one pass so that
    no replacement is itself replaced. Every shown value must be in the script: a block that
    changed under the test fails here rather than running with the shown ports."""
    for shown in mine:
        assert shown in script, f"the block no longer shows {shown!r}:\n{script}"
    return re.sub("|".join(map(re.escape, mine)), lambda m: mine[m.group(0)], script)


def proxy_environ(tmp_path: Path) -> dict[str, str]:
    """This process's environment without the agent's and Caddy's variables (only the block
    and the test set those), with Caddy's state under ``tmp_path`` and its admin endpoint off
    (other test runs may hold its default port)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIGNALWIRE_", "MFA_", "SWML_", "CADDY_")) and k != "REDIS_URL"
    }
    return environ | {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CADDY_ADMIN": "off",
    }


def wait_until(
    ready: Callable[[], bool],
    runs: Sequence[ShellRun],
    logs: Sequence[Path] = (),
    timeout: float = 60,
) -> None:
    """Polls ``ready`` until it holds; fails at once when one of ``runs`` has exited, and
    with the ends of their output and of ``logs`` when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs:
            run.assert_running()
        if ready():
            return
        time.sleep(0.2)
    tails = [run.log_text() for run in runs]
    tails += [path.read_text(errors="replace") for path in logs if path.exists()]
    raise AssertionError("the block did not come up: " + "".join(t[-1500:] for t in tails))


def answers(
    url: str,
    *,
    verify: ssl.SSLContext | bool = True,
    transport: httpx.BaseTransport | None = None,
) -> bool:
    """``GET url`` is a success with a body: Caddy answers a host it has no site for with an
    empty 200. A connection refused or cut is a no, not an error. With ``transport``, its
    own ``verify`` counts."""
    try:
        with httpx.Client(verify=verify, transport=transport, timeout=2) as http:
            response = http.get(url)
            return response.is_success and bool(response.content)
    except httpx.TransportError:
        return False


async def next_code(log_text: Callable[[], str], before: int) -> str:
    """The sandbox code of the first text after the ``before`` ones in an agent's log."""
    deadline = time.monotonic() + 10
    while len(codes := SANDBOX_CODE.findall(log_text())) <= before:
        assert time.monotonic() < deadline, "no sandbox text in the agent's log"
        await asyncio.sleep(0.05)
    return codes[before]


def to_loopback(request: httpx.Request) -> httpx.Request:
    """``request`` sent to 127.0.0.1 instead of its host, keeping the host in the ``Host``
    header and as the TLS server name (SNI, and the name the certificate is checked against)."""
    host = request.url.host
    if host != LOOPBACK:
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=LOOPBACK)
    return request


class LoopbackTransport(httpx.HTTPTransport):
    """Every host name resolves to 127.0.0.1 (``curl --resolve``)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return super().handle_request(to_loopback(request))


class AsyncLoopbackTransport(httpx.AsyncHTTPTransport):
    """Every host name resolves to 127.0.0.1 (``curl --resolve``), for async clients."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await super().handle_async_request(to_loopback(request))
