"""Held deletes on a real SQLite journal: what is claimed while a source's deletes are held,
ordering against directory barriers, surviving a reopen, migrating a schema-3 database,
and the lookups the alarm counts with."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mirrord.journal import SCHEMA_VERSION, Change, Journal, Outcome, connect
from mirrord.journal import removed_files
from mirrord.journal.holds import PARKED, read_holds, release
from tests.fakes import Clock

S, OTHER, T = "up", "other", "t"
LATER = 1e12   # claim "now": past every backoff


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.db"


@pytest.fixture
def j(path: Path, clock: Clock) -> Journal:
    jr = Journal(path, {S: (T,), OTHER: (T,)}, clock=clock)
    yield jr
    jr.close()


def ch(path: str, kind: str, source: str = S, **kw) -> Change:
    return Change(source, path, kind, **kw)


def claimed(j: Journal) -> dict[str, object]:
    """Every ready row, as a target without directories hands them out (a row and the rows
    below its path in flight together; on a target with directories they go one after the
    other: tests/integration/test_ops_at_and_below_a_path.py)."""
    return {op.path: op for op in j.claim(T, 1000, now=LATER, directories=False)}


def ack(j: Journal, *ops, kind: str | None = None) -> None:
    j.ack([Outcome(op, kind or op.kind, is_dir=op.is_dir) for op in ops])


def test_held_deletes_are_not_claimed_while_everything_else_is(j):
    j.enqueue([ch("gone.txt", "delete"), ch("new.txt", "put"), ch("d", "mkdir"),
               ch("chmod.txt", "attr"), ch("o.txt", "delete", source=OTHER)])
    assert j.hold_deletes(S, reason="test") is True
    assert j.hold_deletes(S, reason="again") is False        # the first hold is kept
    assert j.count_ready(T, 100, now=LATER) == 4               # claim and count agree
    got = claimed(j)
    assert set(got) == {"new.txt", "d", "chmod.txt", "o.txt"}   # another source's delete goes
    ack(j, *got.values())
    assert claimed(j) == {}
    (h,) = read_holds(j.db)
    assert (h.source, h.reason, h.waiting) == (S, "test", 1)


def test_resume_releases_the_held_deletes(j):
    j.enqueue([ch(f"f{i}", "delete") for i in range(5)])
    j.hold_deletes(S, reason="test")
    assert claimed(j) == {}
    (lifted,) = j.resume_deletes(S)
    assert (lifted.source, lifted.waiting) == (S, 5)
    assert set(claimed(j)) == {f"f{i}" for i in range(5)}
    assert j.resume_deletes(S) == []                            # nothing held any more


def test_each_resume_is_noted_once_for_the_daemon_to_take(j, path):
    """release() notes each lifted source in kv; take_resumed() hands each out once, also
    to another connection (resume-deletes is another process, or ran while stopped)."""
    assert j.take_resumed() == {}
    j.hold_deletes(S, reason="x")
    j.hold_deletes(OTHER, reason="y")
    assert j.take_resumed() == {}
    other = connect(path)
    try:
        release(other)
    finally:
        other.close()
    assert j.take_resumed() == {S: 0, OTHER: 0}
    assert j.take_resumed() == {}
    assert j.resume_deletes(S) == [] and j.take_resumed() == {}   # nothing lifted


def test_resume_one_source_leaves_the_other_held(j):
    j.enqueue([ch("a", "delete"), ch("b", "delete", source=OTHER)])
    j.hold_deletes(S, reason="x")
    j.hold_deletes(OTHER, reason="y")
    assert [h.source for h in j.resume_deletes(OTHER)] == [OTHER]
    assert set(claimed(j)) == {"b"}
    assert j.held_sources() == {S}


def test_a_file_recreated_over_a_held_delete_is_shipped(j):
    j.enqueue([ch("x.jpg", "delete")])
    j.hold_deletes(S, reason="test")
    j.enqueue([ch("x.jpg", "put")])          # coalesces: the row is a put now, the source has it
    assert set(claimed(j)) == {"x.jpg"}


def test_a_held_tree_removal_keeps_later_rows_below_it_waiting(j):
    """A put below a removed directory, recorded after the removal, must not overtake it:
    shipped first, it would be deleted by the removal once resumed."""
    j.enqueue([ch("old/early.txt", "put")])                     # before the removal
    j.enqueue([ch("old", "delete", tree=True)])
    j.hold_deletes(S, reason="test")
    j.enqueue([ch("old", "mkdir"), ch("old/late.txt", "put"), ch("elsewhere.txt", "put")])
    got = claimed(j)
    # the removal (now "remove the tree, then mkdir": tree = 1) is held; the rows below it,
    # queued before it (EnqueueMixin._wait_below) or after, wait for it; elsewhere is untouched
    assert set(got) == {"elsewhere.txt"}
    ack(j, *got.values())
    assert claimed(j) == {}
    j.resume_deletes()
    got = claimed(j)
    assert set(got) == {"old"} and got["old"].tree               # the removal first...
    ack(j, got["old"])
    assert set(claimed(j)) == {"old/early.txt", "old/late.txt"}  # ...then what is below it


def test_a_put_claimed_before_a_held_removal_still_blocks_it_until_acked(j):
    """The in-flight overlap rule (barriers.overlaps_inflight) holds after a resume too."""
    j.enqueue([ch("d/f.txt", "put")])
    (op,) = claimed(j).values()
    j.enqueue([ch("d", "delete", tree=True)])
    j.hold_deletes(S, reason="test")
    assert claimed(j) == {}
    j.resume_deletes(S)
    assert claimed(j) == {}                   # d/f.txt still in flight: the removal waits
    ack(j, op)
    assert set(claimed(j)) == {"d"}


def test_held_deletes_are_no_backlog_to_wait_for(j):
    """has_more_ops_than leaves out deletes held by an alarm: they wait for resume-deletes,
    and the walk for hard links' other names (and a scheduled pass) waited with them, on
    every source, until an operator resumed one of them (a review, helper-137)."""
    j.enqueue([ch(f"d{i}.jpg", "delete") for i in range(5)] + [ch("t", "delete", tree=True)])
    assert j.has_more_ops_than(5)
    j.hold_deletes(S, reason="test")
    assert not j.has_more_ops_than(0)
    j.enqueue([ch("new.jpg", "put"), ch("o.jpg", "delete", source=OTHER)])
    assert j.has_more_ops_than(1) and not j.has_more_ops_than(2)   # a put, another's delete
    j.resume_deletes(S)
    assert j.has_more_ops_than(7) and not j.has_more_ops_than(8)


def test_the_hold_survives_a_restart(path, clock):
    jr = Journal(path, {S: (T,)}, clock=clock)
    jr.enqueue([ch("a", "delete")])
    jr.hold_deletes(S, reason="alarm", since=123.0)
    jr.close()
    again = Journal(path, {S: (T,)}, clock=clock)
    try:
        assert again.held_sources() == {S}
        assert again.claim(T, 10, now=LATER) == []
        (h,) = again.resume_deletes()
        assert (h.since, h.reason, h.waiting) == (123.0, "alarm", 1)
        assert [op.path for op in again.claim(T, 10, now=LATER)] == ["a"]
    finally:
        again.close()


def test_a_hold_lifted_by_another_connection_is_seen_at_the_next_claim(j, path):
    """`mirrord resume-deletes` writes from another process while the daemon runs."""
    j.enqueue([ch("a", "delete")])
    j.hold_deletes(S, reason="x")
    assert claimed(j) == {}
    other = connect(path)
    try:
        assert [h.source for h in release(other, S)] == [S]
    finally:
        other.close()
    j.enqueue([ch("b", "delete")])            # recorded after the resume: due at once
    assert set(claimed(j)) == {"a", "b"}


def test_held_rows_are_parked_out_of_the_claim_scan_and_due_again_on_resume(j):
    j.enqueue([ch("early", "delete")])
    j.hold_deletes(S, reason="x")
    j.enqueue([ch("late", "delete"), ch("d", "delete", tree=True), ch("kept", "put")])
    j.enqueue([ch("early", "attr")])          # an attr change keeps the delete: still parked
    parked = {bytes(p).decode() for (p,) in j.db.execute(
        "SELECT path FROM ops WHERE next_try = ?", (PARKED,))}
    assert parked == {"early", "late", "d"}
    j.resume_deletes()
    assert j.db.execute("SELECT COUNT(*) FROM ops WHERE next_try = ?", (PARKED,)).fetchone()[0] == 0
    assert set(claimed(j)) == {"early", "late", "d", "kept"}


def make_v3(path: Path, clock: Clock) -> None:
    """A schema-3 database with a pending delete: today's tables without `holds`."""
    jr = Journal(path, {S: (T,)}, clock=clock)
    jr.enqueue([ch("pending.txt", "delete")])
    jr.db.execute("DROP TABLE holds")
    jr.db.execute("PRAGMA user_version = 3")
    jr.close()


