"""``python -m agent call``: play one phone call against the agent, no phone needed.

It does what SignalWire does around a call: fetches the SWML, calls
``send_mfa`` through its ``web_hook_url``, shows the text the caller's phone
would get (sandbox), asks what the caller says (or takes ``--say``), calls
``verify_mfa``, and keeps ``meta_data``/``global_data`` between steps exactly
as the platform does (``agent.ops.platform.PlatformCall``). There is no language
model here: the person at the keyboard plays the caller, the simulator plays
the platform, and the transcript shows each tool call and its answer.

Without ``--url`` it starts an agent in this process on a free loopback port
(the sandbox provider unless SignalWire credentials are set). Exit status 0
when the call ends verified, 1 when not, 2 on a usage or connection problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO

import httpx

from agent.config.settings import Settings
from agent.ops.platform import PlatformCall, ToolReply
from skills.mfa.delivery.providers.sandbox import SandboxText
from skills.mfa.phone import mask_number

FINAL_PHRASES = ("no tries left", "expired, was already used", "No code has been sent")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agent call",
        description="Play one verification call against the agent.",
        epilog="Environment: AGENT_URL (--url), SWML_BASIC_AUTH_USER (--user), "
        "SWML_BASIC_AUTH_PASSWORD (--password: keep it here, out of the process list), "
        "SIGNALWIRE_SIGNING_KEY (--signing-key). Without --url the in-process agent reads "
        "every variable of `python -m agent --help`.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("AGENT_URL"),
        help="a running agent's base URL (default: start one in-process); env AGENT_URL",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("SWML_BASIC_AUTH_USER"),
        help="the agent's basic-auth user; env SWML_BASIC_AUTH_USER",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("SWML_BASIC_AUTH_PASSWORD"),
        help="the agent's basic-auth password; env SWML_BASIC_AUTH_PASSWORD (preferred: a "
        "password on the command line shows in the process list)",
    )
    parser.add_argument(
        "--signing-key",
        default=os.environ.get("SIGNALWIRE_SIGNING_KEY"),
        help="sign each request as SignalWire does, for an agent that has "
        "SIGNALWIRE_SIGNING_KEY; env SIGNALWIRE_SIGNING_KEY",
    )
    parser.add_argument("--dashboard-user", default=os.environ.get("MFA_DASHBOARD_USER") or "admin")
    parser.add_argument(
        "--dashboard-password",
        default=os.environ.get("MFA_DASHBOARD_PASSWORD"),
        help="with --url: reads the sandbox's text from the agent's /events (the dashboard's "
        "pair); env MFA_DASHBOARD_PASSWORD",
    )
    parser.add_argument(
        "--caller", default="+15551230001", help="the caller ID the call comes from (E.164)"
    )
    parser.add_argument(
        "--account",
        help="the account number the caller gives (a directory must be configured): the "
        "code goes to the number on file for it",
    )
    parser.add_argument(
        "--lang",
        help="the language the caller speaks (a configured languages code, e.g. es): "
        "send_mfa names it, so the text message is in it, and {code_words} is read in it",
    )
    parser.add_argument(
        "--say",
        action="append",
        default=[],
        help="what the caller says when asked for the code (repeatable); {code} and "
        "{code_words} stand for the sandbox text's code",
    )
    return parser.parse_args(argv)


def main(argv: list[str], *, load_settings: Callable[[], Settings]) -> int:
    """``load_settings`` gives the settings of the in-process agent (``agent.cli`` passes
    the loader that ends start-up with one line on a bad value); unused with ``--url``."""
    args = parse_args(argv)
    placeholders = any("{code}" in said or "{code_words}" in said for said in args.say)
    if placeholders and args.url and not args.dashboard_password:
        # No way to read a sandbox text back: refuse before a real text goes to a phone.
        print(f"call: {CODE_PLACEHOLDER_UNKNOWN}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        outbox: list[SandboxText] = []
        if args.url:
            if not (args.user and args.password):
                print(
                    "call: --user and --password (or SWML_BASIC_AUTH_*) are needed with --url",
                    file=sys.stderr,
                )
                return 2
            base_url, auth = args.url.rstrip("/"), (args.user, args.password)
            signing_key = args.signing_key
            dashboard = (
                (args.dashboard_user, args.dashboard_password) if args.dashboard_password else None
            )
        else:
            settings = load_settings()
            if placeholders and settings.provider != "sandbox":
                print(f"call: {CODE_PLACEHOLDER_UNKNOWN}", file=sys.stderr)
                return 2
            base_url, auth = stack.enter_context(_in_process_agent(settings, outbox))
            key = settings.signing_key
            signing_key = key.get_secret_value() if key is not None else None
            dashboard = None  # the in-process agent hands its texts over directly
        answers = iter(args.say) if args.say else None
        ask = (lambda: next(answers, "")) if answers is not None else _ask_keyboard
        try:
            return asyncio.run(
                play_call(
                    base_url,
                    auth,
                    args.caller,
                    ask,
                    outbox,
                    sys.stdout,
                    account=args.account,
                    signing_key=signing_key,
                    dashboard=dashboard,
                    language=args.lang,
                )
            )
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            print(
                f"call: {status}: {_refusal_hint(status, signed=bool(signing_key))} "
                f"(agent at {base_url})",
                file=sys.stderr,
            )
            return 2
        except httpx.HTTPError as exc:
            print(
                f"call: cannot reach the agent at {base_url} ({type(exc).__name__})",
                file=sys.stderr,
            )
            return 2


def _refusal_hint(status: int, *, signed: bool) -> str:
    """What an operator should check when the agent refuses the call's first request."""
    if status == 401:
        return "the agent refused the credentials: check --user/--password (SWML_BASIC_AUTH_*)"
    if status == 403 and not signed:
        return (
            "the agent refused the call: it most likely checks webhook signatures "
            "(SIGNALWIRE_SIGNING_KEY); give the simulator the same key with --signing-key "
            "or SIGNALWIRE_SIGNING_KEY"
        )
    if status == 403:
        return (
            "the agent refused the call's signature: is --signing-key (SIGNALWIRE_SIGNING_KEY) "
            "the agent's key, and --url the address the agent sees?"
        )
    return "the agent refused the call"


