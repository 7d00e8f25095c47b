"""A fake of SignalWire's MFA REST API, served for real on loopback.

It follows the documented behaviour (see ../shared/signalwire-notes.md):
``POST /api/relay/rest/mfa/sms`` (and ``/mfa/call``, the code by a voice call) with
basic auth answers ``{id, success, to, channel}``; ``POST /api/relay/rest/mfa/{id}/verify``
answers 200 true/false and 404 once the request is unknown, verified, expired or out of
attempts; 401 for bad credentials; 422 for invalid fields. The "phone" is ``texts``: what a
caller's handset would receive (a call's code too, with ``channel``), so a test can read
the code like a person.

What is an invalid field follows SignalWire's REST OpenAPI: each body is checked against
the spec's own request schema (``testkit/mfa_request_schemas.py``: a missing required
field, a wrong type or an unknown field is a 422 with SignalWire's documented 422 body),
as Stoplight Prism checks it (``tests/e2e/test_fake_space_matches_prism.py`` sends both
the same requests). Then the limits the spec states only in its descriptions (``to`` in
E.164, ``token_length`` 4..20, ``max_attempts`` 1..20, ``valid_for`` up to 604800), which
no schema keyword carries: there the fake is stricter than Prism, as the service says it is.

Knobs for fault tests: ``latency`` (seconds before answering) and ``fault``
(``"500"``, ``"garbage"``, ``"hang"``, ``"422"``) applied to every request while set;
``fail_after_sending``: the next that many sends text their code and then answer 500 (the
service acted, its answer was lost), so the code is on the phone and its id nowhere.
``new_code(length)`` draws each code: random digits unless a caller passes another source
(the benchmark fixes every code so that its load generator need not ask for it).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from testkit.mfa_request_schemas import body_problems

PROJECT_ID = "11111111-2222-3333-4444-555555555555"
API_TOKEN = "PTfake0123456789abcdef"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def random_digits(length: int) -> str:
    """A code as SignalWire draws one: ``length`` random digits."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


@dataclass
class _Pending:
    to: str
    code: str
    expires_at: float
    attempts_left: int
    verified: bool = False