def test_a_schema_3_database_is_migrated_and_keeps_its_rows(path, clock):
    make_v3(path, clock)
    ro = connect(path, readonly=True)          # status on an old file: no holds, no error
    try:
        assert read_holds(ro) == []
    finally:
        ro.close()
    jr = Journal(path, {S: (T,)}, clock=clock)
    try:
        assert jr.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert jr.held_sources() == set()
        jr.hold_deletes(S, reason="x")
        assert jr.claim(T, 10, now=LATER) == []
        jr.resume_deletes()
        assert [op.path for op in jr.claim(T, 10, now=LATER)] == ["pending.txt"]
    finally:
        jr.close()


def test_overwrites_and_files_removed_with(j):
    j.enqueue([ch("d", "mkdir"), ch("d/a", "put"), ch("d/b", "put"), ch("d/s/c", "put"),
               ch("top", "put")])
    got = claimed(j)
    j.ack([Outcome(op, op.kind, is_dir=op.is_dir, size=1) for op in got.values()])
    assert j.overwrites(S, "d/a") and j.overwrites(S, "top")
    assert not j.overwrites(S, "d/new") and not j.overwrites(S, "d")   # a directory is no file
    assert j.files_removed_with(S, "d") == 3                  # d/a, d/b, d/s/c; not d/ itself
    j.enqueue([ch("d/a", "delete")])                          # already counted on its own
    assert j.files_removed_with(S, "d") == 2
    assert j.files_removed_with(S, "nothing") == 0


