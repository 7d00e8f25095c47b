"""Redaction at the log edge: tokens, URL credentials, exception text."""

from __future__ import annotations

import json
import logging

import pytest

from agent.http.logging_setup import JsonFormatter, RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '"POST /swaig/?__token=abc.def%3D HTTP/1.1" 200',
            '"POST /swaig/?__token=[redacted] HTTP/1.1" 200',
        ),
        (
            "https://mfa:hunter2@agent.example.com/swaig/",
            "https://[redacted]@agent.example.com/swaig/",
        ),
        ("a=1&password=hunter2&b=2", "a=1&password=[redacted]&b=2"),
        ("mfa_event", "mfa_event"),
        ("mail me at ops@example.com", "mail me at ops@example.com"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_records_are_redacted_and_exceptions_reduced_to_their_type():
    record = logging.makeLogRecord(
        {"msg": "%s", "args": ("GET /?__token=secret-token",), "levelname": "INFO"}
    )
    assert RedactingFilter().filter(record)
    try:
        raise ValueError("the code is 123456")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert "secret-token" not in json.dumps(line)
    assert line["exc_type"] == "ValueError"
    assert "123456" not in json.dumps(line)


def test_the_sdks_structlog_records_take_our_keys():
    """The SDK hands stdlib an event dict as the message: rendered with our keys."""
    event = {
        "event": "swaig_failed",
        "message": "see https://mfa:hunter2@agent.example.com/swaig/",
        "timestamp": "2026-12-03T10:00:00Z",
        "level": "warning",
        "logger": "signalwire.agent_base",
        "agent": "mfa-agent",
        "_record": object(),
    }
    record = logging.makeLogRecord(
        {"msg": event, "levelname": "WARNING", "name": "signalwire.agent_base"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert list(line) == ["ts", "level", "logger", "msg", "detail", "agent"]
    assert line["msg"] == "swaig_failed" and line["level"] == "warning"
    assert line["detail"] == "see https://[redacted]@agent.example.com/swaig/"


def test_the_sdks_argument_check_never_logs_what_the_caller_said():
    """With ``jsonschema`` installed, the SDK's soft argument check quotes the arguments it
    refuses, a code included; the logger itself redacts, whatever handler reads it."""
    from agent.http.logging_setup import guard_sdk_loggers

    guard_sdk_loggers()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("signalwire.core.mixins.tool_mixin")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning(
            "Argument validation failed for function 'verify_mfa': {'t': '594897'} is not of "
            "type 'string'"
        )
        logger.warning("something else about 4 8 1 2 2 9 and +15551230001")
    finally:
        logger.removeHandler(handler)
    assert seen[0] == (
        "Argument validation failed for function 'verify_mfa' "
        "(arguments withheld: they may hold the caller's code)"
    )
    assert "481229" not in seen[1].replace(" ", "") and "5551230001" not in seen[1]


def test_the_sdks_lines_below_its_level_are_dropped_and_those_above_kept():
    """The SDK's structlog loggers ask the level first (a shortcut taken for the CPU per
    call): what is enabled still arrives whole, at any level, and what is not never does."""
    from signalwire.core.logging_config import get_logger

    from agent.http.logging_setup import configure_logging

    configure_logging()
    seen: list[tuple[str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelname, record.getMessage()))

    sdk = get_logger("signalwire.levels_probe")
    stdlib = logging.getLogger("signalwire.levels_probe")
    handler = Keep()
    stdlib.addHandler(handler)
    try:
        sdk.debug("debug_dropped")
        sdk.info("info_dropped", detail="x")
        sdk.warning("warning_kept")
        stdlib.setLevel(logging.DEBUG)
        sdk.debug("debug_kept")
        sdk.info("info_kept")
    finally:
        stdlib.removeHandler(handler)
        stdlib.setLevel(logging.NOTSET)
    assert seen == [
        ("WARNING", "warning_kept"),
        ("DEBUG", "debug_kept"),
        ("INFO", "info_kept"),
    ]


def test_the_sdks_fields_that_quote_a_request_are_withheld():
    """At debug level the SDK's ``executing_function`` line carries the tool's arguments,
    the caller's code among them: the field is kept, its value withheld by the filter on
    the SDK's loggers, so every handler gets it withheld."""
    event = {
        "event": "executing_function",
        "function": "verify_mfa",
        "args": '{"code": "123456"}',
        "logger": "signalwire.agent_base",
    }
    record = logging.makeLogRecord(
        {"msg": event, "levelname": "DEBUG", "name": "signalwire.agent_base"}
    )
    assert RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["args"] == "[withheld]" and line["function"] == "verify_mfa"
    assert "123456" not in json.dumps(line)
