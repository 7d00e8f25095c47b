"""Stoplight Prism mocking SignalWire's REST OpenAPI on loopback, and what it flagged.

``prism mock --errors`` answers each request with the spec's example (200) when the request
conforms, and with the spec's 422 (body, path or query) or 401 (no basic auth) when it does
not, logging one ``[VALIDATOR] ✖  error     Violation: ...`` line per problem. Those lines,
and Prism's ``Request terminated with error`` (a path or method the spec does not have), are
``violations()``: a test that lets the agent talk to Prism asserts there are none.

What Prism serves is derived, at test time, from the vendored spec
(``tests/schemas/signalwire/signalwire-rest.openapi.yaml``, unchanged from
github:signalwire/docs 668371b), and differs from it in two ways, both unavoidable:

- **Only the paths the agent and ``check`` call** (``PATHS``), each path item whole, with
  every component it references, unchanged (``testkit.openapi_subset``): on the whole
  document Prism 5.14 had not started after ten minutes (one core busy, 2 GB of memory),
  on the subset it starts in about two seconds.
- **``jsonSchemaDialect``** set to JSON Schema 2020-12, the dialect OpenAPI 3.1 documents
  are written in. Without it Prism rewrites every schema as draft-07
  (``@stoplight/http-spec``'s ``convertSchema``), whose validator ignores
  ``unevaluatedProperties``: SignalWire's schemas close every object with
  ``unevaluatedProperties: {not: {}}`` (TypeSpec's output), so an unknown field would pass.
  With the dialect named, Prism validates with Ajv's 2020-12 build and refuses it.

``servers`` is kept as it is: ``https://{space_name}.signalwire.com`` has no path, so the
spec's paths (``/api/relay/rest/mfa/sms``...) are served at the root, which is where the
agent sends them with ``SIGNALWIRE_SPACE=http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from testkit.openapi_subset import load_document, subset
from testkit.servers import free_port
from tests.support.process_group import stop_group

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "tests" / "schemas" / "signalwire" / "signalwire-rest.openapi.yaml"
PRISM_ENV = "MFA_PRISM"
LOCAL_PRISM = REPO / ".prism" / "node_modules" / ".bin" / "prism"
INSTALL_HINT = "npm install --prefix .prism @stoplight/prism-cli@5, or set MFA_PRISM"
#: What the agent calls (send, verify), what ``python -m agent check`` calls (the number
#: list, a verify probe), and what the fake serves besides (a code by voice call, lookup).
PATHS = (
    "/api/relay/rest/mfa/sms",
    "/api/relay/rest/mfa/call",
    "/api/relay/rest/mfa/{mfa_request_id}/verify",
    "/api/relay/rest/phone_numbers",
    "/api/relay/rest/lookup/phone_number/{e164_number}",
)
DIALECT = "https://json-schema.org/draft/2020-12/schema"
START_TIMEOUT = 90.0  # two seconds when idle; a 2-core machine running other suites is slower

_LISTENING = "Prism is listening on"
_RECEIVED = re.compile(r"\[HTTP SERVER\] (\w+) (\S+) .*Request received")
_VIOLATION = re.compile(r"(Violation: .*|Request terminated with error: .*)$")
_STAMP = re.compile(r"^\[[^\]]*\] › ")


def prism_executable() -> str | None:
    """``$MFA_PRISM`` when set, else ``.prism/node_modules/.bin/prism``; None when neither
    is an executable file (callers skip or fail through ``required_servers``)."""
    named = os.environ.get(PRISM_ENV)
    candidate = Path(named) if named else LOCAL_PRISM
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


@cache
def vendored_spec() -> dict[str, Any]:
    """The vendored REST document, parsed once a session (about a second; do not mutate)."""
    return load_document(SPEC)


def write_served_spec(directory: Path) -> Path:
    """The document Prism serves (see the module docstring), as JSON in ``directory``."""
    document = subset(vendored_spec(), PATHS)
    served = {"openapi": document["openapi"], "jsonSchemaDialect": DIALECT, **document}
    path = directory / "signalwire-rest.prism.json"
    path.write_text(json.dumps(served, ensure_ascii=False))
    return path


@dataclass(frozen=True)
class Window:
    """What Prism logged from one point on (a test's own requests, on a shared Prism)."""

    prism: PrismMock
    start: int

    @property
    def url(self) -> str:
        return self.prism.url

    def lines(self) -> list[str]:
        return self.prism.log_lines()[self.start :]

    def violations(self) -> list[str]:
        """Each problem Prism found in a request since ``start``, without its time stamp."""
        return [m.group(1) for line in self.lines() if (m := _VIOLATION.search(line))]

    def requests_seen(self) -> list[str]:
        """``"POST /api/relay/rest/mfa/sms"`` for each request Prism received since ``start``."""
        return [
            f"{m.group(1).upper()} {m.group(2)}"
            for line in self.lines()
            if (m := _RECEIVED.search(line))
        ]


class PrismMock:
    """``prism mock --errors`` on a free loopback port, its output in ``workdir/prism.log``.

    ``with PrismMock(prism, spec, workdir) as prism:`` starts it and waits until it says it
    listens; ``window()`` marks where a test's requests begin.
    """

    def __init__(self, executable: str, spec: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [executable, "mock", "--errors", "-h", "127.0.0.1"]
        self._command += ["-p", str(self.port), str(spec)]
        self.log_path = workdir / "prism.log"
        self.started_in: float | None = None  # seconds from launch to listening
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrismMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT) -> PrismMock:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        while _LISTENING not in self._text():
            if self._process.poll() is not None:
                raise RuntimeError(f"prism ended ({self._process.returncode}):\n{self._tail()}")
            if time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"prism did not listen within {timeout:.0f} s:\n{self._tail()}")
            time.sleep(0.05)
        self.started_in = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            stop_group(self._process)

    def log_lines(self) -> list[str]:
        """Prism's output so far, once it has been quiet for a moment: it logs a request's
        violations as it answers, so a line may land just after the client has its answer."""
        size, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 0.15:
            now = self.log_path.stat().st_size
            if now != size:
                size, quiet_since = now, time.monotonic()
            time.sleep(0.03)
        return [_STAMP.sub("", line) for line in self._text().splitlines()]

    def window(self) -> Window:
        return Window(self, len(self.log_lines()))

    def _text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _tail(self) -> str:
        return self._text()[-3000:]


@contextmanager
def prism_mock(executable: str, workdir: Path) -> Iterator[PrismMock]:
    """Prism serving the derived spec (written to ``workdir``) until the block ends."""
    with PrismMock(executable, write_served_spec(workdir), workdir) as prism:
        yield prism
