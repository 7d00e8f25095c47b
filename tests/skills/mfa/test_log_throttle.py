"""A repeated alert is one line per interval with a count, never one line per event."""

from __future__ import annotations

import logging

from skills.mfa.log_throttle import OutageLog, RateLimitedLog, SaidOnce


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def throttled_logger(name: str, **options):
    clock = FakeClock()
    throttle = RateLimitedLog(60, clock=clock, **options)
    logger = logging.getLogger(name)
    logger.handlers[:] = [collect := Collect()]
    logger.propagate = False
    logger.filters[:] = [throttle]
    logger.setLevel(logging.DEBUG)
    return logger, clock, collect, throttle


def test_one_line_per_interval_then_the_count():
    logger, clock, collect, throttle = throttled_logger("test.throttle.count")
    for _ in range(10_000):
        logger.error("socket.accept() out of system resource\nexception: EMFILE")
    assert len(collect.records) == 1
    assert throttle.suppressed() == 9_999

    clock.now += 59.9
    logger.error("socket.accept() out of system resource\nexception: EMFILE")
    assert len(collect.records) == 1

    clock.now += 0.2  # the interval since the last line that passed is over
    logger.error("socket.accept() out of system resource\nexception: EMFILE")
    assert len(collect.records) == 2
    last = collect.records[-1]
    assert last.suppressed == 10_000
    assert "(+10000 similar suppressed)" in last.getMessage()
    assert throttle.suppressed() == 0


def test_kinds_are_counted_apart_and_arguments_do_not_make_a_new_kind():
    logger, _clock, collect, _ = throttled_logger("test.throttle.kinds")
    for number in range(100):
        logger.warning("agent_send_rate_cap_reached for %s", number)
        logger.warning("connection_refused_at_cap")
        logger.error("agent_send_rate_cap_reached for %s", number)  # another level
    assert [r.getMessage() for r in collect.records] == [
        "agent_send_rate_cap_reached for 0",
        "connection_refused_at_cap",
        "agent_send_rate_cap_reached for 0",
    ]


def test_structured_event_names_stay_as_they_are():
    logger, clock, collect, _ = throttled_logger("test.throttle.struct", suffix=False)
    logger.warning("agent_send_rate_cap_reached", extra={"agent_id": "a"})
    logger.warning("agent_send_rate_cap_reached", extra={"agent_id": "a"})
    clock.now += 61
    logger.warning("agent_send_rate_cap_reached", extra={"agent_id": "a"})
    assert [r.msg for r in collect.records] == ["agent_send_rate_cap_reached"] * 2
    assert collect.records[-1].suppressed == 1


def test_lower_levels_pass_untouched_and_memory_is_bounded():
    logger, _clock, collect, throttle = throttled_logger(
        "test.throttle.levels", min_level=logging.WARNING, max_kinds=10
    )
    for _ in range(5):
        logger.info("routine")
    assert len(collect.records) == 5
    for number in range(1000):
        logger.warning(f"distinct {number}")
    assert len(throttle._seen) <= 10


def test_said_once_repeats_only_what_changed_and_after_forget():
    said = SaidOnce()
    assert said.first_time(("v1", "moving")) is True
    assert said.first_time(("v1", "moving")) is False
    assert said.first_time(("v1", "line 2: bad")) is True  # same version, another reason
    assert said.first_time(None) is True
    assert said.first_time(None) is False
    said.forget()
    assert said.first_time(None) is True


def test_an_outage_is_one_line_per_interval_with_the_count_then_one_when_it_ends():
    clock = FakeClock()
    logger = logging.getLogger("test.throttle.outage")
    logger.handlers[:] = [collect := Collect()]
    logger.propagate = False
    outage = OutageLog(logger, "store_down", "store_back", interval=60, clock=clock)

    def lines() -> list[tuple[str, object, object]]:
        return [
            (r.msg, getattr(r, "suppressed", None), getattr(r, "failures", None))
            for r in collect.records
        ]

    for _ in range(59):  # a poll a second
        outage.failed(exc_type="ConnectionError")
        clock.now += 1
    assert lines() == [("store_down", None, None)]
    clock.now += 1
    outage.failed(exc_type="ConnectionError")
    assert lines()[-1] == ("store_down", 58, None)  # the 58 after the first
    assert collect.records[-1].exc_type == "ConnectionError"
    outage.failed()
    outage.succeeded()
    outage.succeeded()  # only the first success after failures is said
    assert lines()[2:] == [("store_back", None, 61)]
    outage.failed()  # a new outage is said at once
    assert lines()[-1] == ("store_down", None, None)
