"""Every answer carries the security headers; no CORS grants to other origins."""

from __future__ import annotations

import httpx

from agent.app import build_agent
from tests.support.defaults import AUTH


def test_headers_on_every_route_and_no_cors(make_settings, serve_agent):
    url = serve_agent(build_agent(make_settings()))
    for path, auth in (("/health", None), ("/", AUTH), ("/live", AUTH), ("/nope", AUTH)):
        response = httpx.get(url + path, auth=auth, headers={"Origin": "https://evil.example"})
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] in (
            "strict-origin-when-cross-origin",
            "no-referrer",
        )
        assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(
        url + "/swaig/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_the_live_page_keeps_its_own_policy(make_settings, serve_agent):
    url = serve_agent(build_agent(make_settings()))
    response = httpx.get(url + "/live", auth=AUTH)
    assert "nonce-" in response.headers["content-security-policy"]
