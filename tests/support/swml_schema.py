"""SignalWire's own JSON schema for SWML, and what the agent sends that it does not know yet.

The two ``SWMLObject.json`` files under ``tests/schemas/signalwire/`` are copied unchanged
from SignalWire's public docs repository (github:signalwire/docs, commit in
``tests/schemas/signalwire/SOURCE.md``):

- ``calling``: ``specs/swml/calling/tsp-output/@typespec/json-schema/SWMLObject.json``, the
  schema of SWML on a call (the ``ai`` verb and its SWAIG results);
- ``root``: ``specs/swml/tsp-output/@typespec/json-schema/SWMLObject.json``, the older
  combined schema, whose ``Output`` predates the split ``response`` and ``post_process``.

A SWML document is checked against each root schema; a SWAIG reply against each schema's
``$defs/Output``. What a schema refuses is a finding, unless ``ALLOWED`` below names it:
each entry is a shape a SignalWire reference page documents and that schema lags, with
the page, and with a small schema of its own that the value must still pass (so an
allow-listed action with a wrong type is still refused).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "signalwire"
SCHEMA_FILES = {
    "calling": SCHEMA_DIR / "swml-calling.SWMLObject.json",
    "root": SCHEMA_DIR / "swml.SWMLObject.json",
}

_SDK_PAGES = (
    "signalwire/docs fern/products/server-sdks/pages/reference/python/agents/function-result"
)


@dataclass(frozen=True)
class Allowed:
    """A documented shape one of the vendored schemas does not (yet) accept."""

    # "action": a key of one action object; "reply": a key of the reply itself;
    # "ai": a key of the SWML document's ``ai`` verb.
    where: str
    key: str
    schemas: frozenset[str]  # which of SCHEMA_FILES lag here
    value_schema: dict[str, Any]  # what the value must still be
    citation: str


#: A ``$ref`` into the calling schema, for a value schema that is the calling schema's own
#: (both files call themselves ``SWMLObject.json``; value schemas resolve in the calling one).
CALLING = "SWMLObject.json"

ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        "ai",
        "multilingual",
        frozenset({"root"}),
        {"$ref": f"{CALLING}#/$defs/Multilingual"},
        "signalwire/docs fern/products/swml/pages/reference/methods/calling/ai/multilingual/"
        "index.mdx and the calling schema's $defs/AIObject.multilingual; the root schema's "
        "AIObject lacks it",
    ),
    Allowed(
        "action",
        "end_of_speech_timeout",
        frozenset({"calling", "root"}),
        # The range of ai.params.end_of_speech_timeout (the same schema's AIParams).
        {"type": "integer", "minimum": 250, "maximum": 10_000},
        f"{_SDK_PAGES}/set-end-of-speech-timeout.mdx: FunctionResult.set_end_of_speech_timeout"
        "(milliseconds) adds the action {'end_of_speech_timeout': ms}; in no $defs/Action",
    ),
    Allowed(
        "action",
        "replace_in_history",
        frozenset({"calling", "root"}),
        {"anyOf": [{"type": "string", "minLength": 1}, {"const": True}]},
        f"{_SDK_PAGES}/replace-in-history.mdx: FunctionResult.replace_in_history(text | True) "
        "replaces the tool call and its result in the model's history; in no $defs/Action",
    ),
    Allowed(
        "action",
        "transfer",
        frozenset({"root"}),
        {"const": True},
        "signalwire/docs fern/products/swml/pages/guides/swaig/executing_swml.mdx and "
        "fern/snippets/swml/_actions.mdx (action[].transfer, a boolean beside SWML); the "
        "calling schema's $defs/SWMLAction has it, the root schema's does not",
    ),
    Allowed(
        "reply",
        "response",
        frozenset({"root"}),
        {"$ref": f"{CALLING}#/$defs/SwaigToolResult", "required": ["tool_result", "tool_prompt"]},
        "the calling schema's $defs/Output.response (a string or $defs/SwaigToolResult "
        "{tool_result, tool_prompt}) and the SDK's FunctionResult(tool_result=, tool_prompt=); "
        "the root schema's Output has only the string",
    ),
    Allowed(
        "reply",
        "post_process",
        frozenset({"root"}),
        {"type": "boolean"},
        f"{_SDK_PAGES}/set-post-process.mdx and the calling schema's $defs/Output.post_process; "
        "the root schema's Output lacks it",
    ),
)


@cache
def _validators(name: str) -> tuple[Draft202012Validator, Draft202012Validator]:
    """The document validator and the ``$defs/Output`` validator of one vendored schema."""
    document = json.loads(SCHEMA_FILES[name].read_text())
    resource = Resource.from_contents(document)
    # $refs name the file itself ("SWMLObject.json"): resolve them to the same document.
    registry = Registry().with_resources(
        [(document["$id"], resource), ("SWMLObject.json", resource)]
    )
    whole = Draft202012Validator(document, registry=registry)
    output = Draft202012Validator({"$ref": f"{document['$id']}#/$defs/Output"}, registry=registry)
    return whole, output


def _value_problems(entry: Allowed, value: Any) -> list[str]:
    whole, _ = _validators("calling")
    errors = whole.evolve(schema=entry.value_schema).iter_errors(value)
    return [f"{entry.key}: {_said(error)}" for error in errors]


def _said(error: ValidationError) -> str:
    """Where and why, from the deepest cause of an ``anyOf`` refusal."""
    deepest = best_match([error, *(error.context or ())])
    path = "/".join(map(str, deepest.absolute_path)) or "(top)"
    return f"{path}: {deepest.message[:300]}"


def swml_problems(document: Any) -> list[str]:
    """Why each vendored schema refuses a SWML document, after its allow-listed ``ai`` keys
    (each checked against its own value schema) are set aside."""
    problems = []
    for name in SCHEMA_FILES:
        whole, _ = _validators(name)
        body, own = _set_aside_in_ai(name, document)
        problems += [f"[{name}] SWML {problem}" for problem in own]
        problems += [f"[{name}] SWML {_said(e)}" for e in whole.iter_errors(body)]
    return problems


def _set_aside_in_ai(name: str, document: Any) -> tuple[Any, list[str]]:
    if not isinstance(document, dict):
        return document, []
    body = copy.deepcopy(document)
    problems: list[str] = []
    sections = body.get("sections") if isinstance(body.get("sections"), dict) else {}
    for verbs in sections.values():
        for verb in verbs if isinstance(verbs, list) else ():
            ai = verb.get("ai") if isinstance(verb, dict) else None
            if not isinstance(ai, dict):
                continue
            for entry in ALLOWED:
                if entry.where == "ai" and name in entry.schemas and entry.key in ai:
                    problems += _value_problems(entry, ai.pop(entry.key))
    return body, problems


def reply_problems(reply: Any) -> list[str]:
    """Why each vendored schema refuses a SWAIG reply, after its allow-listed shapes (each
    checked against its own value schema) are set aside."""
    problems = []
    for name in SCHEMA_FILES:
        body, own = _set_aside(name, reply)
        _, output = _validators(name)
        problems += [f"[{name}] {problem}" for problem in own]
        problems += [f"[{name}] reply {_said(e)}" for e in output.iter_errors(body)]
    return problems


def _set_aside(name: str, reply: Any) -> tuple[Any, list[str]]:
    """The reply without what ``ALLOWED`` names for schema ``name``, and the problems of the
    values set aside."""
    if not isinstance(reply, dict):
        return reply, []
    body = copy.deepcopy(reply)
    problems: list[str] = []
    for entry in ALLOWED:
        if name not in entry.schemas:
            continue
        if entry.where == "reply" and entry.key == "response":
            # Only the object form is set aside; the root schema requires a string there.
            if isinstance(body.get("response"), dict):
                problems += _value_problems(entry, body["response"])
                body["response"] = "(the split form, checked above)"
        elif entry.where == "reply" and entry.key in body:
            problems += _value_problems(entry, body.pop(entry.key))
        elif entry.where == "action" and isinstance(body.get("action"), list):
            kept = []
            for action in body["action"]:
                if isinstance(action, dict) and entry.key in action:
                    problems += _value_problems(entry, action[entry.key])
                    action = {k: v for k, v in action.items() if k != entry.key}
                    if not action:  # the action was only this key
                        continue
                kept.append(action)
            body["action"] = kept
    return body, problems