async def play_call(
    base_url: str,
    auth: tuple[str, str],
    caller: str,
    ask: Callable[[], str],
    outbox: list[SandboxText],
    out: TextIO,
    *,
    account: str | None = None,
    signing_key: str | None = None,
    dashboard: tuple[str, str] | None = None,
    language: str | None = None,
) -> int:
    """``dashboard``: the pair that opens the agent's ``/events``, where a running
    sandbox agent shows the text it "sent"."""
    async with httpx.AsyncClient(timeout=20) as http:
        call = PlatformCall(
            http=http, base_url=base_url, auth=auth, caller=caller, signing_key=signing_key
        )
        await call.start()
        print(f"call {call.call_id} from {caller} to the agent at {base_url}", file=out)
        sent_at = time.time()
        arguments = {"account_number": account} if account else {}
        if language:
            arguments["language"] = language
        _show(out, "send_mfa", arguments, await call.invoke("send_mfa", **arguments))
        _show_ending(out, call)
        # The number on file is the agent's business: the transcript shows its last digits.
        texts = [(mask_number(text.to), text.body) for text in outbox]
        if not texts and dashboard is not None:
            # A running agent in sandbox mode shows its outbox on the live stream.
            to = None if account else mask_number(caller)
            texts = await _sandbox_text_from_stream(http, base_url, dashboard, to, sent_at)
        for to, body in texts:
            print(f"  [sandbox text to {to if account else caller}] {body}", file=out)
        bodies = [body for _, body in texts]

        texted = bodies[-1].rsplit(" ", 1)[-1] if bodies else ""
        if not texted:
            print(NO_SANDBOX_TEXT, file=out)
        while not call.global_data.get("mfa_verified") and call.ending is None:
            answer = ask().strip()
            if not texted and ("{code}" in answer or "{code_words}" in answer):
                # Sent as written, the placeholder would only be "not a 6-digit code".
                print(f"call: {CODE_PLACEHOLDER_UNKNOWN}", file=sys.stderr)
                return 2
            said = fill_code(answer, texted, language)
            if not said:
                break
            reply = await call.invoke("verify_mfa", token=said)
            _show(out, "verify_mfa", {"token": said}, reply)
            _show_ending(out, call)
            if any(phrase in reply.response for phrase in FINAL_PHRASES):
                break
        verified = call.global_data.get("mfa_verified") is True
        print(f"global_data.mfa_verified = {json.dumps(verified)}", file=out)
        if "mfa_verified_account" in call.global_data:
            named = call.global_data["mfa_verified_account"]
            print(f"global_data.mfa_verified_account = {json.dumps(named)}", file=out)
        return 0 if verified else 1


async def first_event(
    http: httpx.AsyncClient,
    base_url: str,
    auth: tuple[str, str],
    match: Callable[[dict[str, Any]], bool],
    within: float,
) -> dict[str, Any] | None:
    """The first event on the agent's ``/events`` stream (replay included) that matches."""
    try:
        async with asyncio.timeout(within):
            async with http.stream("GET", base_url + "/events", auth=auth) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if isinstance(event, dict) and match(event):
                            return event
    except (TimeoutError, httpx.HTTPError, ValueError):
        return None
    return None


