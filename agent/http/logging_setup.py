"""Structured (JSON lines) logs for the product, with redaction at the edge.

Our own code logs only masked numbers and never codes or secrets. Two things
outside it could still leak: uvicorn's access log prints query strings, which
carry the per-call SWAIG tool tokens, and URLs may carry basic-auth
credentials. The ``RedactingFilter`` strips both from every record.

And the SDK's own lines may quote what a caller said: with a JSON Schema library
installed (``jsonschema``), its soft argument check logs "Argument validation failed for
function 'verify_mfa': {'t': '594897'} is not of type 'string'", the code included. For the
SDK's loggers the filter cuts that quote and masks anything else that reads as a number of
four digits or more (``skills.mfa.speech.spoken_redaction``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

from skills.mfa.speech.spoken_redaction import redact_spoken_numbers

_SECRET_QUERY = re.compile(r"((?:__token|token|password|api_token)=)[^&\s\"']+", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@")

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


_ARGUMENT_ECHO = re.compile(
    r"(Argument validation (?:failed|error) for function '[^']*')[:\s].*", re.S
)


def redact_sdk(text: str) -> str:
    """An SDK line without the arguments it quotes, and no number of four digits or more."""
    text = _ARGUMENT_ECHO.sub(r"\1 (arguments withheld: they may hold the caller's code)", text)
    return redact_spoken_numbers(text, 4)


def redact(text: str) -> str:
    if "=" not in text and "@" not in text:
        return text  # nothing either pattern could match: skip the regexes (hot path)
    text = _SECRET_QUERY.sub(r"\1[redacted]", text)
    return _URL_CREDENTIALS.sub(r"\1[redacted]@", text)


# SDK fields that quote a request: at debug level its ``executing_function`` line carries
# the tool's arguments, the caller's code among them. Withheld whatever the level.
_SDK_WITHHELD_KEYS = frozenset({"args", "arguments", "body", "raw_data", "post_data", "data"})


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and arguments with ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                redact(arg) if isinstance(arg, str) else arg
                for arg in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if (record.name or "").startswith(_SDK_PREFIXES):
            if isinstance(record.msg, str):
                record.msg = redact_sdk(record.getMessage())
                record.args = ()
            elif isinstance(record.msg, dict) and isinstance(record.msg.get("event"), str):
                record.msg = {
                    **{
                        key: "[withheld]" if key in _SDK_WITHHELD_KEYS else value
                        for key, value in record.msg.items()
                    },
                    "event": redact_sdk(record.msg["event"]),
                }
        return True


# What the SDK's structlog event dicts carry that our own keys already say.
_SDK_OWN_KEYS = frozenset({"event", "level", "logger", "timestamp", "logger_name"})


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with one set of keys for every logger: ``ts``, ``level``,
    ``logger``, ``msg``, then the record's own fields. The SDK logs through structlog,
    whose records carry an event dict as their message (``event``, ``timestamp``,
    ``message``, ...): its ``event`` becomes ``msg``, its ``message`` becomes ``detail``,
    and its other fields follow ours."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, dict):  # structlog (the SDK)
            fields = dict(record.msg)
            entry["msg"] = redact(str(fields.get("event", "")))
            for key, value in fields.items():
                if key in _SDK_OWN_KEYS or key.startswith("_"):
                    continue
                name = "detail" if key == "message" else key
                entry[name] = redact(value) if isinstance(value, str) else value
        else:
            entry["msg"] = redact(record.getMessage())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception text can carry request data.
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our loggers, uvicorn's and the SDK's, redacted.

    The SDK's ``serve()`` calls ``uvicorn.run`` with uvicorn's default logging
    config, which would replace our handlers with its plain-text ones; that
    default dict is rewritten in place so uvicorn installs ours. The SDK's own
    structlog output is switched to JSON on stderr, and to warnings only: its per-request
    info lines repeat what the access log and the ``mfa_event`` lines say, at
    about a tenth of a tool request's CPU. ``SIGNALWIRE_LOG_FORMAT``,
    ``SIGNALWIRE_LOG_LEVEL`` and ``SIGNALWIRE_LOG_MODE`` override these.
    """
    os.environ.setdefault("SIGNALWIRE_LOG_FORMAT", "json")
    os.environ.setdefault("SIGNALWIRE_LOG_LEVEL", "warning")
    # The SDK's default is stdout; every log line belongs on stderr with ours.
    os.environ.setdefault("SIGNALWIRE_LOG_MODE", "stderr")
    _route_uvicorn_logging_here(level)
    handler = json_handler()
    # asyncio's too: its accept-failure alert would otherwise go out as plain text with a
    # traceback (Python's last-resort handler), once per pending connection.
    for name in ("mfa", "agent", "skills", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level)
        # uvicorn.run() replaces its loggers' handlers with its own, but keeps
        # filters set on the logger itself: the access log stays redacted.
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
    _adopt_sdk_logging()
    guard_sdk_loggers()