def _landed(j: Journal, *paths: str) -> dict[str, object]:
    """`paths` put and claimed, not acked: the worker may have stored them already."""
    j.enqueue([ch(p, "put") for p in paths])
    return claimed(j)


def test_a_file_with_its_put_in_flight_is_held_by_the_target(j):
    """An overwrite is a write over a file the target holds or may hold: acked or landing."""
    got = _landed(j, "d/a", "d/b")
    assert j.overwrites(S, "d/a")                             # claimed, not acked yet
    j.enqueue([ch("d/b", "delete")])                           # the row is a delete now
    assert not j.overwrites(S, "d/b")
    ack(j, got["d/a"])
    assert j.overwrites(S, "d/a")                             # the same answer once acked
    j.enqueue([ch("d/q", "put")])                              # queued, not claimed: not there
    assert not j.overwrites(S, "d/q")
    j.enqueue([ch("e", "mkdir")])
    claimed(j)
    assert not j.overwrites(S, "e")                            # a directory in flight: no file


def test_a_rename_in_flight_lands_a_file(j):
    j.enqueue([ch("a", "put")])
    ack(j, *claimed(j).values())
    assert j.enqueue_move(S, "a", "d/b", is_dir=False) == []
    assert [op.kind for op in claimed(j).values()] == ["move"]
    assert j.overwrites(S, "d/b")
    assert j.files_removed_with(S, "d") == 1


def test_a_tree_removal_counts_the_puts_in_flight_below_it(j):
    """The count of a tree removal does not depend on whether the puts were acked yet."""
    paths = [f"d/f{i}" for i in range(6)]
    got = _landed(j, *paths)
    assert j.files_removed_with(S, "d") == 6                  # none acked
    ack(j, got["d/f0"], got["d/f1"])
    assert j.files_removed_with(S, "d") == 6                  # two acked, four landing
    ack(j, *(got[p] for p in paths[2:]))
    assert j.files_removed_with(S, "d") == 6


def test_a_delete_recorded_over_a_put_in_flight_is_taken_off_once(j):
    """Counted on its own when recorded: off the tree's count, whether or not acked."""
    got = _landed(j, "d/a", "d/b", "d/c")
    ack(j, got["d/a"])
    j.enqueue([ch("d/a", "delete"), ch("d/b", "delete")])     # a: shipped; b: landing
    assert j.files_removed_with(S, "d") == 1                  # d/c only
    ack(j, got["d/b"])                                         # its put acked, delete runs next
    assert j.files_removed_with(S, "d") == 1
    assert j.files_removed_with(S, "d/c") == 0                 # a file is no directory


def test_queued_puts_below_a_removed_tree_are_not_counted(j):
    """A put not claimed yet never reached the target: the removal takes nothing of it."""
    j.enqueue([ch("d/new", "put")])
    assert j.files_removed_with(S, "d") == 0
    got = claimed(j)
    ack(j, got["d/new"])
    j.enqueue([ch("d/new", "put")])                            # a rewrite, queued: held once
    assert j.files_removed_with(S, "d") == 1
    claimed(j)
    assert j.files_removed_with(S, "d") == 1                   # shipped and landing: one file


def test_another_source_or_target_in_flight_is_not_counted(tmp_path, clock):
    jr = Journal(tmp_path / "j.db", {S: (T, "t2"), OTHER: (T,)}, clock=clock)
    try:
        jr.enqueue([Change(OTHER, "d/x", "put"), Change(S, "d/y", "put", targets=("t2",))])
        jr.claim(T, 10, now=LATER)
        jr.claim("t2", 10, now=LATER)
        assert jr.files_removed_with(S, "d") == 0             # S's first target is T
        assert jr.files_removed_with(S, "d", target="t2") == 1
        assert jr.overwrites(S, "d/y") and not jr.overwrites(S, "d/x")
        assert jr.overwrites(OTHER, "d/x")
    finally:
        jr.close()