async def _sandbox_text_from_stream(
    http: httpx.AsyncClient, base_url: str, auth: tuple[str, str], to: str | None, since: float
) -> list[tuple[str, str]]:
    """The sandbox text sent since ``since`` to ``to`` (masked), or to anyone when None."""
    event = await first_event(
        http,
        base_url,
        auth,
        lambda e: (
            e.get("kind") == "sandbox_text"
            and (to is None or e.get("to") == to)
            and float(e.get("at") or 0) >= since - 1
        ),
        within=2.0,
    )
    return [(str(event["to"]), str(event["body"]))] if event else []


NO_SANDBOX_TEXT = (
    "  (no sandbox text seen: the agent texted through its space, or its live stream did not"
    " open with the dashboard's pair; type the code that arrived, or that a fake space"
    " printed)"
)
CODE_PLACEHOLDER_UNKNOWN = (
    "{code} and {code_words} stand for a sandbox text's code, and no sandbox text was seen:"
    " against an agent that sends real texts, type the code the phone got (leave --say out);"
    " against a sandbox agent, give --dashboard-password (MFA_DASHBOARD_PASSWORD)"
)

DIGIT_WORDS = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"),
}


def fill_code(said: str, code: str, language: str | None = None) -> str:
    """Scripts cannot know a sandbox code in advance: ``{code}`` in a ``--say`` answer
    becomes the texted digits and ``{code_words}`` the same read out as words, in
    ``language`` (English unless it is Spanish)."""
    if not code.isdigit():
        return said
    primary = (language or "en").split("-", 1)[0].lower()
    digit_words = DIGIT_WORDS.get(primary, DIGIT_WORDS["en"])
    words = " ".join(digit_words[int(digit)] for digit in code)
    return said.replace("{code_words}", words).replace("{code}", code)


def _show(out: TextIO, tool: str, arguments: dict[str, str], reply: ToolReply) -> None:
    print(f"> {tool}({json.dumps(arguments, ensure_ascii=False)[1:-1]})", file=out)
    response = reply.body.get("response")
    if isinstance(response, dict):
        print(f"< {reply.status_code} [{response.get('tool_result', '')}]", file=out)
        print(f"  {reply.tool_prompt}", file=out)
    else:
        print(f"< {reply.status_code} {reply.response}", file=out)
    for line in _action_lines(reply.actions):
        print(f"  action: {line}", file=out)


def _action_lines(actions: list[dict[str, Any]]) -> list[str]:
    """One line per action; a run of ``unset_*`` actions (one per key, as SWML's schema has
    them) as one line naming its keys."""
    lines: list[str] = []
    run: list[str] = []  # the keys of the current run of one unset action
    run_name = ""
    for action in actions:
        unset = next(iter(action), "") if len(action) == 1 else ""
        if unset in ("unset_meta_data", "unset_global_data") and isinstance(action[unset], str):
            if run and unset != run_name:
                lines.append(f"{run_name}={','.join(run)}")
                run = []
            run_name = unset
            run.append(action[unset])
            continue
        if run:
            lines.append(f"{run_name}={','.join(run)}")
            run = []
        shown = [
            f"{key}={item}" if isinstance(item, int | str) else key for key, item in action.items()
        ]
        lines.append(", ".join(shown))
    if run:
        lines.append(f"{run_name}={','.join(run)}")
    return lines


def _show_ending(out: TextIO, call: PlatformCall) -> None:
    """What the platform did with a transfer or hang-up: the caller's next step."""
    ending = call.ending
    if call.refused_swml:
        print("  [platform] SWML from a tool refused: swaig_allow_swml is false", file=out)
    for problem in call.failed_handoffs:
        print(f"  [platform] handoff FAILED, the AI stays on the call: {problem}", file=out)
    if ending is None:
        return
    first = "after Jim's last sentence, " if ending.after_reply else ""
    if ending.kind == "hangup":
        print(f"  [platform] {first}the call is hung up", file=out)
        return
    to = ending.to if ending.to.startswith(("sip:", "sips:")) else mask_number(ending.to)
    print(f"  [platform] {first}the call is transferred to {to}", file=out)
    for name, value in ending.sip_headers.items():
        print(f"    SIP header {name}: {value}", file=out)


def _ask_keyboard() -> str:
    try:
        return input("caller says the code (empty to hang up): ")
    except EOFError:
        return ""


@contextmanager
def _in_process_agent(
    settings: Settings, outbox: list[SandboxText]
) -> Iterator[tuple[str, tuple[str, str]]]:
    """Serve an agent with ``settings`` on a free loopback port."""
    from agent.app import build_agent  # a run with --url builds no agent
    from agent.ops.local_server import ServerThread

    # The simulator prints the sandbox text itself, in the transcript.
    agent = build_agent(settings, sandbox_deliver=outbox.append)
    with ServerThread(agent.get_app()) as server:
        yield (
            server.url,
            (
                settings.basic_auth_user,
                settings.basic_auth_password.get_secret_value(),
            ),
        )
