"""The one shipping loop (mirrord.pipeline) with serial workers, a memory target, a real
journal and a fake clock: no threads, no sleeps, one fixed order."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from mirrord import pipeline as pipeline_mod
from mirrord.errors import PermanentError, RetryableError
from mirrord.journal import Change, Journal, read_backlog
from mirrord.pipeline import MAX_ATTEMPTS, Pipeline, Ticket
from mirrord.shipper import SerialExecutor, Shipper, serial
from mirrord.targets.memory import MemoryTarget
from tests.fakes import Clock
from tests.unit.test_reconcile import source


class Picky(MemoryTarget):
    """A memory target on which chosen paths fail with a chosen error."""

    def __init__(self):
        super().__init__("memory")
        self.refuse: dict[str, Exception] = {}

    def _check(self, op: str, path: str) -> None:
        super()._check(op, path)
        if path in self.refuse:
            raise self.refuse[path]


class Env:
    def __init__(self, tmp_path: Path, files: dict[str, bytes], *, ship: bool = True):
        self.clock = Clock()
        self.src = source(tmp_path, files)
        self.target = Picky()
        self.journal = Journal(tmp_path / "journal.db", {"up": ("memory",)}, clock=self.clock)
        self.shipper = Shipper({"memory": self.target}, [self.src], {"memory": 2},
                               executor=serial) if ship else None
        self.rescans: list = []
        self.lost: list[bool] = []
        self.errors: list[Exception] = []
        self.pipeline = Pipeline(self.journal, self.shipper, clock=self.clock, idle=self.advance,
                                 on_rescan=self.rescans.append, on_lost=lambda: self.lost.append(True),
                                 on_journal_error=self.errors.append)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def stats(self) -> dict:
        return read_backlog(self.journal.db, ["memory"])["memory"]

    def ops(self) -> int:
        return self.journal.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path, {"a": b"1", "b": b"22", "d/x": b"x"})
    yield e
    e.journal.close()


def puts(*paths: str) -> list[Change]:
    return [Change("up", p, "put", size=len(p), time=1.0) for p in paths]


def test_records_ships_and_acks_with_serial_workers(env):
    env.pipeline.record(puts("a", "b"))
    env.pipeline.pump()        # claims and ships within the call: the executor is serial
    env.pipeline.pump()        # records what the workers did
    assert {p: v[0] for p, v in env.target.files.items()} == {"a": b"1", "b": b"22"}
    assert env.ops() == 0 and env.stats().extra["shipped"] == 2
    assert not env.pipeline.busy()


def test_the_serial_executor_runs_a_call_at_submit_and_keeps_its_error():
    fut = SerialExecutor().submit(lambda: 1 / 0)
    assert fut.done() and isinstance(fut.exception(), ZeroDivisionError)


def test_a_journal_write_error_holds_the_changes_and_retries(env, monkeypatch):
    real = env.journal.enqueue
    fails = [sqlite3.OperationalError("database or disk is full")]

    def enqueue(changes):
        if fails:
            raise fails.pop()
        return real(changes)

    monkeypatch.setattr(env.journal, "enqueue", enqueue)
    ticket = Ticket("memory")
    ticket.propose(puts("a"))
    env.pipeline.record(puts("a"), ticket)
    assert env.pipeline.holding and env.ops() == 0 and len(env.errors) == 1
    assert env.pipeline.wait(ticket, timeout=10)
    assert ticket.done == 1 and not ticket.failed and "a" in env.target.files


def test_held_changes_past_the_limit_are_dropped_and_a_rescan_asked_for(env, monkeypatch):
    monkeypatch.setattr(pipeline_mod, "MAX_JOURNAL_BACKLOG", 2)
    monkeypatch.setattr(env.journal, "enqueue", lambda changes: (_ for _ in ()).throw(
        sqlite3.OperationalError("disk I/O error")))
    ticket = Ticket("memory")
    ticket.propose(puts("a", "b", "d/x"))
    env.pipeline.record(puts("a", "b", "d/x"), ticket)
    assert env.lost == [True] and not env.pipeline.holding
    assert ticket.settled() and len(ticket.failed) == 3 and "dropped" in ticket.failed[0]


def test_an_ack_error_holds_the_outcomes_and_the_rows_stay_claimed(env, monkeypatch):
    real = env.journal.ack
    fails = [sqlite3.OperationalError("disk I/O error")]

    def ack(outcomes):
        if fails:
            raise fails.pop()
        return real(outcomes)

    monkeypatch.setattr(env.journal, "ack", ack)
    env.pipeline.record(puts("a"))
    env.pipeline.pump()
    env.pipeline.pump()        # the ack fails: held
    assert env.pipeline.unacked and env.journal.db.execute(
        "SELECT claimed FROM ops").fetchone()[0] != 0
    assert env.journal.claim("memory", 10) == []   # never handed out twice
    env.pipeline.pump()
    assert not env.pipeline.unacked and env.ops() == 0


def test_wait_tells_done_from_failed_after_max_attempts(env):
    env.target.refuse["b"] = RetryableError("connection reset")
    ticket = Ticket("memory")
    ticket.propose(puts("a", "b"))
    env.pipeline.record(puts("a", "b"), ticket)
    assert env.pipeline.wait(ticket)
    assert ticket.done == 1 and ticket.bytes == 1
    [failed] = ticket.failed
    assert "'b'" in failed and "connection reset" in failed
    attempts = env.journal.db.execute("SELECT attempts FROM ops").fetchone()[0]
    assert attempts == MAX_ATTEMPTS             # left in the journal for the daemon


def test_a_permanent_error_fails_at_once(env):
    env.target.refuse["a"] = PermanentError("access denied")
    ticket = Ticket("memory")
    ticket.propose(puts("a"))
    env.pipeline.record(puts("a"), ticket)
    assert env.pipeline.wait(ticket)
    assert env.journal.db.execute("SELECT attempts FROM ops").fetchone()[0] == 1
    assert "access denied" in ticket.failed[0]


def test_without_a_shipper_it_only_records_and_waits_up_to_the_timeout(tmp_path):
    e = Env(tmp_path, {"a": b"1"}, ship=False)
    ticket = Ticket("memory")
    ticket.propose(puts("a"))
    e.pipeline.record(puts("a"), ticket)
    assert not e.pipeline.wait(ticket, timeout=5)
    assert "still queued after 5s" in ticket.failed[0] and e.ops() == 1
    assert e.target.files == {}
    e.journal.close()


def test_a_rescan_request_goes_to_the_callback(env):
    # a tree delete of d finds a directory there again: what is below must be re-sent
    env.pipeline.record([Change("up", "d", "delete", tree=True, time=1.0)])
    env.pipeline.pump()
    env.pipeline.pump()
    [out] = env.rescans
    assert out.op.path == "d" and out.rescan


def test_retries_are_logged_once_per_distinct_error(env, caplog):
    for p in ("a", "b", "d/x"):
        env.target.refuse[p] = RetryableError("link down")
    env.pipeline.record(puts("a", "b", "d/x"))
    with caplog.at_level(logging.WARNING, logger="mirrord"):
        env.pipeline.pump()
        env.pipeline.pump()
    [line] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert "ops=3" in line and "link down" in line


def test_errors_of_one_cause_naming_each_its_own_path_are_one_line(env, caplog):
    """A directory made immutable fails each put with an error naming that file (the
    target's path, below a dest here): one line per cause, not one per file; another
    cause is a line of its own."""
    for p in ("a", "b"):
        env.target.refuse[p] = PermanentError(f"EPERM: Operation not permitted: 'site/{p}'")
    env.target.refuse["d/x"] = PermanentError("ENOSPC: No space left on device: 'site/d/x'")
    env.pipeline.record(puts("a", "b", "d/x"))
    with caplog.at_level(logging.WARNING, logger="mirrord"):
        env.pipeline.pump()
        env.pipeline.pump()
    lines = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(lines) == 2, lines
    [eperm] = [line for line in lines if "EPERM" in line]
    assert "ops=2" in eperm and "'site/a'" in eperm, eperm


def test_a_file_still_open_for_writing_is_a_wait_not_a_failure(env, caplog):
    writer = open(env.src.path / "a", "ab")   # noqa: SIM115 - held open on purpose
    try:
        env.pipeline.record(puts("a"))
        with caplog.at_level(logging.WARNING, logger="mirrord"):
            env.pipeline.pump()
            env.pipeline.pump()
        b = env.stats()
        assert b.extra["failed"] == 0 and b.extra["busy"] == 1
        assert b.failing == 0 and b.waiting == 1 and b.extra["last_error"] is None
        assert "retrying" not in caplog.text
    finally:
        writer.close()
    env.advance(60)
    env.pipeline.pump()
    env.pipeline.pump()
    assert env.ops() == 0 and "a" in env.target.files


def test_a_ticket_is_waited_for_from_another_thread(env):
    ticket = Ticket("memory")
    ticket.propose(puts("a"))
    assert not ticket.wait(0)                  # proposed, not yet recorded: not settled
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(ticket.wait(30)))
    waiter.start()
    env.pipeline.record(puts("a"), ticket)
    while waiter.is_alive():
        env.pipeline.pump()
        env.pipeline.poll_tickets(force=True)
        waiter.join(0.01)
    assert waited == [True] and ticket.done == 1


def test_a_stop_ends_the_wait_without_settling(env):
    ticket = Ticket("memory")
    ticket.propose(puts("a"))
    stop = threading.Event()
    stop.set()
    assert not ticket.wait(None, stop) and not ticket.settled()
