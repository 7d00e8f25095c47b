"""The sandbox provider must follow SignalWire's rules exactly, survive restarts and
concurrent answers, and never keep a code in clear."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from skills.mfa.delivery.providers import sandbox
from skills.mfa.delivery.providers.base import (
    CodeNotFound,
    CodeProvider,
    ProviderRejected,
    ProviderUnavailable,
    SendRequest,
    SentCode,
    VerifyOutcome,
)
from skills.mfa.delivery.providers.pending_codes import EXPIRED_RETENTION_SECONDS
from skills.mfa.delivery.providers.sandbox import SandboxProvider, SandboxText
from tests.support.fakes import FakeClock

T = TypeVar("T")

KNOWN_CODE = "493817"
T0 = 1_700_000_000.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Inbox:
    """A fake phone: collects every text the sandbox delivers."""

    def __init__(self) -> None:
        self.texts: list[SandboxText] = []

    def __call__(self, text: SandboxText) -> None:
        self.texts.append(text)

    @property
    def last(self) -> SandboxText:
        return self.texts[-1]


def request(**overrides: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "to": "+15551234567",
        "message": "Your code is",
        "token_length": 6,
        "valid_for": 300,
        "max_attempts": 3,
    }
    fields.update(overrides)
    return SendRequest(**fields)


def make(
    db: Path,
    clock: FakeClock | None = None,
    code: str | None = None,
    inbox: Inbox | None = None,
) -> tuple[SandboxProvider, Inbox]:
    inbox = inbox if inbox is not None else Inbox()
    provider = SandboxProvider(
        db,
        deliver=inbox,
        clock=clock if clock is not None else FakeClock(T0),
        random_digits=(lambda n: code) if code is not None else None,
    )
    return provider, inbox


def rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT request_id, salt, code_hash, expires_at, attempts_left FROM pending_codes"
        ).fetchall()
    finally:
        conn.close()


def wrong(code: str) -> str:
    """A code of the same length that differs in the last digit."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "codes.db"


# -- basics ---------------------------------------------------------------------------------


def test_is_a_code_provider_named_sandbox(db: Path) -> None:
    provider, _ = make(db)
    assert isinstance(provider, CodeProvider)
    assert provider.name == "sandbox"


def test_creates_parent_dirs_table_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "codes.db"
    make(db)
    assert db.is_file()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(pending_codes)")}
        assert "pending_codes_expires_at" in indexes
    finally:
        conn.close()


def test_send_delivers_message_and_code(db: Path) -> None:
    clock = FakeClock(T0)
    provider, inbox = make(db, clock=clock, code=KNOWN_CODE)
    sent = run(provider.send(request(to="+447700900123", message="Your Acme code is")))
    assert isinstance(sent, SentCode)
    assert uuid.UUID(sent.request_id).version == 4
    assert len(inbox.texts) == 1
    text = inbox.last
    assert text == SandboxText(
        request_id=sent.request_id,
        to="+447700900123",
        body="Your Acme code is 493817",
        code=KNOWN_CODE,
        sent_at=T0,
    )
    assert KNOWN_CODE not in repr(text)


def test_async_deliver_is_awaited(db: Path) -> None:
    got: list[SandboxText] = []

    async def deliver(text: SandboxText) -> None:
        await asyncio.sleep(0)
        got.append(text)

    provider = SandboxProvider(db, deliver=deliver, clock=FakeClock(T0))
    sent = run(provider.send(request()))
    assert [t.request_id for t in got] == [sent.request_id]


def test_each_send_gets_its_own_id(db: Path) -> None:
    provider, inbox = make(db)
    ids = {run(provider.send(request())).request_id for _ in range(5)}
    assert len(ids) == 5
    assert {t.request_id for t in inbox.texts} == ids


# -- the rules ------------------------------------------------------------------------------


def test_right_code_verifies_once(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request()))
    assert run(provider.verify(sent.request_id, KNOWN_CODE)) == VerifyOutcome(True, 2)
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, KNOWN_CODE))
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, wrong(KNOWN_CODE)))


def test_wrong_codes_count_down_then_request_is_dead(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request(max_attempts=3)))
    outcomes = [run(provider.verify(sent.request_id, "000000")) for _ in range(3)]
    assert outcomes == [VerifyOutcome(False, 2), VerifyOutcome(False, 1), VerifyOutcome(False, 0)]
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, KNOWN_CODE))
    assert provider.pending_count() == 0


