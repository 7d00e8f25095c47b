"""SMS pumping protection, unit by unit: prefixes, the lists file, velocity, conversion.

``tests/e2e/test_sms_pumping.py`` drives the same rules over HTTP; these pin each rule at
its boundary, fast, so that a changed comparison, constant or string fails a test. Every
expected value is written out here (the documented defaults, the settings each test
chooses), never read from the product. Clocks are injected: nothing sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

import pytest

from skills.mfa.events import MfaEvent, Outcome
from skills.mfa.limits import pumping_lists
from skills.mfa.limits.pumping import (
    InProcessDestinations,
    PumpingGuard,
    PumpingLimits,
    RedisDestinations,
    prefix_of,
)
from skills.mfa.limits.pumping_lists import ListsFile, ListsFileError, PrefixLists, read_lists_file
from skills.mfa.limits.send_limits import (
    CounterStoreUnavailable,
    InProcessCounterStore,
    LimitKind,
    Refusal,
    Rule,
)
from skills.mfa.log_throttle import RateLimitedLog
from skills.mfa.redis_client import connect
from skills.mfa.stores.redis_state import RedisCounterStore
from testkit.servers import free_port
from tests.support.fakes import T0, FakeClock

HOUR_MS = 3_600_000
# Any mtime well in the past (whole seconds, so that ns / 1e9 is exact).
MTIME = 1_700_000_000

US = "+12025550100"  # prefix +1202555, country 1
US_PREFIX = "+1202555"
OTHER_US = "+13035550100"  # prefix +1303555, country 1
UK = "+447911123456"  # prefix +44791112, country 44


def us(i: int, prefix: str = US_PREFIX) -> str:
    return f"{prefix}{i:04d}"


def prefix_key(prefix: str) -> str:
    """What the product's keys must hold for a prefix: a salted hash, never the digits."""
    return hashlib.sha256(b"mfa-prefix:" + prefix.encode()).hexdigest()[:24]


def conversion_limits(*, grace: float = 300.0) -> PumpingLimits:
    """Velocity out of the way; conversion at 20% once 20 were sent."""
    return PumpingLimits(
        per_prefix_per_hour=10_000,
        per_country_per_hour=10_000,
        conversion_floor=0.2,
        conversion_min_sent=20,
        conversion_grace_seconds=grace,
    )


def verified_event(call_id: str = "call-1", outcome: Outcome = Outcome.VERIFIED) -> MfaEvent:
    return MfaEvent(
        agent_id="agent",
        call_id=call_id,
        tool="verify_mfa",
        outcome=outcome,
        masked_number="***0100",
        provider="sandbox",
        duration_ms=1.0,
    )


class DownStore:
    """A counter store that cannot be reached."""

    async def acquire(self, rules, now, *, member="", claim=None):
        raise CounterStoreUnavailable("down")

    async def refund(self, rules, now, member):
        raise CounterStoreUnavailable("down")

    async def count(self, key, window, now):
        raise CounterStoreUnavailable("down")

    async def counts(self, queries, now):
        raise CounterStoreUnavailable("down")


class DownDestinations:
    async def remember(self, call_id, prefix, ttl):
        raise CounterStoreUnavailable("down")

    async def recall(self, call_id):
        raise CounterStoreUnavailable("down")


class Rig:
    """A guard on in-process counters, its clock at T0, and helpers to send and verify."""

    def __init__(self, limits: PumpingLimits, *, lists: ListsFile | None = None) -> None:
        self.clock = FakeClock(T0)
        self.store = InProcessCounterStore(clock=self.clock)
        self.destinations = InProcessDestinations(clock=self.clock)
        self.guard = PumpingGuard(
            self.store, limits, self.destinations, lists=lists, clock=self.clock
        )
        self._calls = 0

    async def send(self, number: str, times: int = 1, *, at: float = T0 - 1000) -> None:
        for _ in range(times):
            assert await self.store.acquire(self.guard.rules(number), at) is None

    async def verify(self, number: str, times: int = 1) -> None:
        """``times`` calls texted at ``number``'s prefix, each reading its code back now."""
        for _ in range(times):
            self._calls += 1
            call_id = f"call-{self._calls}"
            await self.guard.remember(call_id, number)
            await self.guard.note_verified(call_id)

    async def count(self, key: str) -> int:
        return await self.store.count(key, 3600.0, self.clock())

    async def refusal(self, number: str = US) -> Refusal | None:
        return await self.guard.refusal(number, self.clock())


@pytest.fixture
def alerts_unthrottled(monkeypatch):
    """The alert logger lets one line a minute through; here every one, for caplog."""
    throttle = next(
        f for f in logging.getLogger("mfa.alerts").filters if isinstance(f, RateLimitedLog)
    )
    monkeypatch.setattr(throttle, "interval", 0.0)