def test_a_delete_in_flight_of_a_file_never_shipped_is_not_held(j):
    """The delete itself in flight (claimed at the row's seq): nothing landed there."""
    j.enqueue([ch("d/a", "put")])
    ack(j, *claimed(j).values())
    j.enqueue([ch("d/tmp", "put"), ch("d/tmp", "delete")])     # a temp file, gone before it went
    assert [op.kind for op in claimed(j).values()] == ["delete"]
    # d/a; d/tmp's delete, counted on its own when recorded, is no file the target holds:
    # not taken off (two in all for one file lost, the safe side)
    assert j.files_removed_with(S, "d") == 1
    assert not j.overwrites(S, "d/tmp")


def _moved(j: Journal, src: str, dst: str, *, is_dir: bool = False, kept: bool = True) -> None:
    """The rename recorded: kept as a move, or (`kept` False) a put of dst and delete of src."""
    assert j.enqueue_move(S, src, dst, is_dir=is_dir) == ([] if kept else [T])


@pytest.mark.parametrize("stage", ["queued", "claimed", "acked"])
def test_a_rename_inside_the_removed_tree_is_one_file(j, stage):
    """d/a renamed to d/b, then d removed: the target loses one file at every stage. The
    rename's source end (a delete carrying the new name) was taken off as a counted
    delete: 0 while queued."""
    j.enqueue([ch("d/a", "put")])
    ack(j, *claimed(j).values())
    _moved(j, "d/a", "d/b")
    if stage != "queued":
        got = claimed(j)
        assert [op.kind for op in got.values()] == ["move"]
        if stage == "acked":
            ack(j, *got.values())
    assert j.files_removed_with(S, "d") == 1


@pytest.mark.parametrize("stage", ["queued", "claimed"])
@pytest.mark.parametrize("old, new, held", [("d/a", "x", 0), ("x", "d/b", 1)],
                         ids=["out-of-d", "into-d"])
def test_a_rename_across_the_removed_tree(j, stage, old, new, held):
    """Renamed out of d: it leaves with its new name; renamed in: d's removal takes it."""
    j.enqueue([ch(old, "put")])
    ack(j, *claimed(j).values())
    _moved(j, old, new)
    if stage == "claimed":
        claimed(j)
    assert j.files_removed_with(S, "d") == held


def test_a_file_renamed_in_before_its_put_went_is_not_held(j):
    """x's put still queued: the rename is a put of d/b and a delete of x, nothing of it on
    the target yet; once that put is in flight, the removal takes d/b too."""
    j.enqueue([ch("d/keep", "put")])
    ack(j, *claimed(j).values())
    j.enqueue([ch("x", "put")])
    _moved(j, "x", "d/b", kept=False)
    assert j.files_removed_with(S, "d") == 1
    claimed(j)
    assert j.files_removed_with(S, "d") == 2


@pytest.mark.parametrize("stage", ["queued", "claimed"])
def test_a_directory_renamed_into_the_removed_tree_brings_its_files(j, stage):
    j.enqueue([ch("X", "mkdir"), ch("X/p", "put"), ch("X/q", "put"), ch("d", "mkdir")])
    ack(j, *claimed(j).values())
    _moved(j, "X", "d/Y", is_dir=True)
    if stage == "claimed":
        assert [op.kind for op in claimed(j).values()] == ["move"]
    assert j.files_removed_with(S, "d") == 2
    assert not j.overwrites(S, "d/Y")                           # a directory in flight: no file


def test_a_directory_in_flight_below_is_no_file(j):
    j.enqueue([ch("d", "mkdir"), ch("d/sub", "mkdir")])
    ack(j, claimed(j)["d"])
    j.enqueue([ch("d/sub", "delete", tree=True)])   # removed while its mkdir ran
    assert j.files_removed_with(S, "d") == 0


def test_a_removal_below_already_queued_counts_nothing_again(j):
    """`mv d/sub elsewhere`, then `rm -rf d`: d/sub's files were counted by its own removal;
    the nested removals below it too (d/sub/deep, and d/sub-x, which sorts between)."""
    files = ["d/a", "d/sub/p", "d/sub/q", "d/sub/deep/r", "d/sub-x/s", "d/sub-x/t"]
    j.enqueue([ch(f, "put") for f in files])
    ack(j, *claimed(j).values())
    j.enqueue([ch("d/sub/deep", "delete", tree=True)])
    assert j.files_removed_with(S, "d/sub") == 2
    j.enqueue([ch("d/sub", "delete", tree=True), ch("d/sub-x", "delete", tree=True)])
    assert j.files_removed_with(S, "d") == 1                   # d/a
    j.enqueue([ch("d/sub", "mkdir")])                           # made again: still removed first
    assert j.files_removed_with(S, "d") == 1