def test_right_code_after_a_wrong_one(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request(max_attempts=3)))
    assert run(provider.verify(sent.request_id, "111111")) == VerifyOutcome(False, 2)
    assert run(provider.verify(sent.request_id, KNOWN_CODE)) == VerifyOutcome(True, 1)


def test_single_attempt_right_on_last_try(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request(max_attempts=1)))
    assert run(provider.verify(sent.request_id, KNOWN_CODE)) == VerifyOutcome(True, 0)


def test_single_attempt_wrong_kills_it(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request(max_attempts=1)))
    assert run(provider.verify(sent.request_id, "49381")) == VerifyOutcome(False, 0)
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, KNOWN_CODE))


@pytest.mark.parametrize("guess", ["", "49381", "4938170", " 493817", "493817 ", "４９３８１７"])
def test_near_misses_are_wrong(db: Path, guess: str) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request()))
    assert run(provider.verify(sent.request_id, guess)) == VerifyOutcome(False, 2)


def test_verify_just_before_expiry_succeeds(db: Path) -> None:
    clock = FakeClock(T0)
    provider, _ = make(db, clock=clock, code=KNOWN_CODE)
    sent = run(provider.send(request(valid_for=300)))
    clock.now = T0 + 299.999
    assert run(provider.verify(sent.request_id, KNOWN_CODE)) == VerifyOutcome(True, 2)


@pytest.mark.parametrize("elapsed", [300.0, 300.001, 3600.0])
def test_verify_at_or_after_expiry_is_not_found(db: Path, elapsed: float) -> None:
    clock = FakeClock(T0)
    provider, _ = make(db, clock=clock, code=KNOWN_CODE)
    sent = run(provider.send(request(valid_for=300)))
    clock.now = T0 + elapsed
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, KNOWN_CODE))
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, "000000"))


def test_wrong_code_just_before_expiry_is_answered(db: Path) -> None:
    clock = FakeClock(T0)
    provider, _ = make(db, clock=clock, code=KNOWN_CODE)
    sent = run(provider.send(request(valid_for=300)))
    clock.now = T0 + 299.5
    assert run(provider.verify(sent.request_id, "000000")) == VerifyOutcome(False, 2)


@pytest.mark.parametrize("request_id", ["", "nope", str(uuid.uuid4()), "'; DROP TABLE x; --"])
def test_unknown_id_is_not_found(db: Path, request_id: str) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    run(provider.send(request()))
    with pytest.raises(CodeNotFound):
        run(provider.verify(request_id, KNOWN_CODE))
    assert provider.pending_count() == 1


def test_code_of_one_request_does_not_verify_another(db: Path) -> None:
    codes = iter(["111111", "222222"])
    provider = SandboxProvider(
        db, deliver=lambda t: None, clock=FakeClock(T0), random_digits=lambda n: next(codes)
    )
    first = run(provider.send(request()))
    second = run(provider.send(request()))
    assert run(provider.verify(first.request_id, "222222")) == VerifyOutcome(False, 2)
    assert run(provider.verify(second.request_id, "222222")) == VerifyOutcome(True, 2)
    assert run(provider.verify(first.request_id, "111111")) == VerifyOutcome(True, 1)


# -- code format ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 4, 6, 8, 10])
def test_default_codes_have_token_length_digits(db: Path, length: int) -> None:
    provider, inbox = make(db)
    for _ in range(20):
        run(provider.send(request(token_length=length)))
    assert len(inbox.texts) == 20
    for text in inbox.texts:
        assert re.fullmatch(rf"[0-9]{{{length}}}", text.code), text.code
        assert text.body == f"Your code is {text.code}"


