"""Every SWML document and SWAIG reply, in every configuration, against SignalWire's schema.

Calls are played over HTTP through ``PlatformCall`` in each configuration an operator can
ship (the default, English only, Spanish, a directory, a handoff to a number, to a ``sip:``
URI, a hang-up on failure), down every path of both tools (sent, refused, a short code,
a wrong one, out of tries, verified, a retried request). Each document and reply is checked
here explicitly against both vendored ``SWMLObject.json`` files (``tests/support/
swml_schema.py``); the suite-wide ``swml_conforms`` fixture checks the rest of the suite's.

The checker itself is tested too, with shapes written out by hand, so that a checker that
passes everything cannot hide a finding: the list form of ``unset_meta_data``, the SDK's own
``connect()`` transfer, an allow-listed action with a value of the wrong type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.app import build_agent
from agent.ops.platform import PlatformCall, watch
from tests.support.calls import wrong_code
from tests.support.defaults import AUTH, CALLER
from tests.support.swml_schema import ALLOWED, SCHEMA_FILES, reply_problems, swml_problems

ACCOUNT = "12345678"
ON_FILE = "+12025550199"

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "english-only": {"languages": [{"code": "en", "name": "English", "voice": "rime.spore"}]},
    "spanish": {
        "languages": [
            {"code": "en", "name": "English", "voice": "rime.spore"},
            {"code": "es", "name": "Spanish", "voice": "rime.luna"},
        ],
        "code": {"message": {"en": "Your code:", "es": "Su codigo:"}},
    },
    "handoff-number": {"handoff": {"on_verified": "+15550001111", "on_failed": "+15550002222"}},
    "handoff-sip": {
        "handoff": {"on_verified": "sip:desk@example.com", "on_failed": "sip:help@example.com"}
    },
    "failed-hangup": {"handoff": {"on_failed": "hangup"}},
    "directory": {"directory": {"neutral_answer_seconds": 0}},
}


def _config(name: str, tmp_path: Path) -> dict[str, Any]:
    config = dict(CONFIGURATIONS[name])
    if "directory" in config:
        path = tmp_path / "accounts.csv"
        path.write_text(f"account_number,phone_number\n{ACCOUNT},{ON_FILE}\n")
        config["directory"] = {**config["directory"], "path": str(path)}
    return config


@pytest.fixture
def seen() -> Any:
    """Every document and reply the calls of one test receive, as (kind, body)."""
    received: list[tuple[str, dict[str, Any]]] = []
    stop = watch(lambda kind, body: received.append((kind, body)))
    yield received
    stop()


async def _play_every_path(call: PlatformCall, fake: Any, *, directory: bool) -> None:
    send_args: dict[str, Any] = {"account_number": ACCOUNT} if directory else {}
    recipient = ON_FILE if directory else CALLER
    await call.invoke("verify_mfa", token="123456")  # nothing sent yet
    await call.invoke("send_mfa", **send_args)
    await call.invoke("verify_mfa", token="12")  # too short: no try used
    code = fake.last_code_for(recipient)
    for _ in range(3):  # out of tries
        await call.invoke("verify_mfa", token=wrong_code(code))
    await call.invoke("send_mfa", **send_args)
    code = fake.last_code_for(recipient)
    if call.ending is None:
        await call.invoke("verify_mfa", token=" ".join(code))
    if call.ending is None:
        # The platform's retry of the same request after a timeout: the same answer.
        spec = call.functions["verify_mfa"]
        token = spec.get("meta_data_token") or spec["web_hook_url"]
        body = call.request_body("verify_mfa", {"token": code}, token)
        await call.post_to_webhook(spec["web_hook_url"], body)
    if directory:
        await call.invoke("send_mfa", account_number="99999999")  # not on file


@pytest.mark.anyio
@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CONFIGURATIONS))
async def test_every_document_and_reply_passes_signalwires_schema(
    name, fake_signalwire, make_settings, serve_agent, tmp_path, seen
):
    fake, sw_url = fake_signalwire
    agent = build_agent(make_settings(signalwire_url=sw_url, config=_config(name, tmp_path)))
    url = serve_agent(agent)
    async with httpx.AsyncClient(timeout=15) as http:
        call = PlatformCall(http=http, base_url=url, auth=AUTH)
        await call.start()
        await _play_every_path(call, fake, directory=name == "directory")
        # A second call whose code runs out with no send left (the failed handoff).
        failing = PlatformCall(http=http, base_url=url, auth=AUTH, caller="+15551230002")
        await failing.start()
        for _ in range(2):
            if failing.ending is None:
                await failing.invoke(
                    "send_mfa", **({"account_number": ACCOUNT} if name == "directory" else {})
                )
            for _ in range(3):
                if failing.ending is None:
                    await failing.invoke("verify_mfa", token="000000")
    kinds = [kind for kind, _ in seen]
    assert kinds.count("swml") == 2 and kinds.count("reply") >= 10
    problems = [
        problem
        for kind, body in seen
        for problem in (swml_problems(body) if kind == "swml" else reply_problems(body))
    ]
    assert problems == []


def test_both_vendored_schemas_are_read():
    assert set(SCHEMA_FILES) == {"calling", "root"}
    assert all(path.stat().st_size > 100_000 for path in SCHEMA_FILES.values())


def test_every_allow_list_entry_cites_a_page_and_checks_its_value():
    for entry in ALLOWED:
        assert "signalwire/docs" in entry.citation or "schema's" in entry.citation
        assert entry.value_schema and entry.schemas <= set(SCHEMA_FILES)


# Shapes written out by hand, each with what the schema says of it.
GOOD_REPLY = {
    "response": {"tool_result": "status: code sent", "tool_prompt": "Ask for the code."},
    "action": [
        {"set_meta_data": {"mfa_request_id": "x"}},
        {"unset_meta_data": "mfa_binding"},
        {"end_of_speech_timeout": 1500},
        {"replace_in_history": "(a code was sent)"},
        {"transfer": True, "SWML": {"version": "1.0.0", "sections": {"main": [{"hangup": {}}]}}},
    ],
    "post_process": True,
}


def test_the_checker_passes_the_documented_shapes():
    assert reply_problems(GOOD_REPLY) == []
    assert reply_problems({"response": "A plain string.", "action": []}) == []


@pytest.mark.parametrize(
    ("action", "found"),
    [
        ({"unset_meta_data": ["a", "b"]}, "unset_meta_data"),
        ({"unset_global_data": ["a"]}, "unset_global_data"),
        ({"end_of_speech_timeout": "fast"}, "end_of_speech_timeout"),
        ({"end_of_speech_timeout": 100}, "end_of_speech_timeout"),
        ({"replace_in_history": 3}, "replace_in_history"),
        # The SDK's connect(): SWML first and the string "true".
        ({"SWML": {"version": "1.0.0", "sections": {"main": []}}, "transfer": "true"}, "transfer"),
        ({"say_it_twice": "Hello"}, "action"),
    ],
)
def test_the_checker_refuses_what_the_schema_and_the_pages_do_not_document(action, found):
    problems = reply_problems({"response": "ok", "action": [action]})
    assert problems, action
    assert any(found in problem for problem in problems), problems


def test_the_checker_refuses_a_bad_response_and_a_stray_field():
    assert reply_problems({"response": {"tool_result": 1, "tool_prompt": "x"}})
    assert reply_problems({"response": "ok", "post_process": "yes"})
    assert reply_problems({"response": "ok", "debug": True})


def test_the_checker_refuses_a_bad_swml_document():
    document = {"version": "1.0.0", "sections": {"main": [{"ai": {"multilingual": "yes"}}]}}
    assert any("multilingual" in p for p in swml_problems(document))
    assert swml_problems({"version": "1.0.0", "sections": {"main": [{"not_a_verb": {}}]}})
