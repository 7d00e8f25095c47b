"""Every answer carries the security headers; no CORS grants to other origins."""

from __future__ import annotations

import re

import httpx

from agent.app import build_agent
from tests.support.defaults import AUTH, DASHBOARD


def test_headers_on_every_route_and_no_cors(make_settings, serve_agent):
    url = serve_agent(build_agent(make_settings()))
    for path, auth in (("/health", None), ("/", AUTH), ("/live", DASHBOARD), ("/nope", AUTH)):
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


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        if part.strip():
            name, *values = part.split()
            directives[name] = values
    return directives


def test_the_live_page_runs_only_its_own_nonced_scripts_and_styles(make_settings, serve_agent):
    url = serve_agent(build_agent(make_settings()))
    first, second = (httpx.get(url + "/live", auth=DASHBOARD) for _ in range(2))
    policies = [csp_directives(r.headers["content-security-policy"]) for r in (first, second)]
    csp = policies[0]
    nonce = csp["script-src"][0]
    assert re.fullmatch(r"'nonce-[A-Za-z0-9_-]{16,}'", nonce)
    assert policies[1]["script-src"] != [nonce], "a nonce is never reused"
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == [nonce] and csp["style-src"] == [nonce]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    allowed = " ".join(" ".join(values) for values in csp.values())
    for loophole in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"):
        assert loophole not in allowed.split()
    # Every script and style of the page carries this response's nonce.
    page = first.text
    tags = re.findall(r"<(script|style)\b([^>]*)>", page)
    assert tags, "the page has inline script and style"
    bare = nonce.strip("'").removeprefix("nonce-")
    assert all(f'nonce="{bare}"' in attributes for _, attributes in tags), tags
    assert first.headers["referrer-policy"] == "no-referrer"
    assert first.headers["cache-control"] == "no-store"