def test_default_codes_keep_leading_zeros(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return 42

    monkeypatch.setattr(sandbox.secrets, "randbelow", randbelow)
    provider, inbox = make(db)
    sent = run(provider.send(request(token_length=6)))
    assert asked == [10**6]
    assert inbox.last.code == "000042"
    assert run(provider.verify(sent.request_id, "42")) == VerifyOutcome(False, 2)
    assert run(provider.verify(sent.request_id, "000042")) == VerifyOutcome(True, 1)


@pytest.mark.parametrize("bad", ["12345", "1234567", "12345a", "", "١٢٣٤٥٦"])
def test_random_digits_must_return_token_length_digits(db: Path, bad: str) -> None:
    provider, inbox = make(db, code=bad)
    with pytest.raises(ValueError):
        run(provider.send(request(token_length=6)))
    assert inbox.texts == []
    assert provider.pending_count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "5551234567"},
        {"to": "+0551234567"},
        {"to": ""},
        {"token_length": 0},
        {"valid_for": 0},
        {"valid_for": -5},
        {"max_attempts": 0},
    ],
)
def test_invalid_request_is_rejected_like_signalwire(db: Path, overrides: dict[str, Any]) -> None:
    provider, inbox = make(db)
    with pytest.raises(ProviderRejected) as info:
        run(provider.send(request(**overrides)))
    assert info.value.status_code == 422
    assert inbox.texts == []
    assert provider.pending_count() == 0


# -- storage --------------------------------------------------------------------------------


def test_table_holds_a_salted_hash_not_the_code(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request()))
    [(request_id, salt, code_hash, expires_at, attempts_left)] = rows(db)
    assert request_id == sent.request_id
    assert isinstance(salt, bytes) and len(salt) >= 16
    assert code_hash == hashlib.sha256(salt + KNOWN_CODE.encode()).hexdigest()
    assert code_hash != KNOWN_CODE
    assert KNOWN_CODE not in (request_id, code_hash, str(expires_at), str(attempts_left))
    assert (expires_at, attempts_left) == (T0 + 300, 3)


def test_salts_differ_so_equal_codes_hash_differently(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    run(provider.send(request()))
    run(provider.send(request()))
    (_, salt1, hash1, _, _), (_, salt2, hash2, _, _) = rows(db)
    assert salt1 != salt2
    assert hash1 != hash2


def test_database_files_never_contain_the_code(tmp_path: Path) -> None:
    # Ten digits: a chance match inside hex hashes, UUIDs or salts is negligible.
    code = "4938170265"
    db = tmp_path / "codes.db"
    provider, _ = make(db, code=code)
    sent = run(provider.send(request(token_length=10)))
    assert run(provider.verify(sent.request_id, "0000000000")) == VerifyOutcome(False, 2)
    files = sorted(tmp_path.glob("codes.db*"))
    assert db in files
    for path in files:
        data = path.read_bytes()
        assert code.encode() not in data, path.name
        assert code.encode("utf-16-le") not in data, path.name


def test_restart_on_same_file_still_verifies(db: Path) -> None:
    clock = FakeClock(T0)
    first, _ = make(db, clock=clock, code=KNOWN_CODE)
    sent = run(first.send(request()))
    assert run(first.verify(sent.request_id, "000000")) == VerifyOutcome(False, 2)
    run(first.aclose())

    second, _ = make(db, clock=clock)
    assert second.pending_count() == 1
    assert run(second.verify(sent.request_id, "000000")) == VerifyOutcome(False, 1)
    assert run(second.verify(sent.request_id, KNOWN_CODE)) == VerifyOutcome(True, 0)


def test_another_process_verifies_the_code(db: Path) -> None:
    provider = SandboxProvider(db, deliver=lambda t: None, random_digits=lambda n: KNOWN_CODE)
    sent = run(provider.send(request()))
    script = (
        "import asyncio, sys\n"
        "from skills.mfa.delivery.providers.sandbox import SandboxProvider\n"
        "p = SandboxProvider(sys.argv[1], deliver=lambda t: None)\n"
        "o = asyncio.run(p.verify(sys.argv[2], sys.argv[3]))\n"
        "print(o.verified, o.attempts_left)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db), sent.request_id, KNOWN_CODE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "True 2"
    with pytest.raises(CodeNotFound):
        run(provider.verify(sent.request_id, KNOWN_CODE))


def test_expired_rows_are_swept_on_send_after_retention(db: Path) -> None:
    clock = FakeClock(T0)
    provider, _ = make(db, clock=clock, code=KNOWN_CODE)
    old = run(provider.send(request(valid_for=60)))
    expiry = T0 + 60

    clock.now = expiry + EXPIRED_RETENTION_SECONDS - 1
    recent = run(provider.send(request(valid_for=60)))
    assert {r[0] for r in rows(db)} == {old.request_id, recent.request_id}
    assert provider.pending_count() == 1

    clock.now = expiry + EXPIRED_RETENTION_SECONDS + 1
    newest = run(provider.send(request(valid_for=60)))
    assert {r[0] for r in rows(db)} == {recent.request_id, newest.request_id}
    with pytest.raises(CodeNotFound):
        run(provider.verify(old.request_id, KNOWN_CODE))


def test_sweep_uses_the_expires_at_index(db: Path) -> None:
    make(db)
    conn = sqlite3.connect(db)
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN DELETE FROM pending_codes WHERE expires_at < ?", (T0,)
        ).fetchall()
    finally:
        conn.close()
    assert any("pending_codes_expires_at" in str(step) for step in plan), plan


def test_pending_count_counts_only_live_codes(db: Path) -> None:
    clock = FakeClock(T0)
    provider, _ = make(db, clock=clock, code=KNOWN_CODE)
    assert provider.pending_count() == 0
    used = run(provider.send(request(valid_for=1000)))
    dead = run(provider.send(request(valid_for=1000, max_attempts=1)))
    expiring = run(provider.send(request(valid_for=10)))
    run(provider.send(request(valid_for=1000)))
    assert provider.pending_count() == 4
    run(provider.verify(used.request_id, KNOWN_CODE))
    run(provider.verify(dead.request_id, "000000"))
    assert provider.pending_count() == 2
    clock.now = T0 + 10
    assert provider.pending_count() == 1
    with pytest.raises(CodeNotFound):
        run(provider.verify(expiring.request_id, KNOWN_CODE))


def test_failed_delivery_leaves_no_code(db: Path) -> None:
    def deliver(text: SandboxText) -> None:
        raise OSError("phone off")

    provider = SandboxProvider(db, deliver=deliver, clock=FakeClock(T0))
    with pytest.raises(ProviderUnavailable) as info:
        run(provider.send(request()))
    assert info.value.may_have_arrived is False
    assert rows(db) == []


def test_closed_provider_refuses_calls(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request()))
    run(provider.aclose())
    run(provider.aclose())  # idempotent
    with pytest.raises(RuntimeError):
        run(provider.verify(sent.request_id, KNOWN_CODE))
    with pytest.raises(RuntimeError):
        run(provider.send(request()))


