"""What a webhook body must look like before the SDK is allowed to see it.

The SDK answers a JSON array, a non-string function name or call id, or a
``call`` that is not an object with a 500 from deep inside its handlers; the
platform then retries a request that can never succeed while the caller hears
silence. ``body_problem`` names what is wrong so the agent can answer 400 instead.

The body's size is not checked here: ``agent.http.ingress`` owns that rule (1 MB, counted as
the body streams, before anything reads it), and no body over it gets this far.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request

# Deeper than any real webhook body by far; deep nesting costs the parser (and every
# later walk of the body) recursion, which ends in a RecursionError, a 500.
MAX_DEPTH = 32
# SignalWire's call ids are UUIDs (36 characters).
MAX_CALL_ID = 128


async def body_problem(request: Request, *, swaig: bool) -> str | None:
    raw = await request.body()
    if not swaig and not raw.strip():
        return None  # an empty POST to / is a plain SWML fetch
    try:
        # request.json() keeps the parsed body on the request, so the SDK's own
        # request.json() that follows does not parse it a second time.
        body = await request.json()
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return "body must be JSON"
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if _deeper_than(body, MAX_DEPTH):
        return "body is nested too deeply"
    if not swaig:
        call = body.get("call")
        return None if call is None or isinstance(call, dict) else "call must be an object"
    if not isinstance(body.get("function"), str):
        return "function must be a string"
    for key in ("call_id", "caller_id_num", "meta_data_token"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            return f"{key} must be a string"
    call_id = body.get("call_id")
    if isinstance(call_id, str) and len(call_id) > MAX_CALL_ID:
        # It names log lines and limiter keys kept for a day: bounded once, here.
        return f"call_id longer than {MAX_CALL_ID} characters"
    for key in ("meta_data", "global_data", "argument"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            return f"{key} must be an object"
    return None


def _deeper_than(value: object, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
