"""A held version counts once as overwritten, however many writes report it before it is
replaced (mirrord.alarm_replaced): a slow writer's rewrite in place was reported once per
pause and at its close, and each report counted the same shipped version again (20 files
rewritten in 3 writes counted 80). Real journal; batches through count_batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.alarm_batch import count_batch
from mirrord.alarm_replaced import Replaced
from mirrord.daemon_alarm_resend import Resends
from mirrord.journal import Change, Journal, Outcome
from tests.fakes import Clock

S, T, T2 = "up", "t", "t2"
LATER = 1e12


@pytest.fixture
def j(tmp_path: Path):
    jr = Journal(tmp_path / "journal.db", {S: (T, T2)}, clock=Clock())
    yield jr
    jr.close()


def ship(j: Journal, path: str, *, size: int, targets=(T, T2)) -> None:
    j.enqueue([Change(S, path, "put", targets=tuple(targets))])
    for t in targets:
        j.ack([Outcome(op, "put", size=size, mtime_ns=size) for op in j.claim(t, 100, now=LATER)])


def counter(j: Journal, replaced: Replaced | None):
    resends = Resends(lambda s, p: 0, lambda s, p: False, lambda: 0.0)

    def write(path: str) -> int:
        """One batch: the write of `path`, counted, then recorded (as the daemon does)."""
        n = count_batch(j, resends, S, [Change(S, path, "put")], replaced=replaced)
        j.enqueue([Change(S, path, "put")])
        return n
    return write


def test_the_writes_of_one_slow_rewrite_count_the_shipped_version_once(j):
    ship(j, "f", size=1)
    write = counter(j, Replaced())
    assert [write("f"), write("f"), write("f")] == [1, 0, 0]
    write_before = counter(j, None)
    assert write_before("f") == 1                           # the code before: each one


def test_a_put_in_flight_over_the_shipped_version_replaces_that_one(j):
    ship(j, "f", size=1)
    write = counter(j, Replaced())
    assert write("f") == 1
    j.claim(T, 100, now=LATER)                               # the put of the rewrite, in flight
    assert write("f") == 0


def test_a_new_version_acked_counts_again(j):
    ship(j, "f", size=1)
    write = counter(j, Replaced())
    assert write("f") == 1
    for t in (T, T2):
        j.ack([Outcome(op, "put", size=2, mtime_ns=2) for op in j.claim(t, 100, now=LATER)])
    assert write("f") == 1                                   # that version is replaced now


def test_a_new_version_on_one_target_counts_again(j):
    ship(j, "f", size=1)
    write = counter(j, Replaced())
    assert write("f") == 1
    j.ack([Outcome(op, "put", size=2, mtime_ns=2) for op in j.claim(T, 100, now=LATER)])
    assert write("f") == 1


def test_paths_are_apart_and_the_bound_counts_again(j):
    ship(j, "a", size=1)
    ship(j, "b", size=1)
    write = counter(j, Replaced(limit=1))
    assert [write("a"), write("b"), write("a")] == [1, 1, 1]   # a forgotten: once more
    assert write("a") == 0
