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


# A move's source end is removed on the target too: a tree removal and a move out from
# below it must not run at the same time either (rmtree would meet an entry gone under it,
# or follow a moved directory's contents to their new name and remove them there).
def test_a_tree_removal_waits_for_a_file_move_out_of_it_in_flight(j):
    j.enqueue_move(S, "a/x.jpg", "b/y.jpg", is_dir=False)
    move = j.claim(T, 10)
    assert paths(move) == ["b/y.jpg"]
    j.enqueue([Change(S, "a", "delete", tree=True)])
    assert j.claim(T, 10) == []              # the move out of a/ is still in flight
    done(j, move, "move")
    old_name = j.claim(T, 10)                # the delete of the move's old name, then a/
    assert paths(old_name) == ["a/x.jpg"]
    done(j, old_name, "delete")
    assert paths(j.claim(T, 10)) == ["a"]


def test_a_file_move_out_of_a_tree_being_removed_waits(j, clock):
    j.enqueue_move(S, "a/x.jpg", "b/y.jpg", is_dir=False)
    move = j.claim(T, 10)
    j.ack([Outcome(move[0], error="SlowDown")])    # retried later: ready after the removal
    j.enqueue([Change(S, "a", "delete", tree=True)])
    removal = j.claim(T, 10)
    assert paths(removal) == ["a"]
    clock.now += 3600
    assert j.claim(T, 10) == []              # the removal of the move's source tree runs
    done(j, removal, "delete")
    assert paths(j.claim(T, 10)) == ["b/y.jpg"]


def test_a_tree_removal_waits_for_a_directory_move_out_of_it(j):
    j.enqueue_move(S, "a/d", "b/d", is_dir=True)
    move = j.claim(T, 10)
    assert paths(move) == ["b/d"]
    j.enqueue([Change(S, "a", "delete", tree=True)])
    assert j.claim(T, 10) == []              # rmtree would follow a/d's contents to b/d
    done(j, move, "move")
    old_name = j.claim(T, 10)                # the delete of the move's old name, then a/
    assert paths(old_name) == ["a/d"]
    done(j, old_name, "delete")
    assert paths(j.claim(T, 10)) == ["a"]


def test_a_directory_move_out_of_a_tree_being_removed_waits(j, clock):
    j.enqueue_move(S, "a/d", "b/d", is_dir=True)
    move = j.claim(T, 10)
    j.ack([Outcome(move[0], error="SlowDown")])
    j.enqueue([Change(S, "a", "delete", tree=True)])
    removal = j.claim(T, 10)
    assert paths(removal) == ["a"]
    clock.now += 3600
    assert j.claim(T, 10) == []
    done(j, removal, "delete")
    assert paths(j.claim(T, 10)) == ["b/d"]


def test_a_move_from_elsewhere_runs_beside_a_tree_removal(j):
    j.enqueue_move(S, "c/x.jpg", "b/y.jpg", is_dir=False)
    j.enqueue([Change(S, "a", "delete", tree=True)])
    assert sorted(paths(j.claim(T, 10))) == ["a", "b/y.jpg"]


def test_a_put_waits_for_an_older_removal_above_it_behind_a_newer_one(j, clock):
    # the newest barrier covering the put waits for the older one; that the newest is not
    # in flight must not let the put run beside the older one, which is
    j.enqueue([Change(S, "a/b/x.jpg", "put", delay=5.0)])   # queued first, ready later
    j.enqueue([Change(S, "a", "delete", tree=True)])
    removal = j.claim(T, 10)
    assert paths(removal) == ["a"]
    j.enqueue([Change(S, "a/b", "delete", tree=True)])     # waits for the removal of a
    clock.now += 10
    assert j.claim(T, 10) == []
    done(j, removal, "delete")
    inner = j.claim(T, 10)
    assert paths(inner) == ["a/b"]                          # then the put, not beside it
    done(j, inner, "delete")
    assert paths(j.claim(T, 10)) == ["a/b/x.jpg"]


def test_a_delete_below_a_tree_removal_in_flight_waits_behind_a_newer_removal_above(j):
    # seen in the churn test's trace: rmtree of a/ at the source turns the rows of a/b/ (an
    # old mkdir), a/b/x.jpg and a/ (a newer chmod) into deletes; a/b's tree removal ran
    # while a/b/x.jpg's delete ran beside it (the newest barrier over it, a/, was not in
    # flight), so rmtree met a file gone under it
    j.enqueue([Change(S, "a/b", "mkdir")])
    j.enqueue([Change(S, "a/b/x.jpg", "put")])
    j.enqueue([Change(S, "a", "attr")])
    j.enqueue([Change(S, "a/b/x.jpg", "delete"), Change(S, "a/b", "delete", tree=True),
               Change(S, "a", "delete", tree=True)])
    # every row below a tree removal waits for it, queued before it or after
    # (EnqueueMixin._wait_below): a/ goes first, then a/b, then x.jpg, never two together
    outer = j.claim(T, 1)
    assert paths(outer) == ["a"]
    assert j.claim(T, 10) == []              # a/b and x.jpg's delete wait for a/
    done(j, outer, "delete")
    inner = j.claim(T, 10)
    assert paths(inner) == ["a/b"]
    assert j.claim(T, 10) == []              # x.jpg's delete waits for a/b
    done(j, inner, "delete")
    assert paths(j.claim(T, 10)) == ["a/b/x.jpg"]
