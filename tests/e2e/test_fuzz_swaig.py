"""Fuzz the SWAIG endpoint of one served agent with generated bodies.

Whatever arrives, the agent must answer below 500, and nothing but the right code may
ever make it set ``mfa_verified`` to true. The fuzz never sends the right code, so
``mfa_verified: true`` must never appear. Afterwards the agent is still healthy and a
normal call still verifies.

One agent (sandbox provider, limits opened wide so the fuzz is not throttled) serves the
whole module; requests go through one keep-alive ``httpx.Client``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.app import build_agent
from agent.config.settings import load_settings
from agent.http.ingress import MAX_BODY
from agent.ops.platform import PlatformCall
from skills.mfa.delivery.providers.sandbox import SandboxText
from skills.mfa.flow.tools import META_REQUEST_ID
from skills.mfa.speech.spoken_code import normalize_spoken_code
from testkit.agent_env import agent_env, write_config
from testkit.servers import ServerThread
from tests.support.calls import reply_text, wrong_code
from tests.support.defaults import AUTH

pytestmark = [
    pytest.mark.e2e,
    # A failing example with a 100 kB string makes a large repr; the failure is what counts.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]

FUZZED: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


# -- the served agent and a synchronous platform -----------------------------------------


@dataclass
class SyncCall:
    """One call as the platform sees it, driven synchronously."""

    platform: PlatformCall  # used for its pure helpers only (bodies, actions)
    hooks: dict[str, str] = field(default_factory=dict)  # function -> path and query

    @property
    def meta(self) -> dict[str, Any]:
        return self.platform.meta_data.setdefault("mfa_skill", {})

    def body(self, function: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.platform.request_body(function, arguments, "mfa_skill")


class Target:
    def __init__(self, url: str, client: httpx.Client, outbox: list[SandboxText]) -> None:
        self.url = url
        self.client = client
        self.outbox = outbox
        self.calls: list[SyncCall] = []
        self.session: SyncCall | None = None

    def start_call(self) -> SyncCall:
        caller = f"+1555{len(self.calls) + 1:07d}"
        platform = PlatformCall(http=None, base_url=self.url, auth=AUTH, caller=caller)  # type: ignore[arg-type]
        payload = {
            "call": {"call_id": platform.call_id, "from": caller, "to": "+15559870000"},
            "vars": {},
        }
        response = self.client.post("/", json=payload, auth=AUTH)
        assert response.status_code == 200
        main = response.json()["sections"]["main"]
        ai = next(v["ai"] for v in main if isinstance(v, dict) and "ai" in v)
        platform.swml = response.json()
        platform.global_data = dict(ai.get("global_data") or {})
        platform.functions = {f["function"]: f for f in ai["SWAIG"]["functions"]}
        call = SyncCall(platform)
        for name, spec in platform.functions.items():
            parts = urlsplit(spec["web_hook_url"])
            call.hooks[name] = parts.path + (f"?{parts.query}" if parts.query else "")
        self.calls.append(call)
        return call

    def post(self, path: str, content: bytes, kind: str) -> httpx.Response:
        response = self.client.post(
            path, content=content, auth=AUTH, headers={"content-type": "application/json"}
        )
        FUZZED[kind] += 1
        STATUSES[response.status_code] += 1
        check(response)
        return response

    def post_json(self, path: str, body: Any, kind: str) -> httpx.Response:
        return self.post(path, json.dumps(body).encode(), kind)

    def pending(self) -> tuple[SyncCall, str | None]:
        """A call with a code pending, and that code (which the fuzz never sends)."""
        call = self.session
        if call is None or not call.meta.get(META_REQUEST_ID):
            call = self.session = self.start_call()
            response = self.client.post(
                call.hooks["send_mfa"], json=call.body("send_mfa", {}), auth=AUTH
            )
            assert response.status_code == 200, response.text
            call.platform.apply_actions("mfa_skill", response.json().get("action", []))
            assert call.meta.get(META_REQUEST_ID), response.text
        request_id = call.meta[META_REQUEST_ID]
        code = next((t.code for t in self.outbox if t.request_id == request_id), None)
        return call, code

    def apply(self, call: SyncCall, response: httpx.Response) -> None:
        if response.status_code == 200:
            data = response.json()
            if isinstance(data, dict) and isinstance(data.get("action"), list):
                call.platform.apply_actions("mfa_skill", data["action"])


def verified_anywhere(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("mfa_verified") is True:
            return True
        return any(verified_anywhere(v) for v in value.values())
    if isinstance(value, list):
        return any(verified_anywhere(v) for v in value)
    return False


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    # Security rule: only the right code verifies, and the fuzz never sends it. A body
    # that is not JSON cannot be checked for that, so every answer must be JSON.
    assert "mfa_verified" not in response.text or 'mfa_verified": false' in response.text
    try:
        data = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {response.status_code} {response.text[:300]!r}") from None
    assert not verified_anywhere(data), response.text[:500]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = write_config(
        tmp,
        {
            "limits": {
                "sends_per_call": 20,
                "resend_cooldown_seconds": 0,
                "per_recipient_per_hour": 1000,
                "per_recipient_per_day": 10000,
                "agent_sends_per_minute": 100000,
            },
            # The fuzz texts a few numbers of one range over and over, never verifying.
            "pumping": {
                "per_prefix_per_hour": 100000,
                "per_country_per_hour": 100000,
                "conversion_floor": 0,
            },
        },
    )
    settings_ = load_settings(agent_env(config, auth=AUTH, swaig_secret="fuzz-swaig-secret"))
    outbox: list[SandboxText] = []
    agent = build_agent(settings_, sandbox_deliver=outbox.append)
    with (
        ServerThread(agent.get_app()) as server,
        httpx.Client(base_url=server.url, timeout=15) as client,
    ):
        yield Target(server.url, client, outbox)


# -- strategies ----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.text(st.characters(codec="utf-8"), max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
huge_strings = st.builds(
    lambda seed, size: (seed * (size // len(seed) + 1))[:size],
    st.text(min_size=1, max_size=8),
    st.integers(min_value=90_000, max_value=110_000),
)
odd_strings = (
    huge_strings
    | st.text(st.characters(codec="utf-8"), max_size=200)
    | st.text(st.characters(categories=["Cs", "Lu", "Nd", "Zs", "So"]), max_size=50)
    | st.sampled_from(["", " ", "\x00", "null", "{}", "../../etc/passwd", "'; DROP TABLE x; --"])
)
FIELDS = [
    "app_name",
    "function",
    "description",
    "argument",
    "argument_desc",
    "call_id",
    "ai_session_id",
    "caller_id_num",
    "caller_id_name",
    "meta_data_token",
    "meta_data",
    "global_data",
    "project_id",
    "space_id",
    "channel_active",
    "channel_offhook",
    "channel_ready",
    "conversation_type",
    "content_type",
    "content_disposition",
    "version",
    "argument.parsed",
    "argument.raw",
    "argument.parsed.0",
    "argument.parsed.0.token",
    "argument.parsed.0.phone_number",
    "meta_data.mfa_request_id",
    "meta_data.mfa_attempts_left",
    "global_data.mfa_verified",
]
DELETE = object()
RATE_LIMITED = re.compile(r"no (new )?code was sent|can be sent in about")
WRONG_CODE = re.compile(r"^That code is not correct\.? ")


def mutate(body: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or delete) the field at a dotted path, creating nothing that is not there."""
    *path, last = dotted.split(".")
    node: Any = body
    for part in path:
        if isinstance(node, list):
            if not node or not part.isdigit():
                return
            node = node[int(part) % len(node)]
        else:
            node = node.get(part)
        if not isinstance(node, dict | list):
            return
    if isinstance(node, list):
        if node and last.isdigit():
            if value is DELETE:
                node.pop(int(last) % len(node))
            else:
                node[int(last) % len(node)] = value
    elif value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value


