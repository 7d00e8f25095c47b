"""``python -m testkit.fake_space``: a fake SignalWire space to try the operator's guide on.

The tests' fake (``testkit/fake_signalwire.py``: the MFA API, the number list, the line-type
lookup, with SignalWire's documented answers and the spec's request checks) served on
loopback as a command. It prints the account variables that point an agent at it, and
shows each texted code where a person can read it: on stdout as it arrives, on a page at
``/`` that refreshes itself, and as JSON at ``/texts``. Nothing leaves the machine: the
"phone" is that page.

It lives in the test kit, not in ``agent/``: the product never imports the test kit
(``pyproject.toml``'s import-linter contracts), and a fake space has no place in an
installed agent. Run it from the repository's root, as the tests and the benchmark are.
Its credentials are the fake's fixed ones, written in this repository: they open nothing
but this process.
"""

from __future__ import annotations

import argparse
import errno
import html
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from testkit.agent_env import FROM_NUMBER
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID, FakeSignalWire

DEFAULT_PORT = 8787
USAGE_EPILOG = (
    "Point an agent at it with the printed variables (or the file --env-file writes), "
    "then read each texted code on the page it names."
)


def account_lines(url: str) -> list[str]:
    """The account's variables, one ``NAME='value'`` a line, as the guide's env file has them."""
    values = {
        "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
        "SIGNALWIRE_API_TOKEN": API_TOKEN,
        "SIGNALWIRE_SPACE": url,
        "MFA_FROM_NUMBER": FROM_NUMBER,
    }
    return [f"{name}='{value}'" for name, value in values.items()]


def text_line(text: dict[str, Any]) -> str:
    return f"text to {text['to']} ({text['channel']}): {text['body']}"


def app(fake: FakeSignalWire) -> Starlette:
    """The fake's API routes, plus the page and the JSON list of what it texted."""

    async def texts(request: Request) -> Response:
        return JSONResponse({"texts": list(reversed(fake.texts))})

    async def page(request: Request) -> Response:
        rows = "".join(
            "<tr><td>{at}</td><td>{to}</td><td>{channel}</td><td><b>{code}</b></td>"
            "<td>{body}</td></tr>".format(
                at=time.strftime("%H:%M:%S", time.localtime(text["at"])),
                **{key: html.escape(str(text[key])) for key in ("to", "channel", "code", "body")},
            )
            for text in reversed(fake.texts)
        )
        empty = '<tr><td colspan="5">nothing texted yet</td></tr>'
        return HTMLResponse(
            '<!doctype html><html><head><meta charset="utf-8">'
            '<meta http-equiv="refresh" content="2"><title>fake SignalWire: texts</title>'
            "</head><body><h1>Texts the fake space sent (newest first)</h1>"
            "<p>Loopback only: no phone received these.</p><table border=1 cellpadding=4>"
            "<tr><th>at</th><th>to</th><th>channel</th><th>code</th><th>text</th></tr>"
            f"{rows or empty}</table></body></html>"
        )

    routes = [Route("/", page, methods=["GET"]), Route("/texts", texts, methods=["GET"])]
    return Starlette(routes=[*routes, *fake.app().routes])


def main(argv: list[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testkit.fake_space",
        description="A fake SignalWire space on 127.0.0.1 (the MFA API, the number list "
        "and the line-type lookup) that shows each texted code.",
        epilog=USAGE_EPILOG,
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free one"
    )
    parser.add_argument(
        "--env-file", type=Path, help="also write the account's variables to this file"
    )
    args = parser.parse_args(argv)
    listener = _listen(args.port)
    if listener is None:
        print(
            f"fake_space: port {args.port} on 127.0.0.1 is in use; give another with --port",
            file=sys.stderr,
        )
        return 2
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    lines = account_lines(url)
    if args.env_file is not None:
        args.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fake = FakeSignalWire(on_text=lambda text: print(text_line(text), file=out, flush=True))
    print(f"fake SignalWire space on {url} (loopback only: nothing is texted to a phone)", file=out)
    print(f"texted codes: {url}/ (a page) and {url}/texts (JSON)", file=out)
    written = f", also written to {args.env_file}" if args.env_file else ""
    print(f"the account's variables for the agent's environment{written}:", file=out)
    for line in lines:
        print(f"  {line}", file=out)
    print("Ctrl-C stops it.", file=out, flush=True)
    config = uvicorn.Config(
        app(fake), log_level="warning", access_log=False, lifespan="off", proxy_headers=False
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def _listen(port: int) -> socket.socket | None:
    """The loopback socket, bound here so a port in use is one line, not a traceback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            return None
        raise
    sock.listen(128)
    return sock


if __name__ == "__main__":
    sys.exit(main())
