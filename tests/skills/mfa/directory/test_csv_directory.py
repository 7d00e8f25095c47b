"""The CSV directory: formats read at load, bad rows named by line, reload on change."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from skills.mfa.flow.directory.csv_directory import CsvDirectory, DirectoryFileError
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.anyio


def write(path: Path, *rows: str, header: str = "account_number,phone_number") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def directory(tmp_path: Path, *rows: str, **kwargs) -> CsvDirectory:
    return CsvDirectory(write(tmp_path / "accounts.csv", *rows), default_region="US", **kwargs)


async def test_numbers_in_common_formats_are_read_as_e164(tmp_path):
    book = directory(
        tmp_path,
        "1001,+1 202 555 0199",
        "1002,(202) 555-0288",
        "1003,202.555.0377",
        "1004,12025550466",
        '"10-05","+44 7911 123456"',
        " 1006 , 202-555-0555 ",
        "",
    )
    expected = {
        "1001": "+12025550199",
        "1002": "+12025550288",
        "1003": "+12025550377",
        "1004": "+12025550466",
        "1005": "+447911123456",
        "1006": "+12025550555",
    }
    assert {account: await book.lookup(account) for account in expected} == expected
    assert await book.lookup("9999") is None
    assert len(book) == 6


async def test_default_region_comes_from_the_caller_of_the_constructor(tmp_path):
    path = write(tmp_path / "uk.csv", "1,07911 123456")
    assert await CsvDirectory(path, default_region="GB").lookup("1") == "+447911123456"


@pytest.mark.parametrize(
    ("rows", "line", "says"),
    [
        (("1,+12025550199", "2,not a number"), 3, "phone_number"),
        (("1,+12025550199", "", "ABC,+12025550288"), 4, "account_number"),
        (("1,+12025550199", "1,+12025550288"), 3, "already listed on line 2"),
        (("1,+12025550199", "2"), 3, "expected"),
        (("1,+1555",), 2, "phone_number"),
    ],
)
def test_a_bad_row_stops_start_up_naming_its_line_not_its_value(tmp_path, rows, line, says):
    with pytest.raises(DirectoryFileError) as caught:
        directory(tmp_path, *rows)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ") and says in str(caught.value)
    assert "555" not in str(caught.value)  # never the number itself


def test_a_wrong_header_or_missing_file_stops_start_up(tmp_path):
    with pytest.raises(DirectoryFileError, match="line 1: the header"):
        CsvDirectory(
            write(tmp_path / "x.csv", "1,+12025550199", header="acct,phone"), default_region="US"
        )
    with pytest.raises(DirectoryFileError, match="cannot read"):
        CsvDirectory(tmp_path / "absent.csv", default_region="US")


async def test_a_changed_file_is_reloaded_after_at_most_a_second(tmp_path):
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock, settle_seconds=0)
    write(book.path, "1,+12025550199", "2,+12025550288")
    clock.advance(0.5)
    assert await book.lookup("2") is None  # checked at most once per second
    clock.advance(0.6)
    assert await book.lookup("2") == "+12025550288"


async def test_a_same_size_rewrite_is_seen_through_the_modification_time(tmp_path):
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock, settle_seconds=0)
    write(book.path, "1,+12025550288")
    stat = book.path.stat()
    os.utime(book.path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 5_000_000_000))
    clock.advance(1.0)
    assert await book.lookup("1") == "+12025550288"


async def test_a_bad_reload_keeps_the_old_table_and_logs_the_line(tmp_path, caplog):
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock, settle_seconds=0)
    write(book.path, "1,+12025550199", "2,+12025550288", "3,garbage")
    clock.advance(1.0)
    with caplog.at_level(logging.ERROR, logger="mfa.directory"):
        assert await book.lookup("1") == "+12025550199"
    assert await book.lookup("2") is None
    failed = [r for r in caplog.records if r.getMessage() == "directory_reload_failed"]
    assert failed and "line 4" in failed[0].why
    # Fixed later: the next change is picked up.
    write(book.path, "1,+12025550199", "2,+12025550288")
    clock.advance(1.0)
    assert await book.lookup("2") == "+12025550288"


async def test_a_deleted_file_keeps_the_old_table_and_is_logged_once(tmp_path, caplog):
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock)
    book.path.unlink()
    with caplog.at_level(logging.ERROR, logger="mfa.directory"):
        for _ in range(4):
            clock.advance(2.0)
            assert await book.lookup("1") == "+12025550199"
    failed = [r for r in caplog.records if r.getMessage() == "directory_reload_failed"]
    assert [r.why for r in failed] == ["No such file or directory"]


def age(path: Path, seconds: float) -> None:
    """Make the file's last change ``seconds`` old, as if its writer had paused that long."""
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_a_file_still_being_written_is_not_taken_and_is_logged_once(tmp_path, caplog):
    """The issue's scenario: a writer opened the file with "w", wrote the row up to the
    last digit of the number, and paused."""
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock)
    with book.path.open("w") as writer, caplog.at_level(logging.WARNING, "mfa.directory"):
        writer.write("account_number,phone_number\n1,+12025550199\n2,+44 7911 12345")
        writer.flush()
        for _ in range(3):
            clock.advance(1.0)
            assert await book.lookup("2") is None  # the old table: 2 is unknown there
        assert await book.lookup("1") == "+12025550199"
        waiting = [r for r in caplog.records if r.getMessage() == "directory_reload_waiting"]
        assert len(waiting) == 1 and "settle" in waiting[0].why
        writer.write("6\n")
    age(book.path, 5)
    clock.advance(1.0)
    assert await book.lookup("2") == "+447911123456"


async def test_a_truncated_number_is_no_valid_number_even_in_a_settled_file(tmp_path, caplog):
    clock = FakeClock(0.0)
    book = directory(tmp_path, "1,+12025550199", clock=clock)
    write(book.path, "1,+12025550199", "2,+44 7911 12345")  # possible, but not valid
    age(book.path, 5)
    clock.advance(1.0)
    with caplog.at_level(logging.ERROR, logger="mfa.directory"):
        assert await book.lookup("2") is None
        clock.advance(1.0)
        assert await book.lookup("2") is None
    failed = [r for r in caplog.records if r.getMessage() == "directory_reload_failed"]
    assert len(failed) == 1 and failed[0].why.startswith("line 3: ") and "valid" in failed[0].why
    assert await book.lookup("1") == "+12025550199"


def test_a_number_that_is_not_valid_for_its_country_stops_start_up(tmp_path):
    with pytest.raises(DirectoryFileError, match="line 2: phone_number is not a valid number"):
        directory(tmp_path, "1,+1 555 123 0199")  # 555 is no area code