def test_a_directory_renamed_inside_the_removed_tree_is_not_taken_off(j):
    """d/old renamed to d/new with work pending below it: a tree removal of d/old carrying
    the new name and a re-send; no delete the alarm counted, and d's removal takes it."""
    j.enqueue([ch("d/old/p", "put"), ch("d/old/q", "put")])
    ack(j, *claimed(j).values())
    j.enqueue([ch("d/old/q", "put")])                           # pending below: no move kept
    _moved(j, "d/old", "d/new", is_dir=True, kept=False)
    assert j.files_removed_with(S, "d") == 2
    _moved(j, "d/new", "elsewhere", is_dir=True, kept=False)   # then out of d: they leave
    assert j.files_removed_with(S, "d") == 0


@pytest.mark.parametrize("stage", ["queued", "claimed"])
@pytest.mark.parametrize("made_again", [False, True], ids=["renamed", "rotated"])
def test_a_directory_renamed_inside_the_removed_tree_keeps_its_files(j, stage, made_again):
    """`mv d/sub d/sub2` kept as a move (`mkdir d/sub` after it: a rotation), then d
    removed: d/sub's source end is no removal counted before; its files are at d/sub2."""
    j.enqueue([ch(f, "put") for f in ["d/keep", *(f"d/sub/f{i}" for i in range(5))]])
    ack(j, *claimed(j).values())
    _moved(j, "d/sub", "d/sub2", is_dir=True)
    if made_again:
        j.enqueue([ch("d/sub", "mkdir")])
    if stage == "claimed":
        assert "d/sub2" in claimed(j)
    assert j.files_removed_with(S, "d") == 6


def test_the_new_name_of_a_rename_not_done_yet_holds_the_old_names_files(j):
    """`mv d e`, then e (or a directory below it) removed before the rename ran: the
    removal takes d's files, wherever the rename left them; renamed again with the first
    rename pending (not kept), the old names' removals carry the newest name."""
    j.enqueue([ch(f, "put") for f in [*(f"d/f{i}" for i in range(4)), "d/sub/x"]])
    ack(j, *claimed(j).values())
    _moved(j, "d", "e", is_dir=True)
    assert j.files_removed_with(S, "e") == 5
    assert j.files_removed_with(S, "e/sub") == 1
    _moved(j, "e", "f", is_dir=True, kept=False)
    assert j.files_removed_with(S, "f") == 5


def _ship(j: Journal, *paths: str) -> None:
    j.enqueue([ch(p, "put") for p in paths])
    ack(j, *claimed(j).values())


def _mv(j: Journal, src: str, dst: str) -> None:
    """A directory rename, kept as a move or not (whatever the journal makes of it)."""
    j.enqueue_move(S, src, dst, is_dir=True)


def _in_then_within(j):   # mv x d/y; mv d/y d/z (not kept: the first is pending)
    _ship(j, *(f"d/f{i}" for i in range(5)), *(f"x/g{i}" for i in range(10)))
    _mv(j, "x", "d/y")
    _mv(j, "d/y", "d/z")
    return "d", 15


def _twice_into_a_subdirectory(j):   # mv q r; mv r e/sub; then e removed
    _ship(j, *(f"e/f{i}" for i in range(3)), *(f"q/g{i}" for i in range(10)))
    _mv(j, "q", "r")
    _mv(j, "r", "e/sub")
    return "e", 13


def _below_a_renamed_twice(j):   # mv d e; mv e f; then f/sub removed
    _ship(j, *(f"d/f{i}" for i in range(5)), *(f"d/sub/s{i}" for i in range(10)))
    _mv(j, "d", "e")
    _mv(j, "e", "f")
    return "f/sub", 10


def _into_a_rename_not_done(j):   # mv d e (kept); mv q e/sub (not kept); then e/sub removed
    _ship(j, *(f"d/f{i}" for i in range(3)), *(f"q/g{i}" for i in range(10)))
    _mv(j, "d", "e")
    _mv(j, "q", "e/sub")
    return "e/sub", 10


def _out_and_back_acked_between(j):   # mv d/sub x, in flight; mv x d/sub3; the first acked
    _ship(j, *(f"d/f{i}" for i in range(5)), *(f"d/sub/s{i}" for i in range(10)))
    _mv(j, "d/sub", "x")
    got = claimed(j)
    _mv(j, "x", "d/sub3")
    ack(j, *got.values())
    return "d", 15


