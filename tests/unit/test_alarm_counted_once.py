"""A version a target holds is counted once by the mass-change alarm: by the delete that
takes it away, not again by the write that comes after the delete (a CI run of
tests/e2e/test_alarm_restart_resume.py: a file deleted on one target while its delete was
held on the other, restored by `mirrord undelete --to-source`, counted as an overwrite of
the copy the held delete was to take away).

Journal stories (mirrord.journal.held_files.shipped_file, through Journal.overwrites) and
batch stories (mirrord.daemon_alarm.AlarmWatch, a delete and the write after it in one
batch of events). Each has a control beside it: a write over a version nothing takes away
still counts.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrord.config.model import SourceConfig
from mirrord.daemon_alarm import AlarmWatch
from mirrord.journal import Change, Journal, Outcome
from tests.fakes import Clock

S, T, T2 = "up", "t", "t2"
LATER = 1e12   # claim "now": past every backoff


@pytest.fixture
def j(tmp_path: Path) -> Journal:
    jr = Journal(tmp_path / "journal.db", {S: (T, T2)}, clock=Clock())
    yield jr
    jr.close()


def ch(path: str, kind: str, **kw) -> Change:
    return Change(S, path, kind, **kw)


def claim(j: Journal, target: str = T) -> dict[str, object]:
    """Every ready row, as a target without directories hands them out (a row and the rows
    below its path in flight together, the states these stories build; on a target with
    directories they go one after the other: tests/integration/test_ops_at_and_below_a_path.py)."""
    return {op.path: op for op in j.claim(target, 1000, now=LATER, directories=False)}


def ack(j: Journal, *ops) -> None:
    j.ack([Outcome(op, op.kind, is_dir=op.is_dir, size=1) for op in ops])


def ship(j: Journal, *paths: str) -> None:
    """`paths` put and acked on both targets (their directories made first)."""
    dirs = sorted({p.rsplit("/", 1)[0] for p in paths if "/" in p})
    j.enqueue([ch(d, "mkdir") for d in dirs] + [ch(p, "put") for p in paths])
    for target in (T, T2):
        ack(j, *claim(j, target).values())


# ---------------------------------------------------------------- a file's own delete
def _deleted_queued(j):
    j.enqueue([ch("f", "delete")])


def _deleted_held(j):
    j.hold_deletes(S, reason="test")
    j.enqueue([ch("f", "delete")])


def _deleted_in_flight(j):
    j.enqueue([ch("f", "delete")])
    claim(j, T)
    claim(j, T2)


def _deleted_on_one_held_on_the_other(j):   # the CI run: the alarm fired between the two
    j.enqueue([ch("f", "delete")])
    ack(j, *claim(j, T).values())
    j.hold_deletes(S, reason="test")


# ---------------------------------------------------------------- a directory above it
def _tree_removed_queued(j):
    j.enqueue([ch("d", "delete", tree=True)])


def _tree_removed_held(j):
    j.hold_deletes(S, reason="test")
    j.enqueue([ch("d", "delete", tree=True)])


def _tree_removed_in_flight(j):
    j.enqueue([ch("d", "delete", tree=True)])
    claim(j, T)
    claim(j, T2)


def _tree_removed_then_made_again(j):   # rm -rf d; mkdir d (then the restore writes d/f)
    j.hold_deletes(S, reason="test")
    j.enqueue([ch("d", "delete", tree=True)])
    j.enqueue([ch("d", "mkdir")])


def _tree_removed_above_the_parent(j):   # rm -rf top with d below it
    j.enqueue([ch("top", "delete", tree=True)])
    return "top/d/f"


def _directory_renamed_away(j):   # mv d d.old; mkdir d: the files went with d.old
    j.enqueue_move(S, "d", "d.old", is_dir=True)
    j.enqueue([ch("d", "mkdir")])


@pytest.mark.parametrize("story", [_deleted_queued, _deleted_held, _deleted_in_flight,
                                   _deleted_on_one_held_on_the_other])
def test_a_write_after_the_files_delete_is_no_overwrite(j, story):
    ship(j, "f", "g")
    story(j)
    assert not j.overwrites(S, "f")
    assert j.overwrites(S, "g")                                   # the control beside it


@pytest.mark.parametrize("story", [_tree_removed_queued, _tree_removed_held,
                                   _tree_removed_in_flight, _tree_removed_above_the_parent])
def test_a_write_below_a_directory_removed_is_no_overwrite(j, story):
    ship(j, "d/f", "top/d/f", "dd/f", "g")
    key = story(j) or "d/f"
    assert not j.overwrites(S, key)
    # controls: a sibling whose name starts the same, a file outside
    assert j.overwrites(S, "dd/f") and j.overwrites(S, "g")


def _renamed_there_and_back(j):   # mv d e; mv e d (the first not done)
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue_move(S, "e", "d", is_dir=True)


def _renamed_in_flight_there_and_back(j):
    j.enqueue_move(S, "d", "e", is_dir=True)
    claim(j, T)
    claim(j, T2)
    j.enqueue_move(S, "e", "d", is_dir=True)


def _file_moved_back_into_a_new_d(j):   # mv d e; mkdir d; mv e/f d/f
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue([ch("d", "mkdir")])
    j.enqueue_move(S, "e/f", "d/f", is_dir=False)


def _made_again_removed_and_renamed_back(j):   # mv d e; mkdir d; rmdir d; mv e d
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue([ch("d", "mkdir")])
    j.enqueue([ch("d", "delete", tree=True)])
    j.enqueue_move(S, "e", "d", is_dir=True)


@pytest.mark.parametrize("story", [_renamed_there_and_back, _renamed_in_flight_there_and_back,
                                   _file_moved_back_into_a_new_d,
                                   _made_again_removed_and_renamed_back,
                                   _tree_removed_then_made_again, _directory_renamed_away])
def test_a_write_below_a_directory_renamed_or_made_again_still_counts(j, story):
    """A tree row above the key that is a rename's end, or a directory made again, may
    bring the version held at the key back, and no delete counted it (a breaker of the
    first version of this rule: `mv d e; mv e d`, then every file rewritten, counted 0).
    Made again after `rm -rf d`, or renamed away for good: counted as before (the safe
    side)."""
    ship(j, "d/f", "g")
    story(j)
    assert j.overwrites(S, "d/f")


def test_a_subdirectory_moved_back_into_a_new_d_still_counts(j):   # mv d e; mkdir d; mv e/a d/a
    ship(j, "d/a/f")
    j.enqueue_move(S, "d", "e", is_dir=True)
    j.enqueue([ch("d", "mkdir")])
    j.enqueue_move(S, "e/a", "d/a", is_dir=True)
    assert j.overwrites(S, "d/a/f")


def test_the_renamed_directorys_files_still_count_at_their_new_name(j):
    ship(j, "d/f")
    _directory_renamed_away(j)
    assert j.overwrites(S, "d.old/f")        # the target holds d/f, which becomes d.old/f


def test_a_version_renamed_in_after_the_removal_still_counts(j):
    """`rm -rf d; mv x d/y` (d made again by the rename's parent), then d/y rewritten: x's
    version comes to d/y after the removal and the write replaces it."""
    ship(j, "d/f", "x")
    _tree_removed_held(j)
    j.enqueue_move(S, "x", "d/y", is_dir=False)
    assert j.overwrites(S, "d/y")


def test_a_write_after_the_delete_shipped_everywhere_and_the_new_file_shipped_counts(j):
    ship(j, "f")
    j.enqueue([ch("f", "delete")])
    for target in (T, T2):
        ack(j, *claim(j, target).values())
    assert not j.overwrites(S, "f")                               # nothing there: a create
    ship(j, "f")
    assert j.overwrites(S, "f")                                   # the new file is held


def test_the_write_that_replaced_the_delete_leaves_later_writes_counted(j):
    """`rm f; echo a > f` (the delete recorded over): the row is a put now, and a later
    write counts as before (the safe side: 2 for the version the delete took)."""
    ship(j, "f")
    j.enqueue([ch("f", "delete")])
    j.enqueue([ch("f", "put")])
    assert j.overwrites(S, "f")


# ---------------------------------------------------------------- within one batch
def _watch(j: Journal, tmp_path: Path) -> tuple[AlarmWatch, SourceConfig]:
    src = SourceConfig(S, tmp_path, (T, T2), alarm_deletes=100)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=j, metrics=None, next_heartbeat=9e9,
                        pipeline=SimpleNamespace(journal_failed=print))
    return AlarmWatch(d, clock=Clock()), src


@pytest.mark.parametrize("batch, counted", [
    ([ch("f", "delete"), ch("f", "put")], 1),                             # rm f; restore f
    ([ch("d", "delete", tree=True), ch("d", "mkdir"), ch("d/f", "put")], 2),   # d/f, d/h
    ([ch("d/f", "delete"), ch("d", "delete", tree=True), ch("d/f", "put")], 2),
    ([ch("f", "put"), ch("g", "put")], 2),                                # the control
    ([ch("dd/f", "put"), ch("d", "delete", tree=True)], 3),               # another directory
])
def test_a_write_after_a_delete_in_the_same_batch_is_not_counted_again(j, tmp_path, batch, counted):
    ship(j, "f", "g", "d/f", "d/h", "dd/f")
    w, src = _watch(j, tmp_path)
    w.observe(src, batch)
    assert w.alarms[S].count() == counted


@pytest.mark.parametrize("removed", [ch("f", "delete"), ch("d", "delete", tree=True)],
                         ids=["file", "directory above"])
def test_a_rename_onto_a_name_whose_delete_is_recorded_is_not_counted_again(j, tmp_path, removed):
    """`rm f; mv f.tmp f` (a restore, an upload's write-to-temp-then-rename): a move flushes
    the batch before it, so its delete is in the journal when the rename is counted."""
    ship(j, "f", "d/f", "g")
    w, src = _watch(j, tmp_path)
    w.observe(src, [removed])
    j.enqueue([removed])                    # recorded after its count, as the router does
    before = w.alarms[S].count()
    w.observe_move(src, "d/f" if removed.tree else "f", is_dir=False)
    assert w.alarms[S].count() == before
    w.observe_move(src, "g", is_dir=False)                        # the control: over a held g
    assert w.alarms[S].count() == before + 1


def test_a_batch_of_rewrites_below_a_directory_renamed_there_and_back_counts_each(j, tmp_path):
    ship(j, "d/f", "d/g", "d/h")
    w, src = _watch(j, tmp_path)
    for old, new in (("d", "e"), ("e", "d")):
        w.observe_move(src, new, is_dir=True)
        resent = j.enqueue_move(S, old, new, is_dir=True)
        w.renamed(src, old, new, is_dir=True, resent=bool(resent))
    w.observe(src, [ch("d/f", "put"), ch("d/g", "put"), ch("d/h", "put")])
    assert w.alarms[S].count() == 3
