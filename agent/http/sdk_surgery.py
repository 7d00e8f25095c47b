"""Every place we reach into the SignalWire SDK's internals, in one file.

Each piece works around something the SDK (signalwire-sdk 3.7.x) does not let us
configure through its public API. After an SDK upgrade, check each one here
against the new source (``signalwire/core/agent_base.py`` and
``signalwire/core/mixins/web_mixin.py``):

- ``SDK_CONFIG_FILE``: an empty config file, so the SDK does not search the
  working directory for a ``config.json`` of its own.
- ``GuardedAgentBase``: overrides the private ``_handle_swaig_request``,
  ``_handle_root_request`` and ``_handle_post_prompt_request`` to answer malformed
  bodies with a 4xx (the SDK answers them with a 500 the platform retries), and a GET
  to ``/swaig`` or ``/post_prompt`` with a 404; ``_handle_check_for_input_request``,
  ``_handle_debug_events_request`` and ``_handle_debug_request`` with a 404 (routes
  the product does not use; tests/e2e/test_every_route.py lists every route served);
  ``_tool_token_rejection`` to accept a tool token only for the ``call_id`` it
  was minted for (3.7.4+ also accepts the body's ``conversation_id``);
  ``_dispatch_unmatched`` so an unknown path is a 404, not the SDK's
  ``200 {"error": "Path not found"}``; ``_check_basic_auth`` to read Ingress's
  verdict instead of comparing credentials again (exposed as ``check_auth``);
  ``_read_body_with_limit`` to leave the body limit to Ingress.
- ``_get_base_url``: the SDK writes the basic-auth pair into the webhook URLs as it
  is (``http://mfa:p@ss/w:rd#...@host``), which breaks the URL for any password with
  ``@ / : # ?``; ours percent-encodes it (RFC 3986 userinfo), and Ingress accepts the
  pair in either form (``agent.http.ingress.credentials_match``).
- ``replace_ready_route``: removes the SDK's always-green ``/ready`` route.
- ``replace_sdk_middleware``: swaps the SDK's ``BaseHTTPMiddleware`` and CORS
  middleware for ``SecurityHeaders``.
- ``wrap_lifespan``: wraps the app's lifespan context with ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from signalwire import AgentBase
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.cors import CORSMiddleware

from agent.http.ingress import PLATFORM, authenticated_as
from agent.http.request_guard import body_problem
from agent.http.security_headers import SecurityHeaders

# An empty SDK config file: passing it stops the SDK from searching the working
# directory (config.json, agent_config.json, ...) for settings of its own.
SDK_CONFIG_FILE = Path(__file__).resolve().parents[1] / "sdk_config.json"  # agent/sdk_config.json


# What the SDK's catch-all answers, with a 200, for a path it does not serve.
_SDK_NOT_FOUND_BODIES = frozenset({b'{"error":"Path not found"}', b'{"error":"Invalid route"}'})


class GuardedAgentBase(AgentBase):
    """``AgentBase`` whose webhook handlers refuse malformed bodies before the SDK sees them."""

    def check_auth(self, request: Request) -> bool:
        """The agent's basic-auth check, for routes of our own."""
        return self._check_basic_auth(request)

    def _check_basic_auth(self, request: Request) -> bool:
        """Ingress's verdict, not a second comparison of the credentials.

        ``agent.http.ingress.Ingress`` is the one place credentials are checked; it records
        who the request proved to be. The SDK's handlers still call this method: they
        now read that verdict. Without Ingress in front, nothing is authenticated."""
        return authenticated_as(request.scope) == PLATFORM

    async def _read_body_with_limit(self, request: Request) -> bytes:
        """The SDK's own size check, left to the one owner of that rule: Ingress counts
        every body as it streams and answers 413 past ``ingress.MAX_BODY``."""
        return await request.body()

    def _get_base_url(self, include_auth: bool = True) -> str:
        """The SDK's base URL, with the credentials percent-encoded as RFC 3986 userinfo."""
        base: str = super()._get_base_url(include_auth=False)
        if not include_auth:
            return base
        user, password = self._basic_auth
        return with_userinfo(base, user, password)

    async def _handle_swaig_request(
        self, request: Request, response: Response
    ) -> Response | dict[str, Any]:
        """Malformed bodies get a 4xx here instead of the SDK's 500 (agent/http/request_guard.py).
        A GET (the SDK renders the SWML there) is nothing SignalWire sends: gone."""
        if request.method != "POST":
            return _gone()
        rejected = await self._reject_malformed(request, swaig=True)
        return rejected or await super()._handle_swaig_request(request, response)

    # Routes the SDK serves and this product never uses: a 404 like any unknown path,
    # whether reached by their own route or through the catch-all. Before, a malformed
    # body got a 500 there, with the exception's text in the body.
    async def _handle_check_for_input_request(self, request: Request) -> Response:
        return _gone()

    async def _handle_debug_events_request(self, request: Request) -> Response:
        return _gone()

    async def _handle_debug_request(self, request: Request) -> Response:
        return _gone()

    async def _handle_root_request(self, request: Request) -> Response:
        rejected = await self._reject_malformed(request, swaig=False)
        return rejected or await super()._handle_root_request(request)

    async def _handle_post_prompt_request(self, request: Request) -> Any:
        if request.method != "POST":
            return _gone()
        rejected = await self._reject_malformed(request, swaig=False)
        return rejected or await super()._handle_post_prompt_request(request)

    def _tool_token_rejection(
        self,
        function_name: str,
        token: str | None,
        call_id: str | None,
        conversation_id: str | None = None,
    ) -> dict[str, Any] | None:
        """A tool token counts only for the call it was minted for.

        SDK 3.7.4+ also accepts a token minted for the body's ``conversation_id``
        (for chat sessions, whose requests carry another call id). For a voice
        agent that lets one conversation's token serve any number of fresh
        ``call_id``s, and every per-call limit is keyed by ``call_id``.
        """
        del conversation_id
        rejection: dict[str, Any] | None = super()._tool_token_rejection(
            function_name, token, call_id
        )
        return rejection

    async def _dispatch_unmatched(self, request: Request, full_path: str) -> Response:
        """What the SDK answers ``200 {"error": ...}`` (an unknown path) is a 404 here."""
        response: Response = await super()._dispatch_unmatched(request, full_path)
        if response.status_code == 200 and bytes(response.body) in _SDK_NOT_FOUND_BODIES:
            return _gone()
        return response

    async def _reject_malformed(self, request: Request, *, swaig: bool) -> Response | None:
        if request.method != "POST" or not self._check_basic_auth(request):
            return None  # the SDK answers GETs and unauthenticated requests itself
        problem = await body_problem(request, swaig=swaig)
        if problem is None:
            return None
        return JSONResponse({"error": problem}, status_code=400)