#: SDK loggers whose lines may quote a request's arguments (the soft argument check), and
#: httpx's, whose request lines hold URLs: the line-type lookup's has the phone number in
#: its path (``/lookup/phone_number/+15551230199``).
SDK_ECHOING_LOGGERS = ("signalwire.core.mixins.tool_mixin", "httpx", "httpcore")
#: Whose records ``RedactingFilter`` also gives ``redact_sdk``: every SDK logger (its handler
#: filters them all) and httpx's; a logger-level filter sees only its own records, hence the
#: exact names above for ``guard_sdk_loggers``.
_SDK_PREFIXES = ("signalwire", "httpx", "httpcore")


def guard_sdk_loggers() -> None:
    """Redact on the SDK loggers that may quote a caller's words, on the logger itself, so
    every handler (ours, a test's capture, an embedding application's) gets the redacted
    record. Idempotent; ``build_agent`` and ``configure_logging`` both call it."""
    for name in SDK_ECHOING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def json_handler() -> logging.Handler:
    """A stderr handler writing our JSON lines, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    return handler


def _adopt_sdk_logging() -> None:
    """The SDK's lines in our format. Its ``configure_logging`` runs once per process (it
    keeps a flag): run it now, so ``serve()`` calling it later changes nothing, then give
    its ``signalwire`` logger a handler of ours instead of structlog's own renderer."""
    from signalwire.core.logging_config import configure_logging as configure_sdk_logging

    configure_sdk_logging()
    _skip_disabled_sdk_levels()
    sdk = logging.getLogger("signalwire")
    # On the handler: a logger's own filters never see its children's records.
    sdk_handler = json_handler()
    sdk_handler.addFilter(_DropMisleadingSdkWarnings())
    sdk.handlers[:] = [sdk_handler]
    sdk.propagate = False


def _skip_disabled_sdk_levels() -> None:
    """The SDK's structlog loggers run their processors (context copy, contextvars merge)
    before ``filter_by_level`` drops a debug or info line (3.3 us a line, 0.9 us with this):
    2.8% of the agent's CPU per call at 100 calls, at the default warning level. Asked first
    here, ``isEnabledFor`` drops the same lines, the same way, before any of that runs;
    an enabled level goes through unchanged."""
    from structlog.stdlib import BoundLogger

    if getattr(BoundLogger, "_mfa_level_checked", False):
        return
    for name, level in (("debug", logging.DEBUG), ("info", logging.INFO)):
        setattr(BoundLogger, name, _level_checked(getattr(BoundLogger, name), level))
    BoundLogger._mfa_level_checked = True  # type: ignore[attr-defined]


def _level_checked(method: Any, level: int) -> Any:
    def checked(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        if not self._logger.isEnabledFor(level):
            return None
        return method(self, event, *args, **kw)

    return checked


class _DropMisleadingSdkWarnings(logging.Filter):
    """Two SDK warnings at construction that mislead an operator of this agent:

    - that webhooks are unsigned, before start-up has decided anything: a start-up that
      then stops would print two lines, not one. The agent says it itself, once configured
      (``unsigned_webhooks_accepted``), and an account on a real space cannot start without
      the key;
    - that ``SWML_PROXY_URL_BASE`` "overrides SSL configuration and port settings. Remove
      this variable": here it is the documented way to give the public URL (the guide sets
      it, settings validate it, ``check`` probes it), so the advice to remove it is wrong.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        event = msg.get("event") if isinstance(msg, dict) else msg
        if not isinstance(event, str):
            return True
        return event != "webhook_signature_validation_disabled" and not event.startswith(
            "SWML_PROXY_URL_BASE is set in environment"
        )


def print_json_line(logger: str, msg: str, level: str = "warning", **fields: Any) -> None:
    """A line in the log's format written straight to stderr, bypassing the log handlers
    and their redaction: only for what must reach the operator once (generated
    credentials), never for anything a log pipeline should keep."""
    now = time.time()
    entry: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
        "level": level,
        "logger": logger,
        "msg": msg,
        **fields,
    }
    print(json.dumps(entry), file=sys.stderr, flush=True)


def _route_uvicorn_logging_here(level: str) -> None:
    import uvicorn.config

    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "json",
        "filters": ["redact"],
    }
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"redact": {"()": RedactingFilter}},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": level, "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
    uvicorn.config.LOGGING_CONFIG.clear()
    uvicorn.config.LOGGING_CONFIG.update(config)
