"""A directory op (tree removal, directory move) and an op below its path never run at the
same time, whichever was queued first. Found by the churn test: a put that had observed
its file just before the source tree was removed finished after the tree removal on the
target and left the file's parent directories there for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.journal import Change, Journal, Outcome
from tests.fakes import Clock

S, T = "up", "t"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def j(tmp_path: Path, clock: Clock) -> Journal:
    jr = Journal(tmp_path / "journal.db", {S: (T,)}, clock=clock)
    yield jr
    jr.close()


def paths(ops) -> list[str]:
    return [op.path for op in ops]


def done(j: Journal, ops, kind: str = "put") -> None:
    j.ack([Outcome(op, kind, is_dir=op.is_dir) for op in ops])


def test_a_tree_removal_waits_for_a_put_below_it_already_in_flight(j):
    j.enqueue([Change(S, "a/b/x.jpg", "put")])
    put = j.claim(T, 10)
    assert paths(put) == ["a/b/x.jpg"]
    j.enqueue([Change(S, "a", "delete", tree=True)])
    assert j.claim(T, 10) == []              # the put below is still in flight
    done(j, put)
    assert paths(j.claim(T, 10)) == ["a"]


def test_a_put_queued_before_a_tree_removal_waits_while_the_removal_runs(j, clock):
    j.enqueue([Change(S, "a/x.jpg", "put", delay=5.0)])   # ready only later
    j.enqueue([Change(S, "a", "delete", tree=True)])
    removal = j.claim(T, 10)
    assert paths(removal) == ["a"]
    clock.now += 10
    assert j.claim(T, 10) == []              # the removal above it is in flight
    done(j, removal, "delete")
    assert paths(j.claim(T, 10)) == ["a/x.jpg"]


def test_a_directory_move_waits_for_work_below_its_source(j):
    j.enqueue([Change(S, "old/x.jpg", "put")])
    inflight = j.claim(T, 10)
    j.enqueue_move(S, "old", "new", is_dir=True)   # work below: kept as delete + re-send
    first = j.claim(T, 10)
    assert "old" not in paths(first)               # the tree removal of old waits
    done(j, inflight)
    done(j, first, "mkdir")
    assert "old" in paths(j.claim(T, 10))


def test_unrelated_paths_are_not_held_back(j):
    j.enqueue([Change(S, "a/x.jpg", "put")])
    inflight = j.claim(T, 10)
    j.enqueue([Change(S, "b", "delete", tree=True), Change(S, "ab/y.jpg", "put")])
    assert sorted(paths(j.claim(T, 10))) == ["ab/y.jpg", "b"]
    done(j, inflight)