def test_busy_database_waits_instead_of_failing(db: Path) -> None:
    provider, _ = make(db, code=KNOWN_CODE)
    sent = run(provider.send(request()))
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    committed_at: list[float] = []

    def commit() -> None:
        committed_at.append(time.monotonic())
        blocker.execute("COMMIT")

    release = threading.Timer(0.3, commit)
    release.start()
    try:
        outcome = run(provider.verify(sent.request_id, KNOWN_CODE))
        answered_at = time.monotonic()
    finally:
        release.join()
        blocker.close()
    assert outcome == VerifyOutcome(True, 2)
    # It answered after the lock was released (it waited), however long the machine took.
    assert committed_at and answered_at >= committed_at[0]


# -- concurrency ----------------------------------------------------------------------------


def _settle(results: list[Any]) -> tuple[list[VerifyOutcome], list[BaseException]]:
    outcomes = [r for r in results if isinstance(r, VerifyOutcome)]
    errors = [r for r in results if not isinstance(r, VerifyOutcome)]
    return outcomes, errors


def test_concurrent_right_answers_in_tasks_across_two_instances_verify_once(db: Path) -> None:
    one, _ = make(db, code=KNOWN_CODE)
    two, _ = make(db)
    sent = run(one.send(request()))

    async def race() -> list[Any]:
        calls = [(one, two)[i % 2].verify(sent.request_id, KNOWN_CODE) for i in range(20)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes, errors = _settle(run(race()))
    assert outcomes == [VerifyOutcome(True, 2)]
    assert len(errors) == 19
    assert all(type(e) is CodeNotFound for e in errors), errors


def test_concurrent_right_answers_in_threads_verify_once(db: Path) -> None:
    one, _ = make(db, code=KNOWN_CODE)
    two, _ = make(db)
    sent = run(one.send(request()))
    barrier = threading.Barrier(20)
    results: list[Any] = [None] * 20

    def answer(i: int) -> None:
        barrier.wait()
        try:
            results[i] = run((one, two)[i % 2].verify(sent.request_id, KNOWN_CODE))
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    outcomes, errors = _settle(results)
    assert outcomes == [VerifyOutcome(True, 2)]
    assert len(errors) == 19
    assert all(type(e) is CodeNotFound for e in errors), errors


def test_concurrent_wrong_answers_use_each_attempt_once(db: Path) -> None:
    one, _ = make(db, code=KNOWN_CODE)
    two, _ = make(db)
    sent = run(one.send(request(max_attempts=3)))
    barrier = threading.Barrier(20)
    results: list[Any] = [None] * 20

    def answer(i: int) -> None:
        barrier.wait()
        try:
            results[i] = run((one, two)[i % 2].verify(sent.request_id, "000000"))
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    outcomes, errors = _settle(results)
    assert sorted(o.attempts_left for o in outcomes) == [0, 1, 2]
    assert not any(o.verified for o in outcomes)
    assert len(errors) == 17
    assert all(type(e) is CodeNotFound for e in errors), errors


# -- the rules as a state machine -----------------------------------------------------------


@dataclass
class Expected:
    code: str
    expires_at: float
    max_attempts: int
    attempts_left: int
    answered: int = 0
    used: bool = False

    def live(self, now: float) -> bool:
        return not self.used and self.attempts_left > 0 and now < self.expires_at


class SandboxRules(RuleBasedStateMachine):
    """A model of SignalWire's rules; the sandbox must answer exactly like it."""

    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.clock = FakeClock(T0)
        self.inbox = Inbox()
        self.db = Path(self.dir.name) / "codes.db"
        self.provider = SandboxProvider(self.db, deliver=self.inbox, clock=self.clock)
        self.expected: dict[str, Expected] = {}

    @rule(
        target=requests,
        token_length=st.integers(1, 8),
        valid_for=st.integers(1, 120),
        max_attempts=st.integers(1, 4),
    )
    def send(self, token_length: int, valid_for: int, max_attempts: int) -> str:
        sent = run(
            self.provider.send(
                request(token_length=token_length, valid_for=valid_for, max_attempts=max_attempts)
            )
        )
        code = self.inbox.last.code
        assert self.inbox.last.request_id == sent.request_id
        assert len(code) == token_length and code.isdigit()
        self.expected[sent.request_id] = Expected(
            code=code,
            expires_at=self.clock.now + valid_for,
            max_attempts=max_attempts,
            attempts_left=max_attempts,
        )
        return sent.request_id

    @rule(seconds=st.floats(0, 150, allow_nan=False))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(request_id=requests)
    def wait_until_expiry(self, request_id: str) -> None:
        self.clock.now = max(self.clock.now, self.expected[request_id].expires_at)

    @rule(request_id=requests, right=st.booleans(), data=st.data())
    def verify(self, request_id: str, right: bool, data: st.DataObject) -> None:
        exp = self.expected[request_id]
        if right:
            guess = exp.code
        else:
            guess = data.draw(st.text("0123456789", max_size=9).filter(lambda g: g != exp.code))
        if not exp.live(self.clock.now):
            try:
                run(self.provider.verify(request_id, guess))
            except CodeNotFound:
                return
            raise AssertionError("a gone request was answered")
        outcome = run(self.provider.verify(request_id, guess))
        exp.attempts_left -= 1
        exp.answered += 1
        exp.used = outcome.verified
        assert outcome.verified is right
        assert outcome.attempts_left == exp.attempts_left
        assert exp.answered <= exp.max_attempts
        assert self.clock.now < exp.expires_at

    @rule(request_id=st.uuids().map(str))
    def verify_unknown(self, request_id: str) -> None:
        try:
            run(self.provider.verify(request_id, "1"))
        except CodeNotFound:
            return
        raise AssertionError("an unknown request was answered")

    @invariant()
    def live_count_matches(self) -> None:
        live = sum(e.live(self.clock.now) for e in self.expected.values())
        assert self.provider.pending_count() == live

    def teardown(self) -> None:
        run(self.provider.aclose())
        self.dir.cleanup()


SandboxRules.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSandboxRules = SandboxRules.TestCase