def write(path: Path, text: str, mtime: int = MTIME) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


# -- prefixes and lists ------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones():
    limits = PumpingLimits()
    assert limits.per_prefix_per_hour == 10
    assert limits.per_country_per_hour == 200
    assert limits.conversion_floor == 0.2
    assert limits.conversion_min_sent == 20
    assert limits.conversion_grace_seconds == 300.0


def test_a_prefix_is_the_number_without_its_last_four_digits():
    assert prefix_of("+12025550100") == "+1202555"
    assert prefix_of("+447911123456") == "+44791112"
    assert prefix_of("+1234") == "+"


def test_no_listed_prefix_gives_no_verdict():
    lists = PrefixLists(allow=frozenset({"+44"}), block=frozenset({"+234"}))
    assert lists.verdict(US) is None
    assert PrefixLists().verdict(US) is None


def test_the_longest_listed_prefix_wins_either_way():
    allow_inside_block = PrefixLists(allow=frozenset({"+1202555"}), block=frozenset({"+1"}))
    assert allow_inside_block.verdict("+12025550100") == "allow"
    assert allow_inside_block.verdict("+12025560100") == "block"
    block_inside_allow = PrefixLists(allow=frozenset({"+1"}), block=frozenset({"+1202555"}))
    assert block_inside_allow.verdict("+12025550100") == "block"
    assert block_inside_allow.verdict("+12025560100") == "allow"


def test_a_prefix_in_both_lists_blocks():
    lists = PrefixLists(allow=frozenset({"+1202"}), block=frozenset({"+1202"}))
    assert lists.verdict(US) == "block"


def test_a_prefix_as_long_as_the_number_matches_it_and_a_longer_one_does_not():
    assert PrefixLists(block=frozenset({US})).verdict(US) == "block"
    assert PrefixLists(allow=frozenset({US})).verdict(US) == "allow"
    assert PrefixLists(block=frozenset({US + "1"})).verdict(US) is None


def test_a_one_digit_country_code_matches():
    assert PrefixLists(block=frozenset({"+1"})).verdict(US) == "block"
    assert PrefixLists(allow=frozenset({"+1"})).verdict(US) == "allow"
    assert PrefixLists(block=frozenset({"+1"})).verdict(UK) is None


def test_a_bare_plus_never_matches():
    # The file refuses "+" alone; built by hand, it is still not a prefix of everything.
    assert PrefixLists(block=frozenset({"+"})).verdict(US) is None
    assert PrefixLists(allow=frozenset({"+"})).verdict(US) is None
    assert PrefixLists(block=frozenset({""})).verdict(US) is None


# -- the lists file ----------------------------------------------------------------------


def read(tmp_path: Path, text: str) -> PrefixLists:
    path = tmp_path / "lists.txt"
    path.write_text(text, encoding="utf-8")
    return read_lists_file(path)


def test_the_file_reads_allow_and_block_lines_and_skips_comments_and_blanks(tmp_path):
    lists = read(
        tmp_path,
        "# a comment\n\n   \nblock +234\nallow +1202555   # an office\n"
        "  block   +4470  \n# allow +99\nallow +1\n",
    )
    assert lists.block == {"+234", "+4470"}
    assert lists.allow == {"+1202555", "+1"}


def test_an_empty_file_lists_nothing(tmp_path):
    assert read(tmp_path, "") == PrefixLists(frozenset(), frozenset())


@pytest.mark.parametrize(
    "line",
    ["permit +44", "Allow +44", "BLOCK +44", "allow", "+44", "allow +44 +45", "block +44 now"],
)
def test_a_line_that_is_not_a_verb_and_one_prefix_is_refused_by_its_number(tmp_path, line):
    with pytest.raises(ListsFileError) as raised:
        read(tmp_path, f"# header\n\nallow +1\n{line}\nblock +2\n")
    assert str(raised.value) == "line 4: expected 'allow +PREFIX' or 'block +PREFIX'"


@pytest.mark.parametrize(
    "prefix",
    ["44", "+", "++44", "+4 4", "+-44", "+44a", "+١٢", "+²", "+" + "1" * 16],
)
def test_a_prefix_that_is_not_plus_and_1_to_15_ascii_digits_is_refused(tmp_path, prefix):
    with pytest.raises(ListsFileError) as raised:
        read(tmp_path, f"block +1\nallow {prefix}\n")
    message = str(raised.value)
    if prefix == "+4 4":  # three words
        assert message == "line 2: expected 'allow +PREFIX' or 'block +PREFIX'"
    else:
        assert message == "line 2: a prefix is + and 1 to 15 digits"