def _gone() -> Response:
    return JSONResponse({"error": "not found"}, status_code=404)


def with_userinfo(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` percent-encoded (every character outside RFC 3986's
    unreserved set), so ``@ / : # ? %`` in a password cannot end the userinfo early."""
    parts = urlsplit(url)
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


# ``AgentBase.serve`` as the SDK defines it, taken when this module is first imported.
_SDK_SERVE = AgentBase.serve


def serve_is_intercepted() -> bool:
    """Whether a harness (``swaig-test``) replaced ``AgentBase.serve``: nothing will listen."""
    return AgentBase.serve is not _SDK_SERVE


def replace_ready_route(agent: AgentBase, checks: Callable[[], Awaitable[dict[str, str]]]) -> None:
    """Replace the SDK's always-green ``/ready`` with one that names each dependency:
    ``{"ready": false, "checks": {"redis": "down"}}`` and a 503 when any is not ``ok``."""
    app = agent.get_app()
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) != "/ready"
    ]
    router = APIRouter()

    @router.get("/ready")
    async def ready() -> JSONResponse:
        states = await checks()
        ok = all(state == "ok" for state in states.values())
        body = {"ready": ok, "status": "ready" if ok else "not_ready", "checks": states}
        return JSONResponse(body, status_code=200 if ok else 503)

    agent.mount(router)


def replace_sdk_middleware(app: FastAPI) -> None:
    """Swap the SDK's middleware for ``SecurityHeaders``; call before the first request."""
    app.user_middleware[:] = [
        m for m in app.user_middleware if m.cls not in (BaseHTTPMiddleware, CORSMiddleware)
    ]
    app.add_middleware(SecurityHeaders)


def wrap_lifespan(app: FastAPI, around: Callable[[], AbstractAsyncContextManager[None]]) -> None:
    """Run ``around()`` inside the app's own lifespan: entered at start-up, exited at
    shutdown."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as app_state, around():
            yield app_state

    app.router.lifespan_context = lifespan
