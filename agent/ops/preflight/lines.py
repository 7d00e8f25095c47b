"""One line of ``check``'s report, and the lines every check words the same way."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

OK, WARN, FAIL = "ok", "warn", "FAIL"
TIMEOUT = httpx.Timeout(5.0, connect=3.0)


@dataclass(frozen=True)
class CheckLine:
    status: str
    name: str
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status:<5} {self.name}: {self.detail}"
        return f"{line}. Fix: {self.fix}" if self.fix else line


def unreachable(name: str, host: str, exc: Exception, fix: str) -> CheckLine:
    return CheckLine(FAIL, name, f"cannot reach {host} ({type(exc).__name__})", fix)


def bad_status(name: str, host: str, status: int) -> CheckLine:
    return CheckLine(FAIL, name, f"{host} answered HTTP {status}", "look at that service's own log")