def test_one_and_fifteen_digits_are_prefixes(tmp_path):
    lists = read(tmp_path, "block +7\nallow +" + "1" * 15 + "\n")
    assert lists.block == {"+7"}
    assert lists.allow == {"+" + "1" * 15}


def test_the_first_line_is_line_1(tmp_path):
    with pytest.raises(ListsFileError, match=r"^line 1: "):
        read(tmp_path, "block +x\n")


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(ListsFileError) as raised:
        read_lists_file(tmp_path / "absent.txt")
    assert str(raised.value) == "cannot read the file (No such file or directory)"


def test_a_directory_says_it_cannot_be_read(tmp_path):
    with pytest.raises(ListsFileError) as raised:
        read_lists_file(tmp_path)
    assert str(raised.value) == "cannot read the file (Is a directory)"


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "lists.txt"
    path.write_bytes(b"block +44 # caf\xe9\n")
    with pytest.raises(ListsFileError) as raised:
        read_lists_file(path)
    assert str(raised.value) == "not a UTF-8 text file"


# -- the lists file, re-read when it changes ------------------------------------------------


class Watched:
    """A lists file with its two clocks: ``mono`` for check_every, ``wall`` for settling."""

    def __init__(self, tmp_path: Path, text: str = "block +44\n") -> None:
        self.path = tmp_path / "lists.txt"
        write(self.path, text)
        self.mono = FakeClock(0.0)
        self.wall = FakeClock(MTIME + 100.0)
        self.file = ListsFile(
            self.path,
            check_every=1.0,
            settle_seconds=1.0,
            clock=self.mono,
            wall_clock=self.wall,
        )

    def edit(self, text: str, mtime: int) -> None:
        """Rewrite the file with ``mtime``; the wall clock is left long after it."""
        write(self.path, text, mtime)
        self.wall.now = mtime + 100.0


def test_the_file_is_read_when_the_guard_starts(tmp_path):
    watched = Watched(tmp_path, "block +44\nallow +1\n")
    assert watched.file.current() == PrefixLists(frozenset({"+1"}), frozenset({"+44"}))


def test_a_bad_or_missing_file_stops_start_up(tmp_path):
    path = tmp_path / "lists.txt"
    with pytest.raises(ListsFileError, match=r"No such file"):
        ListsFile(path)
    path.write_text("block +44\nallow 44\n")
    with pytest.raises(ListsFileError, match=r"^line 2: "):
        ListsFile(path)


def test_a_change_is_seen_once_check_every_has_passed_and_not_before(tmp_path):
    watched = Watched(tmp_path)
    watched.edit("allow +44\n", MTIME + 10)
    watched.mono.now = 0.999
    assert watched.file.current().block == {"+44"}
    watched.mono.now = 1.0
    assert watched.file.current().allow == {"+44"}
    assert watched.file.current().block == frozenset()


def test_after_a_look_the_next_one_is_check_every_later(tmp_path):
    watched = Watched(tmp_path)
    watched.mono.now = 5.0
    assert watched.file.current().block == {"+44"}  # looked: unchanged
    watched.edit("allow +44\n", MTIME + 10)
    watched.mono.now = 5.999
    assert watched.file.current().block == {"+44"}
    watched.mono.now = 6.0
    assert watched.file.current().allow == {"+44"}


def test_an_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    watched = Watched(tmp_path)

    def must_not_read(path):
        raise AssertionError("read again")

    monkeypatch.setattr(pumping_lists, "read_lists_file", must_not_read)
    watched.mono.now = 10.0
    assert watched.file.current().block == {"+44"}