@pytest.mark.parametrize("story", [_in_then_within, _twice_into_a_subdirectory,
                                   _below_a_renamed_twice, _into_a_rename_not_done,
                                   _out_and_back_acked_between])
def test_a_removal_takes_what_renames_not_done_carry_into_it(j, story):
    """A directory's files still under an old name whose removal (a rename not kept)
    carries a new name at, above or below the removed directory: taken with it."""
    removed, lost = story(j)
    assert j.files_removed_with(S, removed) == lost


def _file_mv(j: Journal, src: str, dst: str) -> None:
    j.enqueue_move(S, src, dst, is_dir=False)


def _files_in_by_a_temp_name(j: Journal, directory: str, n: int = 3, stage: str = "queued") -> None:
    """`mv in/xI D/xI.tmp; mv D/xI.tmp D/xI` for n shipped files (an upload's rename to
    its final name); the first renames queued, in flight or acked before the second."""
    _ship(j, *(f"in/x{i}" for i in range(n)))
    for i in range(n):
        _file_mv(j, f"in/x{i}", f"{directory}/x{i}.tmp")
    if stage != "queued":
        got = claimed(j)
        if stage == "acked":
            ack(j, *got.values())
    for i in range(n):
        _file_mv(j, f"{directory}/x{i}.tmp", f"{directory}/x{i}")


@pytest.mark.parametrize("stage", ["queued", "claimed", "acked"])
def test_files_renamed_in_twice_are_taken_with_the_directory(j, stage):
    """The second rename cannot be kept while the first is pending: the old name's delete
    carries the newest name (src, tree 0) and d/xI is a put, or a move from inside d. The
    removal takes each file, shipped at in/xI only: before ops_file_src, 1 counted for 4
    (queued, in flight)."""
    _ship(j, "d/keep")
    _files_in_by_a_temp_name(j, "d", stage=stage)
    assert j.files_removed_with(S, "d") == 4
    assert j.files_removed_with(S, "in") == 0                  # they left in/


def test_files_renamed_in_twice_and_deleted_one_by_one_count_once(j):
    """`rm d/xI` recorded before d's removal: the alarm counted each delete on its own."""
    _ship(j, "d/keep")
    _files_in_by_a_temp_name(j, "d")
    j.enqueue([ch(f"d/x{i}", "delete") for i in range(3)])
    assert j.files_removed_with(S, "d") == 1


def test_files_renamed_in_twice_then_out_again_are_not_taken(j):
    _ship(j, "d/keep")
    _files_in_by_a_temp_name(j, "d")
    for i in range(3):
        _file_mv(j, f"d/x{i}", f"out/x{i}")
    assert j.files_removed_with(S, "d") == 1
    assert j.files_removed_with(S, "out") == 3


def test_files_renamed_in_twice_below_a_removal_already_counted(j):
    """d/sub's removal, queued, counted them; d's counts d/keep alone."""
    _ship(j, "d/keep")
    _files_in_by_a_temp_name(j, "d/sub")
    assert j.files_removed_with(S, "d/sub") == 3
    j.enqueue([ch("d/sub", "delete", tree=True)])
    assert j.files_removed_with(S, "d") == 1


def test_a_file_renamed_in_over_its_pending_rewrite_is_taken(j):
    """in/x rewritten, its put queued, then renamed into d (not kept): the target holds the
    shipped version at in/x, which d's removal takes."""
    _ship(j, "d/keep", "in/x")
    j.enqueue([ch("in/x", "put")])
    _file_mv(j, "in/x", "d/x")
    assert j.files_removed_with(S, "d") == 2


def _renamed_queued(j):            # mv x y, kept as a move, queued
    _ship(j, "x")
    _file_mv(j, "x", "y")


def _renamed_twice(j):             # mv x y.tmp; mv y.tmp y (the second not kept)
    _ship(j, "x")
    _file_mv(j, "x", "y.tmp")
    _file_mv(j, "y.tmp", "y")


def _renamed_in_flight_then_on(j):   # mv x y.tmp, in flight; mv y.tmp y
    _ship(j, "x")
    _file_mv(j, "x", "y.tmp")
    claimed(j)
    _file_mv(j, "y.tmp", "y")


def _renamed_over_a_pending_rewrite(j):   # x rewritten (put queued), then mv x y: not kept
    _ship(j, "x")
    j.enqueue([ch("x", "put")])
    _file_mv(j, "x", "y")


def _directory_renamed_queued(j):   # mv d e (kept, queued)
    _ship(j, "d/s/y")
    _mv(j, "d", "e")
    return "e/s/y"


def _directory_renamed_in_flight(j):
    _ship(j, "d/s/y")
    _mv(j, "d", "e")
    assert [op.kind for op in claimed(j).values()] == ["move"]
    return "e/s/y"