@dataclass
class FakeSignalWire:
    latency: float = 0.0
    fault: str | None = None
    fail_after_sending: int = 0
    clock_offset: float = 0.0
    new_code: Callable[[int], str] = random_digits
    # What ``GET /api/relay/rest/phone_numbers`` lists (the preflight checks the sender).
    owned_numbers: list[str] = field(default_factory=lambda: ["+15559870000"])
    # The token's scopes: without "numbers" the number list is refused (403), without
    # "management" the MFA API is (SignalWire's reference: the MFA API needs Management).
    scopes: set[str] = field(default_factory=lambda: {"management", "numbers"})
    # What the phone-number lookup's carrier part says per number (``carrier.linetype``);
    # numbers not listed are "wireless". ``lookup_fault`` ("500", "hang") breaks lookups only.
    line_types: dict[str, str] = field(default_factory=dict)
    lookup_fault: str | None = None
    lookups: list[str] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    # Called with each text as it is "delivered" (``python -m testkit.fake_space`` prints it).
    on_text: Callable[[dict[str, Any]], None] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def last_code_for(self, to: str) -> str:
        for text in reversed(self.texts):
            if text["to"] == to:
                return str(text["code"])
        raise LookupError(f"no text to {to}")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/relay/rest/mfa/sms", self._send_sms, methods=["POST"]),
                Route("/api/relay/rest/mfa/call", self._send_call, methods=["POST"]),
                Route("/api/relay/rest/mfa/{request_id}/verify", self._verify, methods=["POST"]),
                Route("/api/relay/rest/phone_numbers", self._phone_numbers, methods=["GET"]),
                Route("/api/relay/rest/lookup/phone_number/{e164}", self._lookup, methods=["GET"]),
            ]
        )

    async def _common(self, request: Request, operation: str) -> Response | dict[str, Any]:
        """Faults, credentials and scope, then the body: JSON, recorded, and conforming to
        the spec's schema for ``operation`` (a key of ``mfa_request_schemas.OPERATIONS``)."""
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fault == "hang":
            await asyncio.sleep(3600)
        if self.fault == "500":
            return JSONResponse({"error": "Internal Server Error"}, status_code=500)
        if self.fault == "garbage":
            return PlainTextResponse("<html>bad gateway</html>", status_code=200)
        if self.fault == "422":
            return _invalid("to is not a mobile number")
        if not _authorised(request.headers.get("authorization", "")):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        if "management" not in self.scopes:
            return JSONResponse({"error": "Forbidden"}, status_code=403)
        try:
            body = await request.json()
        except ValueError:
            return _invalid("body must be JSON")
        if not isinstance(body, dict):
            return _invalid("body must be an object")
        with self._lock:
            self.requests.append({"path": request.url.path, "body": body})
        problems = body_problems(operation, body)
        if problems:
            return _invalid(*problems)
        return body

    async def _send_sms(self, request: Request) -> Response:
        return await self._send(request, "sms")

    async def _send_call(self, request: Request) -> Response:
        return await self._send(request, "call")

    async def _send(self, request: Request, channel: str) -> Response:
        body = await self._common(request, channel)
        if isinstance(body, Response):
            return body
        # The schema checked the types; these are the limits its descriptions state.
        to, length = body["to"], body.get("token_length", 6)
        attempts, valid_for = body.get("max_attempts", 3), body.get("valid_for", 3600)
        if not _E164.match(to):
            return _invalid("to must be an E.164 number")
        if not 4 <= length <= 20:
            return _invalid("token_length must be 4..20")
        if not 1 <= attempts <= 20:
            return _invalid("max_attempts must be 1..20")
        if not 1 <= valid_for <= 604800:
            return _invalid("valid_for must be at most 604800")
        code = self.new_code(length)
        request_id = str(uuid.uuid4())
        with self._lock:
            self._pending[request_id] = _Pending(to, code, self.now() + valid_for, attempts)
            text = {
                "to": to,
                "from": body.get("from"),
                "code": code,
                "body": f"{body.get('message', 'Your Personal Authorization Code is:')} {code}",
                "channel": channel,
                "at": self.now(),
            }
            self.texts.append(text)
        if self.on_text is not None:
            self.on_text(text)
        if self.fail_after_sending > 0:  # texted, then the space answers 500: no id given
            with self._lock:
                self.fail_after_sending -= 1
            return JSONResponse({"error": "Internal Server Error"}, status_code=500)
        return JSONResponse({"id": request_id, "success": True, "to": to, "channel": channel})

    async def _verify(self, request: Request) -> Response:
        body = await self._common(request, "verify")
        if isinstance(body, Response):
            return body
        token = body["token"]
        with self._lock:
            pending = self._pending.get(request.path_params["request_id"])
            if (
                pending is None
                or pending.verified
                or pending.attempts_left <= 0
                or self.now() >= pending.expires_at
            ):
                return JSONResponse({"error": "Not Found"}, status_code=404)
            pending.attempts_left -= 1
            if secrets.compare_digest(token.encode(), pending.code.encode()):
                pending.verified = True
                return JSONResponse({"success": True})
        return JSONResponse({"success": False})

    async def _phone_numbers(self, request: Request) -> Response:
        """List phone numbers (SignalWire's REST reference), filtered by substring."""
        if not _authorised(request.headers.get("authorization", "")):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        if "numbers" not in self.scopes:
            return JSONResponse({"error": "Forbidden"}, status_code=403)
        wanted = request.query_params.get("filter_number", "")
        data = [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, number)), "number": number}
            for number in self.owned_numbers
            if wanted in number
        ]
        with self._lock:
            self.requests.append({"path": request.url.path, "body": None})
        return JSONResponse({"links": {}, "data": data})

    async def _lookup(self, request: Request) -> Response:
        """The phone-number lookup (``PhoneNumberLookupResponse``), ``carrier`` only with
        ``include=carrier`` as the reference says. No scope is needed; credentials are."""
        if self.lookup_fault == "hang":
            await asyncio.sleep(3600)
        if self.lookup_fault == "500":
            return JSONResponse({"error": "Internal Server Error"}, status_code=500)
        if not _authorised(request.headers.get("authorization", "")):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        number = request.path_params["e164"]
        if not _E164.match(number):
            return JSONResponse({"error": "Not Found"}, status_code=404)
        with self._lock:
            self.lookups.append(number)
        answer: dict[str, Any] = {"e164": number, "valid_number": True, "possible_number": True}
        if "carrier" in request.query_params.get("include", "").split(","):
            kind = self.line_types.get(number, "wireless")
            answer["carrier"] = {"lec": "Fake Telco", "linetype": kind}
        return JSONResponse(answer)


def _authorised(header: str) -> bool:
    expected = base64.b64encode(f"{PROJECT_ID}:{API_TOKEN}".encode()).decode()
    return secrets.compare_digest(header, f"Basic {expected}")


def _invalid(*details: str) -> JSONResponse:
    """SignalWire's documented 422 body, one error item for each problem."""
    return JSONResponse(
        {
            "errors": [
                {"detail": detail, "status": "422", "title": "Invalid Attribute", "code": "422"}
                for detail in details
            ]
        },
        status_code=422,
    )