def is_wrong_code(call_code: str | None, token: Any) -> bool:
    return call_code is None or normalize_spoken_code(token, 6) != call_code


SPOKEN_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPOKEN_WORDS += ["oh", "double", "triple", "forty", "um", "my", "code", "is"]
tokens_said = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\d{6}", fullmatch=True),
    st.from_regex(r"[0-9 \-.#*]{6,20}", fullmatch=True),
    st.lists(
        st.sampled_from(SPOKEN_WORDS),
        min_size=1,
        max_size=8,
    ).map(" ".join),
    st.integers(min_value=0, max_value=10**7),
    json_values,
    odd_strings,
)


# -- the fuzz ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=250)
@given(payload=json_values, where=st.sampled_from(["send_mfa", "verify_mfa", "bare"]))
def test_random_json(target, payload, where):
    call, _ = target.pending()
    path = "/swaig/" if where == "bare" else call.hooks[where]
    target.post_json(path, payload, "random_json")


@settings(FUZZ, max_examples=100)
@given(raw=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_random_bytes(target, raw):
    call, _ = target.pending()
    target.post(call.hooks["verify_mfa"], raw, "random_bytes")


@settings(FUZZ, max_examples=300)
@given(
    function=st.sampled_from(["send_mfa", "verify_mfa"]),
    changes=st.lists(
        st.tuples(st.sampled_from(FIELDS), json_values | st.just(DELETE)), min_size=1, max_size=4
    ),
)
def test_wrong_types_and_missing_fields(target, function, changes):
    call, code = target.pending()
    body = call.body(function, {"token": wrong_code(code)})
    body["argument"]["raw"] = json.dumps({"token": "not a code"})
    for dotted, value in changes:
        mutate(body, dotted, value)
    parsed = body.get("argument", {})
    if isinstance(parsed, dict) and isinstance(parsed.get("parsed"), list) and parsed["parsed"]:
        first = parsed["parsed"][0]
        if isinstance(first, dict):
            assume(is_wrong_code(code, first.get("token")))
    response = target.post_json(call.hooks[function], body, "wrong_types")
    target.apply(call, response)


@settings(FUZZ, max_examples=150)
@given(
    function=st.sampled_from(["send_mfa", "verify_mfa"]),
    dotted=st.sampled_from(FIELDS),
    value=odd_strings,
)
def test_huge_and_unicode_strings(target, function, dotted, value):
    call, code = target.pending()
    # A well-formed wrong code: wherever the odd string leaves the request valid, it reaches
    # the provider, and a provider that let any code through would show it (check()).
    body = call.body(function, {"token": wrong_code(code)})
    body["argument"]["raw"] = json.dumps({"token": wrong_code(code)})
    mutate(body, dotted, value)
    if dotted in ("argument.parsed.0.token", "argument.raw"):
        assume(is_wrong_code(code, value))
    response = target.post_json(call.hooks[function], body, "huge_or_unicode")
    if len(json.dumps(body).encode()) > MAX_BODY:
        # 110,000 astral characters escape to over 1 MB of JSON: refused before it is read.
        assert response.status_code == 413, response.text[:300]
    elif dotted in ("meta_data", "global_data", "argument"):
        # The request guard answers a string where an object belongs; the SDK would not.
        assert response.status_code == 400, response.text[:300]
        assert response.json() == {"error": f"{dotted} must be an object"}
    target.apply(call, response)


@settings(FUZZ, max_examples=150)
@given(
    name=st.text(max_size=40)
    | st.sampled_from(
        ["SEND_MFA", "send_mfa ", " verify_mfa", "verify_mfa\x00", "verify", "startup_hook"]
    )
    | json_values.filter(lambda v: not isinstance(v, str)),
    hook=st.sampled_from(["send_mfa", "verify_mfa"]),
)
def test_wrong_function_names(target, name, hook):
    assume(name not in ("send_mfa", "verify_mfa"))
    call, code = target.pending()
    before = len(target.outbox)
    body = call.body("verify_mfa", {"token": wrong_code(code)})
    body["function"] = name
    response = target.post_json(call.hooks[hook], body, "wrong_function")
    if not isinstance(name, str):
        # The request guard's answer; without it the SDK answers 500.
        assert response.status_code == 400, response.text[:300]
        assert response.json() == {"error": "function must be a string"}
    data = response.json()
    assert not (isinstance(data, dict) and data.get("action")), "a wrong name changed something"
    assert len(target.outbox) == before  # no text went out
    # The same wrong code under the right name reaches the provider and must not verify:
    # a provider that let any code through fails here (check() looks for mfa_verified).
    control = target.post_json(
        call.hooks["verify_mfa"], call.body("verify_mfa", {"token": wrong_code(code)}), "control"
    )
    assert control.status_code == 200
    assert WRONG_CODE.search(reply_text(control.json())), control.text
    target.apply(call, control)


token_tampering = st.one_of(
    st.tuples(st.just("drop"), st.integers(min_value=0, max_value=500)),
    st.tuples(st.just("flip"), st.integers(min_value=0, max_value=500)),
    st.tuples(st.just("truncate"), st.integers(min_value=0, max_value=500)),
    st.tuples(st.just("append"), st.text(max_size=20)),
    st.tuples(st.just("replace"), st.text(max_size=80)),
    st.tuples(st.just("other_call"), st.integers(min_value=0, max_value=1000)),
    st.tuples(st.just("other_function"), st.none()),
    st.tuples(st.just("twice"), st.text(max_size=20)),
    st.tuples(st.just("twice_after"), st.text(max_size=20)),
    st.tuples(st.just("none"), st.none()),
)


def tampered_path(target: Target, call: SyncCall, function: str, how: str, arg: Any) -> str:
    path, _, query = call.hooks[function].partition("?")
    key, _, token = query.partition("=")
    if how == "drop" and token:
        i = arg % len(token)
        token = token[:i] + token[i + 1 :]
    elif how == "flip" and token:
        i = arg % len(token)
        token = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    elif how == "truncate":
        token = token[: arg % max(1, len(token))]
    elif how == "append":
        token = token + quote(arg, safe="")
    elif how == "replace":
        token = quote(arg, safe="")
    elif how == "other_call":
        others = [c for c in target.calls if c is not call]
        if not others:
            others = [target.start_call()]
        return others[arg % len(others)].hooks[function]
    elif how == "other_function":
        other = "verify_mfa" if function == "send_mfa" else "send_mfa"
        return call.hooks[other]
    elif how == "twice":
        return f"{path}?{key}={quote(arg, safe='')}&{query}"
    elif how == "twice_after":
        return f"{path}?{query}&{key}={quote(arg, safe='')}"
    elif how == "none":
        return path
    return f"{path}?{key}={token}"


def same_token(path: str, original: str) -> bool:
    def decoded(p: str) -> bytes | None:
        values = parse_qs(urlsplit(p).query).get("__token")
        if not values or len(values) != 1:
            return None
        try:
            return base64.urlsafe_b64decode(values[0].encode())
        except ValueError:
            return None

    mine = decoded(path)
    return mine is not None and mine == decoded(original)


@settings(FUZZ, max_examples=250)
@given(function=st.sampled_from(["send_mfa", "verify_mfa"]), tamper=token_tampering)
def test_tampered_tokens_are_refused(target, function, tamper):
    call, code = target.pending()
    path = tampered_path(target, call, function, *tamper)
    assume(path != call.hooks[function])
    # The SDK base64-decodes the token leniently: bytes after the padding are ignored, so
    # "token=...%3D!" is the same token. That is no forgery (the real token is needed).
    assume(not same_token(path, call.hooks[function]))
    before = len(target.outbox)
    twice = tamper[0] in ("twice", "twice_after")
    # The right code itself must not verify through a wrong token. ("twice" keeps the real
    # token in the query string next to a forged one, so it gets a wrong code instead.)
    said = wrong_code(code) if twice else code
    body = call.body(function, {"token": said} if function == "verify_mfa" else {})
    response = target.post_json(path, body, "tampered_token")
    data = response.json() if response.status_code == 200 else {}
    refused = "security token" in str(data.get("response", "")) or response.status_code >= 400
    if twice and not refused:
        # Served as the real token alone would be: a wrong code is wrong, a send is a send.
        assert response.status_code == 200
        if function == "verify_mfa":
            assert WRONG_CODE.search(reply_text(data)), data
            assert len(target.outbox) == before
        elif "A code was texted" in reply_text(data):
            assert len(target.outbox) == before + 1
        else:
            # The session's call has used its sends (or is in its cooldown): the real token
            # alone gets the same refusal, and nothing is texted.
            assert RATE_LIMITED.search(reply_text(data)), data
            assert len(target.outbox) == before
        target.apply(call, response)
    else:
        assert refused, data
        assert not data.get("action")
        assert len(target.outbox) == before  # no text went out


@settings(FUZZ, max_examples=300)
@given(said=tokens_said)
def test_real_tokens_with_random_codes(target, said):
    call, code = target.pending()
    assume(is_wrong_code(code, said))
    body = call.body("verify_mfa", {"token": said})
    body["argument"]["raw"] = json.dumps({"token": said}, default=str)
    raw = json.dumps(body).encode()
    response = target.post(call.hooks["verify_mfa"], raw, "random_code")
    # A body over 1 MB (100 kB of control characters, escaped twice) is refused whole.
    assert response.status_code == (200 if len(raw) <= 1024 * 1024 else 413)
    target.apply(call, response)


def test_fuzz_bodies_are_not_confused_with_calls(target):
    # A request id presented in meta_data without the agent's binding for this call is
    # refused before anything goes upstream (tests/e2e/test_trust_boundary.py goes further).
    call, code = target.pending()
    body = call.body("verify_mfa", {"token": code})
    body["meta_data"] = {META_REQUEST_ID: str(uuid.uuid4()), "mfa_attempts_left": 3}
    response = target.client.post(call.hooks["verify_mfa"], json=body, auth=AUTH)
    check(response)
    assert "No code has been sent" in reply_text(response.json())


# -- afterwards ----------------------------------------------------------------------------


# Each fuzz test and the kind of body it counts, with the least it must have sent.
FUZZ_KINDS = {
    "test_random_json": ("random_json", 200),
    "test_random_bytes": ("random_bytes", 80),
    "test_wrong_types_and_missing_fields": ("wrong_types", 150),
    "test_huge_and_unicode_strings": ("huge_or_unicode", 100),
    "test_wrong_function_names": ("wrong_function", 100),
    "test_tampered_tokens_are_refused": ("tampered_token", 150),
    "test_real_tokens_with_random_codes": ("random_code", 200),
}


def test_agent_is_healthy_and_still_verifies_after_the_fuzz(target, request):
    total = sum(FUZZED.values())
    print(f"\nSWAIG fuzz: {total} bodies {dict(FUZZED)}; statuses {dict(sorted(STATUSES.items()))}")
    # The fuzz tests that ran before this one (all of them in a full run, none when this
    # test runs alone) each sent their share.
    ran_before = {
        item.name for item in request.session.items[: request.session.items.index(request.node)]
    }
    for name, (kind, least) in FUZZ_KINDS.items():
        if name in ran_before:
            assert FUZZED[kind] >= least, (name, dict(FUZZED))

    client = target.client
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200

    call = target.start_call()
    sent = client.post(call.hooks["send_mfa"], json=call.body("send_mfa", {}), auth=AUTH)
    assert sent.status_code == 200
    assert "A code was texted" in reply_text(sent.json())
    call.platform.apply_actions("mfa_skill", sent.json()["action"])
    code = target.outbox[-1].code
    assert target.outbox[-1].to == call.platform.caller

    said = " ".join(code)
    verify = client.post(
        call.hooks["verify_mfa"], json=call.body("verify_mfa", {"token": said}), auth=AUTH
    )
    assert verify.status_code == 200
    assert "caller is verified" in reply_text(verify.json())
    assert verified_anywhere(verify.json())