def _directory_renamed_twice(j):   # mv d e; mv e f (the second not kept)
    _ship(j, "d/s/y")
    _mv(j, "d", "e")
    _mv(j, "e", "f")
    return "f/s/y"


def _subdirectory_renamed_with_work_below(j):   # d/s/z pending: mv d/s d/t not kept
    _ship(j, "d/s/y")
    j.enqueue([ch("d/s/z", "put")])
    _mv(j, "d/s", "d/t")
    return "d/t/y"


@pytest.mark.parametrize("story", [_renamed_queued, _renamed_twice, _renamed_in_flight_then_on,
                                   _renamed_over_a_pending_rewrite, _directory_renamed_queued,
                                   _directory_renamed_in_flight, _directory_renamed_twice,
                                   _subdirectory_renamed_with_work_below])
def test_a_rewrite_at_a_name_a_pending_rename_brings_is_an_overwrite(j, story):
    """The target holds the file under its old name until the rename runs; a rewrite at the
    new name replaces that version (rename-then-encrypt). Before: no overwrite while the
    rename was queued, and below a directory rename until it was acked."""
    key = story(j) or "y"
    assert j.overwrites(S, key)
    assert not j.overwrites(OTHER, key)                        # another source's journal rows
    assert not j.overwrites(S, key + "-new")                   # no old name for it


_BATCH = [f"batch/f{i}" for i in range(4)]


def _dir_renamed_then_each_file(j):   # mv batch b2; mv b2/fI b2/fI.locked
    _ship(j, *_BATCH)
    _mv(j, "batch", "b2")
    for i in range(4):
        _file_mv(j, f"b2/f{i}", f"b2/f{i}.locked")
    return [f"b2/f{i}.locked" for i in range(4)]


def _each_file_renamed_then_dir(j):   # mv batch/fI batch/fI.x; mv batch b2 (not kept)
    _ship(j, *_BATCH)
    for i in range(4):
        _file_mv(j, f"batch/f{i}", f"batch/f{i}.x")
    _mv(j, "batch", "b2")
    return [f"b2/f{i}.x" for i in range(4)]


def _puts_landing_then_dir_renamed(j):   # new files' puts in flight; mv up up2 (not kept)
    _ship(j, "keep")
    j.enqueue([ch(f"up/u{i}", "put") for i in range(4)])
    claimed(j)
    _mv(j, "up", "up2")
    return [f"up2/u{i}" for i in range(4)]


def _dir_into_a_dir_then_that_renamed(j):   # mv batch a/batch; mv a b (not kept)
    _ship(j, *_BATCH, "a/g")
    _mv(j, "batch", "a/batch")
    _mv(j, "a", "b")
    return [f"b/batch/f{i}" for i in range(4)]


def _dir_files_dir(j):   # mv batch d1; mv d1/fI d1/fI.2; mv d1 d2 (not kept)
    _ship(j, *_BATCH)
    _mv(j, "batch", "d1")
    for i in range(4):
        _file_mv(j, f"d1/f{i}", f"d1/f{i}.2")
    _mv(j, "d1", "d2")
    return [f"d2/f{i}.2" for i in range(4)]


def _dir_files_out_dir(j):   # mv batch d1; mv d1/fI x/fI.y; mv d1 d2
    _ship(j, *_BATCH)
    _mv(j, "batch", "d1")
    for i in range(4):
        _file_mv(j, f"d1/f{i}", f"x/f{i}.y")
    _mv(j, "d1", "d2")
    return [f"x/f{i}.y" for i in range(4)]


def _dir_files_down_dir(j):   # mv batch d1; mkdir d1/sub; mv d1/fI d1/sub/; mv d1 d2
    _ship(j, *_BATCH)
    _mv(j, "batch", "d1")
    j.enqueue([ch("d1/sub", "mkdir")])
    for i in range(4):
        _file_mv(j, f"d1/f{i}", f"d1/sub/f{i}")
    _mv(j, "d1", "d2")
    return [f"d2/sub/f{i}" for i in range(4)]


@pytest.mark.parametrize("story", [_dir_renamed_then_each_file, _each_file_renamed_then_dir,
                                   _puts_landing_then_dir_renamed,
                                   _dir_into_a_dir_then_that_renamed,
                                   _dir_files_dir, _dir_files_out_dir, _dir_files_down_dir])
def test_a_rewrite_two_renames_from_the_held_name_is_an_overwrite(j, story):
    """A breaker's shapes: a file rename and a directory rename (or two directory renames)
    between the name held and the name rewritten. One step back found nothing: 0 counted
    for every file rewritten (rename-then-encrypt). The last three (a second breaker):
    `mv d1 d2` not kept overwrote the move row saying d1 came from batch; batch's removal
    carries d2 too, a sibling old name of d1."""
    for key in story(j):
        assert j.overwrites(S, key), key


