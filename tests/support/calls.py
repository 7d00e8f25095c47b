"""Helpers for tests that play calls through the served agent."""

from __future__ import annotations

import httpx

from agent.ops.platform import PlatformCall, ToolReply
from tests.support.defaults import AUTH, CALLER


async def new_call(http: httpx.AsyncClient, url: str, caller: str = CALLER) -> PlatformCall:
    """A call whose SWML has been fetched, as SignalWire does when the phone rings."""
    call = PlatformCall(http=http, base_url=url, auth=AUTH, caller=caller)
    await call.start()
    return call


def wrong_code(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return "000000" if code != "000000" else "111111"


def reply_text(body: dict) -> str:
    """What a SWAIG reply tells the model to say: ``tool_prompt`` when split, else the text."""
    return ToolReply(200, body).tool_prompt