def test_a_change_is_taken_only_once_settled(tmp_path, caplog):
    watched = Watched(tmp_path)
    watched.edit("allow +44\n", MTIME + 10)
    watched.wall.now = MTIME + 10 + 0.999
    watched.mono.now = 1.0
    with caplog.at_level(logging.INFO, logger="mfa.pumping"):
        assert watched.file.current().block == {"+44"}
        kept = [r for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
        assert [(r.levelno, r.why) for r in kept] == [
            (logging.WARNING, "the file changed less than settle_seconds ago")
        ]
        watched.wall.now = MTIME + 10 + 1.0
        watched.mono.now = 2.0
        assert watched.file.current() == PrefixLists(frozenset({"+44"}), frozenset())
    (reloaded,) = [r for r in caplog.records if r.getMessage() == "pumping_lists_reloaded"]
    assert (reloaded.allow, reloaded.block) == (1, 0)


def test_a_bad_edit_keeps_the_old_lists_and_is_logged_once(tmp_path, caplog):
    watched = Watched(tmp_path)
    watched.edit("block +44\npermit +1\n", MTIME + 10)
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        for second in range(1, 5):
            watched.mono.now = float(second)
            assert watched.file.current() == PrefixLists(frozenset(), frozenset({"+44"}))
    kept = [r.why for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
    assert kept == ["line 2: expected 'allow +PREFIX' or 'block +PREFIX'"]


def test_another_bad_edit_is_logged_again_and_a_good_one_is_taken(tmp_path, caplog):
    watched = Watched(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        watched.edit("block +x\n", MTIME + 10)
        watched.mono.now = 1.0
        watched.file.current()
        watched.edit("block +44\nblock +y\n", MTIME + 20)
        watched.mono.now = 2.0
        watched.file.current()
        watched.edit("block +44\nallow +1\n", MTIME + 30)
        watched.mono.now = 3.0
        assert watched.file.current() == PrefixLists(frozenset({"+1"}), frozenset({"+44"}))
    kept = [r.why for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
    assert kept == [
        "line 1: a prefix is + and 1 to 15 digits",
        "line 2: a prefix is + and 1 to 15 digits",
    ]


def test_a_file_that_changes_while_it_is_read_is_not_taken_until_it_holds_still(
    tmp_path, monkeypatch, caplog
):
    watched = Watched(tmp_path)
    watched.edit("allow +44\n", MTIME + 10)
    real_read = pumping_lists.read_lists_file

    def read_then_edit(path):
        lists = real_read(path)
        write(path, "allow +44\nallow +1\n", MTIME + 20)
        return lists

    monkeypatch.setattr(pumping_lists, "read_lists_file", read_then_edit)
    watched.mono.now = 1.0
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        assert watched.file.current().block == {"+44"}
    kept = [r.why for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
    assert kept == ["the file changed while it was read"]
    monkeypatch.setattr(pumping_lists, "read_lists_file", real_read)
    watched.mono.now = 2.0
    assert watched.file.current().allow == {"+44", "+1"}


def test_a_removed_file_keeps_the_lists_and_is_logged_once(tmp_path, caplog):
    watched = Watched(tmp_path)
    watched.path.unlink()
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        for second in range(1, 5):
            watched.mono.now = float(second)
            assert watched.file.current().block == {"+44"}
    kept = [r.why for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
    assert kept == ["cannot read the file (No such file or directory)"]


def test_a_bad_edit_first_seen_unsettled_still_names_its_line(tmp_path, caplog):
    """One version of the file, two reasons: "not settled yet", then, once it settled, the
    line at fault. The operator must learn the second."""
    watched = Watched(tmp_path)
    watched.edit("block +44\npermit +1\n", MTIME + 10)
    watched.wall.now = MTIME + 10.5
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        watched.mono.now = 1.0
        watched.file.current()
        watched.wall.now = MTIME + 12
        for second in range(2, 5):
            watched.mono.now = float(second)
            assert watched.file.current().block == {"+44"}
    kept = [r.why for r in caplog.records if r.getMessage() == "pumping_lists_kept"]
    assert kept == [
        "the file changed less than settle_seconds ago",
        "line 2: expected 'allow +PREFIX' or 'block +PREFIX'",
    ]


# -- velocity rules -----------------------------------------------------------------------


def test_a_send_gets_a_prefix_rule_then_a_country_rule_of_one_hour():
    guard = PumpingGuard(
        InProcessCounterStore(),
        PumpingLimits(per_prefix_per_hour=7, per_country_per_hour=70),
        InProcessDestinations(),
    )
    assert guard.rules(US) == [
        Rule(LimitKind.PREFIX_HOUR, f"pump:p:{prefix_key('+1202555')}", 7, 3600.0),
        Rule(LimitKind.COUNTRY_HOUR, "pump:c:1", 70, 3600.0),
    ]
    assert [rule.enforce for rule in guard.rules(US)] == [True, True]
    assert guard.rules(UK)[0].key == f"pump:p:{prefix_key('+44791112')}"
    assert guard.rules(UK)[1].key == "pump:c:44"


def test_numbers_of_one_range_share_its_keys_and_the_keys_hold_no_digits():
    guard = PumpingGuard(InProcessCounterStore(), PumpingLimits(), InProcessDestinations())
    assert guard.rules("+12025550100") == guard.rules("+12025559999")
    assert guard.rules("+12025560100")[0].key != guard.rules(US)[0].key
    assert "2025550" not in guard.rules(US)[0].key


def test_a_number_without_a_known_country_counts_under_country_0():
    guard = PumpingGuard(InProcessCounterStore(), PumpingLimits(), InProcessDestinations())
    assert guard.rules("+99912345678")[1].key == "pump:c:0"


def test_an_allowed_number_gets_no_velocity_rules_and_a_blocked_one_gets_both(tmp_path):
    path = tmp_path / "lists.txt"
    write(path, "allow +1202555\nblock +44\n")
    guard = PumpingGuard(
        InProcessCounterStore(), PumpingLimits(), InProcessDestinations(), lists=ListsFile(path)
    )
    assert guard.rules(US) == []
    assert [rule.kind for rule in guard.rules(UK)] == [
        LimitKind.PREFIX_HOUR,
        LimitKind.COUNTRY_HOUR,
    ]
    assert len(guard.rules(OTHER_US)) == 2


async def drain_velocity(limits: PumpingLimits, numbers: list[str]) -> list[Refusal | None]:
    store = InProcessCounterStore()
    guard = PumpingGuard(store, limits, InProcessDestinations())
    return [await store.acquire(guard.rules(number), T0) for number in numbers]


@pytest.mark.anyio
async def test_the_prefix_rule_refuses_the_next_send_to_a_full_range():
    results = await drain_velocity(
        PumpingLimits(per_prefix_per_hour=3), [us(1), us(2), us(3), us(4), OTHER_US]
    )
    assert results[:3] == [None] * 3
    assert isinstance(results[3], Refusal) and results[3].kind is LimitKind.PREFIX_HOUR
    assert results[4] is None


@pytest.mark.anyio
async def test_the_country_rule_refuses_the_next_send_to_a_full_country():
    numbers = [us(1), us(1, "+1303555"), us(1, "+1404555"), us(1, "+1505555"), UK]
    results = await drain_velocity(PumpingLimits(per_country_per_hour=3), numbers)
    assert results[:3] == [None] * 3
    assert isinstance(results[3], Refusal) and results[3].kind is LimitKind.COUNTRY_HOUR
    assert results[4] is None


# -- block and allow before everything ------------------------------------------------------


def listed_guard(tmp_path: Path, store) -> PumpingGuard:
    path = tmp_path / "lists.txt"
    write(path, "block +44\nallow +1202555\n")
    return PumpingGuard(
        store,
        conversion_limits(),
        InProcessDestinations(),
        lists=ListsFile(path),
        clock=FakeClock(),
    )


@pytest.mark.anyio
async def test_a_blocked_number_is_refused_for_an_hour_without_asking_the_store(tmp_path):
    guard = listed_guard(tmp_path, DownStore())
    assert await guard.refusal(UK, T0) == Refusal(LimitKind.BLOCKED, retry_after=3600.0)


@pytest.mark.anyio
async def test_an_allowed_number_passes_without_asking_the_store(tmp_path):
    guard = listed_guard(tmp_path, DownStore())
    assert await guard.refusal(US, T0) is None


@pytest.mark.anyio
async def test_an_allowed_range_passes_even_when_nobody_there_verifies(tmp_path):
    rig = Rig(conversion_limits())
    await rig.send(US, 30)
    assert await rig.refusal(US) == Refusal(LimitKind.CONVERSION, retry_after=3600.0)
    listed = listed_guard(tmp_path, rig.store)
    assert await listed.refusal(US, T0) is None


@pytest.mark.anyio
async def test_an_unlisted_number_of_a_listed_file_is_checked_for_conversion(tmp_path):
    rig = Rig(conversion_limits())
    await rig.send(OTHER_US, 20)
    listed = listed_guard(tmp_path, rig.store)
    assert await listed.refusal(OTHER_US, T0) == Refusal(LimitKind.CONVERSION, 3600.0)


@pytest.mark.anyio
async def test_an_unreachable_store_is_raised_from_refusal():
    guard = PumpingGuard(DownStore(), conversion_limits(), InProcessDestinations())
    with pytest.raises(CounterStoreUnavailable):
        await guard.refusal(US, T0)


# -- conversion ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_nineteen_unverified_sends_are_not_judged():
    rig = Rig(conversion_limits())
    await rig.send(US, 19)
    assert await rig.refusal() is None


@pytest.mark.anyio
async def test_twenty_sends_with_three_verified_are_refused_for_an_hour():
    rig = Rig(conversion_limits())
    await rig.send(US, 20)
    await rig.verify(US, 3)
    assert await rig.refusal() == Refusal(LimitKind.CONVERSION, retry_after=3600.0)


@pytest.mark.anyio
async def test_twenty_sends_with_four_verified_are_exactly_at_the_floor_and_pass():
    rig = Rig(conversion_limits())
    await rig.send(US, 20)
    await rig.verify(US, 4)
    assert await rig.refusal() is None


@pytest.mark.anyio
async def test_sends_and_verifications_older_than_an_hour_do_not_count():
    rig = Rig(conversion_limits())
    await rig.send(US, 20, at=T0 - 3600)
    assert await rig.refusal() is None  # aged out
    await rig.send(US, 20, at=T0 - 3599)
    assert await rig.refusal() is not None
    rig.clock.now = T0 - 3600
    await rig.verify(US, 10)
    rig.clock.now = T0
    assert await rig.refusal() is not None  # those verifications aged out too


@pytest.mark.anyio
async def test_sends_within_the_grace_period_are_not_yet_counted():
    rig = Rig(conversion_limits(grace=300.0))
    await rig.send(US, 19, at=T0 - 1000)
    await rig.send(US, 1, at=T0 - 299)
    assert await rig.refusal() is None  # 19 sends past their grace


@pytest.mark.anyio
async def test_a_send_older_than_the_grace_period_counts():
    rig = Rig(conversion_limits(grace=300.0))
    await rig.send(US, 19, at=T0 - 1000)
    await rig.send(US, 1, at=T0 - 301)
    assert await rig.refusal() == Refusal(LimitKind.CONVERSION, 3600.0)


@pytest.mark.anyio
async def test_the_floor_applies_to_sends_past_their_grace_only():
    rig = Rig(conversion_limits(grace=300.0))
    await rig.send(US, 20, at=T0 - 1000)
    await rig.send(US, 5, at=T0 - 10)
    await rig.verify(US, 4)
    assert await rig.refusal() is None  # 4 of 20, not 4 of 25


@pytest.mark.anyio
async def test_with_no_grace_every_send_of_the_hour_counts():
    rig = Rig(conversion_limits(grace=0.0))
    await rig.send(US, 19, at=T0 - 1000)
    await rig.send(US, 1, at=T0)
    assert await rig.refusal() == Refusal(LimitKind.CONVERSION, 3600.0)


@pytest.mark.anyio
async def test_with_no_grace_sends_stamped_by_a_clock_ahead_still_count():
    # Another replica's clock a second ahead: its sends are "in the future" here.
    rig = Rig(conversion_limits(grace=0.0))
    await rig.send(US, 20, at=T0 + 1)
    assert await rig.refusal() == Refusal(LimitKind.CONVERSION, 3600.0)


@pytest.mark.anyio
async def test_a_range_nobody_verifies_is_refused_while_its_country_converts(
    alerts_unthrottled, caplog
):
    rig = Rig(conversion_limits(grace=0.0))
    await rig.send(US, 20)
    await rig.verify(OTHER_US, 4)  # the country: 4 of 20
    with caplog.at_level(logging.WARNING, logger="mfa.alerts"):
        assert await rig.refusal(US) == Refusal(LimitKind.CONVERSION, 3600.0)
        assert await rig.refusal(OTHER_US) is None  # its own range: nothing sent
    (alert,) = [r for r in caplog.records if r.getMessage() == "sms_pumping_suspected"]
    assert alert.levelno == logging.ERROR
    assert (alert.scope, alert.country, alert.sent, alert.verified) == ("prefix", 1, 20, 0)


@pytest.mark.anyio
async def test_a_country_nobody_verifies_is_refused_though_no_range_reaches_the_minimum(
    alerts_unthrottled, caplog
):
    rig = Rig(conversion_limits(grace=0.0))
    await rig.send(US, 10)
    await rig.send(OTHER_US, 10)
    await rig.verify(UK, 4)  # another country's successes do not help
    with caplog.at_level(logging.WARNING, logger="mfa.alerts"):
        assert await rig.refusal(US) == Refusal(LimitKind.CONVERSION, 3600.0)
        assert await rig.refusal(UK) is None
    (alert,) = [r for r in caplog.records if r.getMessage() == "sms_pumping_suspected"]
    assert (alert.scope, alert.country, alert.sent, alert.verified) == ("country", 1, 20, 0)


@pytest.mark.anyio
async def test_the_alert_names_the_sends_past_their_grace(alerts_unthrottled, caplog):
    rig = Rig(conversion_limits(grace=300.0))
    await rig.send(UK, 21, at=T0 - 1000)
    await rig.send(UK, 3, at=T0 - 10)
    await rig.verify(UK, 2)
    with caplog.at_level(logging.WARNING, logger="mfa.alerts"):
        assert await rig.refusal(UK) is not None
    (alert,) = [r for r in caplog.records if r.getMessage() == "sms_pumping_suspected"]
    assert (alert.scope, alert.country, alert.sent, alert.verified) == ("prefix", 44, 21, 2)


# -- what verifications count ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_verification_counts_once_for_its_range_and_once_for_its_country():
    rig = Rig(conversion_limits())
    await rig.guard.remember("call-1", US)
    await rig.guard.note_verified("call-1")
    assert await rig.count(f"pump:ok:p:{prefix_key('+1202555')}") == 1
    assert await rig.count("pump:ok:c:1") == 1
    assert await rig.store.count("pump:ok:c:1", 1.0, T0) == 1  # counted now
    assert await rig.count("pump:ok:c:44") == 0


@pytest.mark.anyio
async def test_two_verifications_of_one_range_count_two():
    rig = Rig(conversion_limits())
    await rig.verify(US, 2)
    assert await rig.count(f"pump:ok:p:{prefix_key('+1202555')}") == 2
    assert await rig.count("pump:ok:c:1") == 2


@pytest.mark.anyio
async def test_a_verification_counts_where_the_calls_latest_code_went():
    rig = Rig(conversion_limits())
    await rig.guard.remember("call-1", US)
    await rig.guard.remember("call-1", UK)
    await rig.guard.note_verified("call-1")
    assert await rig.count("pump:ok:c:44") == 1
    assert await rig.count("pump:ok:c:1") == 0


@pytest.mark.anyio
async def test_a_verification_of_a_call_never_texted_counts_nothing():
    rig = Rig(conversion_limits())
    await rig.guard.note_verified("call-unknown")
    assert rig.store.key_count() == 0


@pytest.mark.anyio
async def test_remember_keeps_the_range_for_an_hour():
    rig = Rig(conversion_limits())
    await rig.guard.remember("call-1", US)
    rig.clock.advance(3599)
    assert await rig.destinations.recall("call-1") == "+1202555"
    rig.clock.advance(1)
    assert await rig.destinations.recall("call-1") is None


@pytest.mark.anyio
async def test_remember_without_a_call_id_keeps_nothing():
    rig = Rig(conversion_limits())
    await rig.guard.remember("", US)
    assert await rig.destinations.recall("") is None


@pytest.mark.anyio
async def test_a_verified_event_lets_a_range_pass_the_floor():
    rig = Rig(conversion_limits(grace=0.0))
    await rig.send(US, 20)
    await rig.verify(US, 3)
    assert await rig.refusal() is not None
    await rig.guard.remember("call-x", us(99))
    rig.guard.on_event(verified_event("call-x"))
    await settle()
    assert await rig.refusal() is None


async def settle() -> None:
    """Let the tasks ``on_event`` started run (in-process: no real waiting in them)."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "outcome", [Outcome.CODE_SENT, Outcome.WRONG_CODE, Outcome.EXPIRED, Outcome.REPLAYED]
)
async def test_other_outcomes_count_nothing(outcome):
    rig = Rig(conversion_limits())
    await rig.guard.remember("call-1", US)
    rig.guard.on_event(verified_event("call-1", outcome))
    await settle()
    assert await rig.count("pump:ok:c:1") == 0


@pytest.mark.anyio
async def test_a_verified_event_without_a_call_id_counts_nothing():
    rig = Rig(conversion_limits())
    await rig.destinations.remember("", "+1202555", 3600.0)  # even if one were kept
    rig.guard.on_event(verified_event(""))
    await settle()
    assert await rig.count("pump:ok:c:1") == 0


def test_a_verified_event_outside_a_running_loop_is_ignored():
    guard = PumpingGuard(InProcessCounterStore(), PumpingLimits(), InProcessDestinations())
    guard.on_event(verified_event("call-1"))  # no loop: nothing to count with, no error


@pytest.mark.anyio
async def test_a_destination_that_cannot_be_kept_is_logged_not_raised(caplog):
    guard = PumpingGuard(InProcessCounterStore(), conversion_limits(), DownDestinations())
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        await guard.remember("call-1", US)
    assert [r.getMessage() for r in caplog.records] == ["pumping_destination_not_kept"]


@pytest.mark.anyio
async def test_a_destination_that_cannot_be_recalled_is_logged_not_raised(caplog):
    guard = PumpingGuard(InProcessCounterStore(), conversion_limits(), DownDestinations())
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        await guard.note_verified("call-1")
    assert [r.getMessage() for r in caplog.records] == ["pumping_verified_not_counted"]


@pytest.mark.anyio
async def test_a_verification_the_store_cannot_count_is_logged_not_raised(caplog):
    destinations = InProcessDestinations()
    guard = PumpingGuard(DownStore(), conversion_limits(), destinations)
    await guard.remember("call-1", US)
    with caplog.at_level(logging.WARNING, logger="mfa.pumping"):
        await guard.note_verified("call-1")
    assert [r.getMessage() for r in caplog.records] == ["pumping_verified_not_counted"]


# -- destinations: in process --------------------------------------------------------------


@pytest.mark.anyio
async def test_an_in_process_destination_lasts_its_ttl_and_no_longer():
    clock = FakeClock(T0)
    destinations = InProcessDestinations(clock=clock)
    await destinations.remember("call-1", "+1202555", 60.0)
    clock.now = T0 + 59.999
    assert await destinations.recall("call-1") == "+1202555"
    clock.now = T0 + 60.0
    assert await destinations.recall("call-1") is None
    assert await destinations.recall("call-2") is None


@pytest.mark.anyio
async def test_remembering_again_replaces_the_range_and_the_ttl():
    clock = FakeClock(T0)
    destinations = InProcessDestinations(clock=clock)
    await destinations.remember("call-1", "+1202555", 60.0)
    clock.advance(50)
    await destinations.remember("call-1", "+44791112", 60.0)
    clock.advance(50)
    assert await destinations.recall("call-1") == "+44791112"


@pytest.mark.anyio
async def test_past_max_entries_the_oldest_remembered_goes_first():
    destinations = InProcessDestinations(max_entries=2, clock=FakeClock(T0))
    await destinations.remember("a", "+1", 60.0)
    await destinations.remember("b", "+2", 60.0)
    assert [await destinations.recall(c) for c in "ab"] == ["+1", "+2"]
    await destinations.remember("a", "+1", 60.0)  # a is now the newest
    await destinations.remember("c", "+3", 60.0)
    assert [await destinations.recall(c) for c in "abc"] == ["+1", None, "+3"]


@pytest.mark.anyio
async def test_in_process_destinations_hold_a_hundred_thousand_calls_by_default():
    destinations = InProcessDestinations(clock=FakeClock(T0))
    for i in range(100_001):
        await destinations.remember(str(i), "+1", 60.0)
    assert await destinations.recall("0") is None
    assert await destinations.recall("1") == "+1"


# -- destinations: Redis --------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_redis_destination_is_one_key_per_call_that_lives_an_hour(redis_url):
    redis = connect(redis_url)
    guard = PumpingGuard(InProcessCounterStore(), PumpingLimits(), RedisDestinations(redis))
    await guard.remember("call-1", US)
    assert await redis.keys("*") == [b"mfa:pump:call:call-1"]
    assert await redis.get("mfa:pump:call:call-1") == b"+1202555"
    ttl = await redis.pttl("mfa:pump:call:call-1")
    assert HOUR_MS * 0.9 <= ttl <= HOUR_MS
    assert await RedisDestinations(redis).recall("call-1") == "+1202555"
    assert await RedisDestinations(redis).recall("call-2") is None
    await redis.aclose()


@pytest.mark.anyio
async def test_redis_destinations_use_their_key_prefix(redis_url):
    redis = connect(redis_url)
    await RedisDestinations(redis, prefix="other").remember("call-1", "+44", 60.0)
    assert await redis.keys("*") == [b"other:pump:call:call-1"]
    assert 0.9 * 60_000 <= await redis.pttl("other:pump:call:call-1") <= 60_000
    assert await RedisDestinations(redis).recall("call-1") is None
    await redis.aclose()


@pytest.mark.anyio
async def test_a_redis_destination_with_no_time_left_is_kept_a_millisecond(redis_url):
    redis = connect(redis_url)
    destinations = RedisDestinations(redis)
    await destinations.remember("call-1", "+1", 0.0)  # PX 0 would be a Redis error
    assert await redis.pttl("mfa:pump:call:call-1") in (-2, 0, 1)
    await asyncio.sleep(0.05)
    assert await destinations.recall("call-1") is None
    await redis.aclose()


@pytest.mark.anyio
async def test_unreachable_redis_destinations_raise_counter_store_unavailable():
    redis = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    destinations = RedisDestinations(redis)
    with pytest.raises(CounterStoreUnavailable):
        await destinations.remember("call-1", "+1202555", 3600.0)
    with pytest.raises(CounterStoreUnavailable):
        await destinations.recall("call-1")
    await redis.aclose()


@pytest.mark.anyio
async def test_conversion_on_redis_counts_sends_and_verifications_alike(redis_url):
    redis = connect(redis_url)
    clock = FakeClock(T0)
    store = RedisCounterStore(redis)
    guard = PumpingGuard(store, conversion_limits(grace=0.0), RedisDestinations(redis), clock=clock)
    for _ in range(20):
        assert await store.acquire(guard.rules(US), T0 - 1000) is None
    for i in range(4):
        await guard.remember(f"call-{i}", us(i))
        if i < 3:
            await guard.note_verified(f"call-{i}")
    assert await guard.refusal(US, T0) == Refusal(LimitKind.CONVERSION, 3600.0)
    await guard.note_verified("call-3")  # a fourth of one range: counted, not refused
    assert await store.count(f"pump:ok:p:{prefix_key('+1202555')}", 3600.0, T0) == 4
    assert await guard.refusal(US, T0) is None
    await redis.aclose()