def _dir_into_a_new_dir_then_that_renamed(j):   # mkdir a; mv batch a/; mv a b
    _ship(j, *_BATCH)
    j.enqueue([ch("a", "mkdir")])
    _mv(j, "batch", "a/batch")
    _mv(j, "a", "b")
    return "b", 4


def _dir_into_a_held_dir_then_that_renamed(j):   # mv batch a/batch; mv a b
    _ship(j, *_BATCH, "a/g1", "a/g2")
    _mv(j, "batch", "a/batch")
    _mv(j, "a", "b")
    return "b", 6


def _files_into_a_dir_renamed_into_the_removed_one(j):   # mv batch/fI b/; mv b batch/b
    _ship(j, *_BATCH, "batch/g")
    j.enqueue([ch("b", "mkdir")])
    for i in range(4):
        _file_mv(j, f"batch/f{i}", f"b/f{i}")
    _mv(j, "b", "batch/b")
    return "batch", 5


@pytest.mark.parametrize("story", [_dir_into_a_new_dir_then_that_renamed,
                                   _dir_into_a_held_dir_then_that_renamed,
                                   _files_into_a_dir_renamed_into_the_removed_one])
def test_a_removal_takes_what_two_renames_bring_into_it(j, story):
    """A breaker's shapes, then the directory moved out of the source: the old name's own
    files were counted, not what was renamed into it (`mv batch a/batch; mv a b; mv b
    /outside` in one shell line, no fault needed: 1 counted for 14 lost)."""
    removed, lost = story(j)
    assert j.files_removed_with(S, removed) == lost


@pytest.mark.parametrize("stage", ["queued", "claimed"])
@pytest.mark.parametrize("away", ["archive/20261202!x", "x~", "x.t"], ids=["archived", "backup", "there"])
def test_a_write_where_the_version_was_renamed_away_is_no_overwrite(j, stage, away):
    """`mv x archive/...!x` (MediaWiki), `mv x x~` (an editor's backup), `mv x x.t`, then x
    written anew: x's version lives on at the new name, nothing destroyed (each counted
    one overwrite: a false alarm for a busy wiki's re-uploads); renamed back over x, no
    version lost either. A delete of x, then a write: the delete counted x's version, the
    write counts nothing more (tests/unit/test_alarm_counted_once.py)."""
    _ship(j, "x")
    _file_mv(j, "x", away)
    if stage == "claimed":
        claimed(j)
    assert not j.overwrites(S, "x")
    assert j.overwrites(S, away)                  # the version moving there is replaced


def test_a_name_a_rename_brought_and_then_deleted_is_no_overwrite(j):
    """mv x y; rm y (counted on its own), then y written anew: nothing of y held."""
    _ship(j, "x")
    _file_mv(j, "x", "y")
    j.enqueue([ch("y", "delete")])
    assert not j.overwrites(S, "y")


def test_a_new_file_below_a_renamed_directory_is_no_overwrite(j):
    _ship(j, "d/a")
    _mv(j, "d", "e")
    assert j.overwrites(S, "e/a")
    assert not j.overwrites(S, "e/b")
    assert not j.overwrites(S, "e")                             # the directory is no file


def test_a_files_old_name_is_found_through_its_index(j):
    plan = " ".join(r[-1] for r in j.db.execute(
        "EXPLAIN QUERY PLAN " + removed_files._LEFT_FOR,
        {"target": T, "source": S, "lo": b"d/", "hi": b"d0"}))
    assert "USING INDEX ops_file_src" in plan, plan   # no scan of the backlog per removal


def test_deletes_of_files_never_shipped_take_nothing_off(j):
    """Temp files made and deleted while the target was away: their deletes are no files
    the target holds, and d's 5 shipped files are what its removal takes."""
    j.enqueue([ch(f"d/f{i}", "put") for i in range(5)])
    ack(j, *claimed(j).values())
    j.enqueue([ch(f"d/tmp{i}", "put") for i in range(20)])
    j.enqueue([ch(f"d/tmp{i}", "delete") for i in range(20)])
    assert j.files_removed_with(S, "d") == 5


def test_another_sources_shipped_row_is_not_this_ones(j):
    j.enqueue([ch("d/y", "put", source=OTHER)])
    ack(j, *claimed(j).values())
    _landed(j, "d/y")
    assert j.files_removed_with(S, "d") == 1                   # S's put in flight
    assert j.files_removed_with(OTHER, "d") == 1               # OTHER's shipped file


def test_an_unwritable_hold_raises(j):
    j.db.execute("DROP TABLE holds")
    with pytest.raises(sqlite3.OperationalError):
        j.hold_deletes(S, reason="x")
