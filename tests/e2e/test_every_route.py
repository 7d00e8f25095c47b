"""Every route the app serves is guarded or gone (issue 19, item 5).

The SDK registers routes of its own beside the ones this product uses. Before, a
malformed body to ``/check_for_input`` (``{"conversation_id": 5}``) got a 500 with the
exception's text in the body, and ``[]`` to ``/debug_events`` a 500. ``ROUTES`` names
what each route served must do; ``test_no_route_is_served_that_this_file_does_not_cover``
fails on a route that appears (an SDK upgrade, a new router) until a line here says how
it is tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest

from agent.app import build_agent
from tests.support.defaults import AUTH

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WEBHOOK = "webhook"  # SignalWire POSTs here: a malformed body is a 4xx
OPEN = "open"  # no credentials, the body is not read
DASHBOARD = "dashboard"  # GET only, credentials
GONE = "gone"  # the SDK serves it, this product does not use it: 404
CATCH_ALL = "catch-all"  # dispatches to the above by path, 404 otherwise

# (path without trailing slash, method) -> what it must do
ROUTES: dict[tuple[str, str], str] = {
    ("/", "GET"): "swml",
    ("/", "POST"): WEBHOOK,
    ("/swaig", "POST"): WEBHOOK,
    ("/post_prompt", "POST"): WEBHOOK,
    ("/swaig", "GET"): GONE,
    ("/post_prompt", "GET"): GONE,
    ("/debug", "GET"): GONE,
    ("/debug", "POST"): GONE,
    ("/check_for_input", "GET"): GONE,
    ("/check_for_input", "POST"): GONE,
    ("/debug_events", "GET"): GONE,
    ("/debug_events", "POST"): GONE,
    ("/health", "GET"): OPEN,
    ("/health", "POST"): OPEN,
    ("/ready", "GET"): OPEN,
    ("/events", "GET"): DASHBOARD,
    ("/live", "GET"): DASHBOARD,
    ("/outcomes", "GET"): DASHBOARD,
    ("/outcomes.csv", "GET"): DASHBOARD,
    ("/metrics", "GET"): DASHBOARD,
    ("/{full_path:path}", "GET"): CATCH_ALL,
    ("/{full_path:path}", "POST"): CATCH_ALL,
}

MALFORMED: list[Any] = [
    [],
    {"conversation_id": 5},
    "a string",
    5,
    {"call": 5},
    {"function": 5, "call_id": []},
    {"argument": "x", "meta_data": []},
    {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
]
RAW_MALFORMED = [b"{", b"\xff\xfe", b'{"a": NaN', b"null"]
# What an exception's text in a body looks like.
LEAKS = ("Traceback", "unexpected error", "object has no attribute", "Error(", "not subscriptable")


def served_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, method) of every route, through the routers the SDK and ``mount`` include."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router
            inner = prefix + (route.include_context.prefix or "")
            yield from served_routes(route.original_router.routes, inner)
            continue
        path = prefix + route.path
        path = path.rstrip("/") or "/"
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                yield path, method


def test_no_route_is_served_that_this_file_does_not_cover(make_settings):
    served = set(served_routes(build_agent(make_settings()).get_app().routes))
    uncovered = served - set(ROUTES)
    assert not uncovered, f"routes no test covers (add them to ROUTES): {sorted(uncovered)}"
    assert set(ROUTES) - served == set(), "ROUTES names a route the app no longer serves"


@pytest.fixture
def agent_url(make_settings, serve_agent) -> str:
    return serve_agent(make_settings())


def paths_for(kind: str) -> list[tuple[str, str]]:
    return [key for key, value in ROUTES.items() if value == kind]


def assert_no_leak(response: httpx.Response) -> None:
    assert not any(leak in response.text for leak in LEAKS), response.text[:300]


@pytest.mark.parametrize(("path", "method"), paths_for(GONE))
async def test_routes_the_product_does_not_use_are_404(agent_url, path, method):
    async with httpx.AsyncClient(timeout=15, auth=AUTH) as http:
        for variant in (path, path + "/", "/" + path):  # the catch-all dispatches these too
            for body in (None, {"conversation_id": 5}, []):
                kwargs = {} if body is None else {"json": body}
                response = await http.request(method, agent_url + variant, **kwargs)
                assert response.status_code == 404, (variant, body, response.text)
                assert_no_leak(response)


@pytest.mark.parametrize("path", [p for p, m in ROUTES if m == "POST" and p != "/{full_path:path}"])
async def test_every_post_route_answers_malformed_bodies_without_a_5xx(agent_url, path):
    async with httpx.AsyncClient(timeout=15, auth=AUTH) as http:
        for variant in (path, path.rstrip("/") + "/"):
            for body in MALFORMED:
                response = await http.post(agent_url + variant, json=body)
                assert response.status_code < 500, (variant, body, response.text)
                if ROUTES[(path, "POST")] == WEBHOOK and not isinstance(body, dict):
                    assert 400 <= response.status_code < 500, (variant, body)
                assert_no_leak(response)
            for raw in RAW_MALFORMED:
                response = await http.post(
                    agent_url + variant,
                    content=raw,
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code < 500, (variant, raw, response.text)
                assert_no_leak(response)


@pytest.mark.parametrize("path", [p for p, m in ROUTES if m == "GET" and p != "/{full_path:path}"])
async def test_every_get_route_answers_without_a_5xx_and_needs_credentials_unless_open(
    agent_url, path
):
    async with httpx.AsyncClient(timeout=15) as http:
        anonymous = await http.get(agent_url + path, params={"conversation_id": "5", "x": "["})
        expected_open = ROUTES[(path, "GET")] == OPEN
        assert (anonymous.status_code == 401) is not expected_open, (path, anonymous.status_code)
        if ROUTES[(path, "GET")] == DASHBOARD:
            return  # streams and pages: their own tests (tests/agent/test_live.py)
        response = await http.get(agent_url + path, auth=AUTH, params={"conversation_id": "5"})
        assert response.status_code < 500, (path, response.text)
        assert_no_leak(response)
