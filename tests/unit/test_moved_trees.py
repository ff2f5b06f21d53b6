"""A directory rename that falls back (a tree removal and a re-send) keeps nothing of the
files the target holds at the new name afterwards, and keeps the rest
(mirrord.trash.moved_trees); the journal half: the removal names the new directory and
keeps naming it through what is recorded over it.

The keeper half runs on a memory target through MovedTrees.settle, as Shipper._sync calls
it: the removal keeps as always (a kill -9 before the drop leaves an extra kept version,
never none), and only a version the target holds at new/rel is dropped."""

from __future__ import annotations

import pytest

from mirrord.journal import Journal, Outcome
from mirrord.journal.barriers import barrier_paths
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem, SyncResult
from mirrord.trash import moved_trees
from mirrord.trash.model import DIR_REMOVED, stamp_of
from tests.fakes import Clock

S, T = "up", "t"
WHEN = 1_700_000_100.25
NS = 1_600_000_000_000_000_001


def _put(t, tmp_path, path: str, data: bytes, ns: int = NS) -> None:
    f = tmp_path / "put"
    f.write_bytes(data)
    t.put(path, str(f), size=len(data), mtime=ns / 1e9, mtime_ns=ns)


def _remove_tree(t, path: str, moved_to: str) -> SyncResult:
    """What Shipper._sync does for a tree removal: keep below it, then remove it."""
    item = SyncItem(path, "absent", tree=True, when=WHEN, moved_to=moved_to)
    t.keep(path, stamp=stamp_of(WHEN), coming="absent")
    [res] = t.sync([item])
    assert res.error is None
    return res


def _landed(t, tmp_path, path: str, data: bytes, ns: int = NS) -> SyncResult:
    _put(t, tmp_path, path, data, ns)
    return SyncResult(SyncItem(path, "file", size=len(data), when=WHEN + 1))


def _kept(t) -> list[tuple[str, str]]:
    return sorted((k.path, k.why) for k in t.trash_list())


@pytest.fixture
def site(tmp_path):
    t = MemoryTarget()
    _put(t, tmp_path, "old/a", b"first file")
    _put(t, tmp_path, "old/sub/b", b"second file, longer", NS + 7)
    return t


def test_what_the_resend_puts_back_at_the_new_name_is_dropped_whenever_it_lands(site, tmp_path):
    trees = moved_trees.MovedTrees(clock=Clock(50.0))
    _landed(site, tmp_path, "new/a", b"first file")          # landed before the removal
    trees.settle(site, [_remove_tree(site, "old", "new")])
    assert _kept(site) == [("old/sub/b", DIR_REMOVED)]       # not at the new name yet
    trees.settle(site, [_landed(site, tmp_path, "new/sub/b", b"second file, longer", NS + 7)])
    assert _kept(site) == []


def test_a_removal_whose_resend_landed_first_drops_all_and_watches_nothing(site, tmp_path):
    trees = moved_trees.MovedTrees(clock=Clock(50.0))
    _landed(site, tmp_path, "new/a", b"first file")
    _landed(site, tmp_path, "new/sub/b", b"second file, longer", NS + 7)
    trees.settle(site, [_remove_tree(site, "old", "new")])
    assert _kept(site) == [] and trees.watched(site.name) == []


def test_other_bytes_at_the_new_name_or_no_new_name_keep(site, tmp_path):
    trees = moved_trees.MovedTrees(clock=Clock(50.0))
    trees.settle(site, [_remove_tree(site, "old", "new")])
    changed = _landed(site, tmp_path, "new/a", b"first file", NS + 1)   # another mtime
    same_size = _landed(site, tmp_path, "new/sub/b", b"SECOND FILE, LONGER", NS + 7)
    trees.settle(site, [changed, same_size])
    # same size and mtime, other bytes (an archive extracted, `touch -r`): the bytes decide,
    # so it stays kept (a breaker's rotation dropped such a version: its bytes were lost)
    assert _kept(site) == [("old/a", DIR_REMOVED), ("old/sub/b", DIR_REMOVED)]
    plain = moved_trees.MovedTrees(clock=Clock(50.0))
    _put(site, tmp_path, "other/x", b"x bytes")
    plain.settle(site, [_remove_tree(site, "other", "")])     # rm -r: no new name
    plain.settle(site, [_landed(site, tmp_path, "new/x", b"x bytes")])
    assert ("other/x", DIR_REMOVED) in _kept(site)


def test_a_purge_that_fails_leaves_everything_kept_and_the_mirror_as_it_was(site, tmp_path,
                                                                             monkeypatch, caplog):
    """A kill -9 or a target error between the removal and the drop: the kept versions
    stay (extra, never lost); the error is logged, settle() does not raise."""
    trees = moved_trees.MovedTrees(clock=Clock(50.0))
    res = _remove_tree(site, "old", "new")

    def broken(kept):
        raise OSError("the connection dropped")

    monkeypatch.setattr(site, "trash_purge", broken)
    _landed(site, tmp_path, "new/a", b"first file")
    trees.settle(site, [res])
    assert _kept(site) == [("old/a", DIR_REMOVED), ("old/sub/b", DIR_REMOVED)]
    assert "cannot drop the versions a directory rename kept" in caplog.text
    # a restart: a fresh Shipper's MovedTrees knows nothing; the late put drops nothing
    monkeypatch.undo()
    moved_trees.MovedTrees().settle(site, [_landed(site, tmp_path, "new/sub/b",
                                                   b"second file, longer", NS + 7)])
    assert len(_kept(site)) == 2 and site.read("new/a") == b"first file"


def test_a_put_after_the_watch_window_drops_nothing(site, tmp_path):
    clock = Clock(50.0)
    trees = moved_trees.MovedTrees(clock=clock)
    trees.settle(site, [_remove_tree(site, "old", "new")])
    clock.now += moved_trees.SETTLE_FOR + 1
    trees.settle(site, [_landed(site, tmp_path, "new/a", b"first file")])
    assert ("old/a", DIR_REMOVED) in _kept(site) and trees.watched(site.name) == []


def test_a_version_kept_before_the_removal_is_never_dropped(site, tmp_path):
    site.keep("old/a", stamp=stamp_of(WHEN - 60), coming="absent")   # a user's earlier delete
    trees = moved_trees.MovedTrees(clock=Clock(50.0))
    trees.settle(site, [_remove_tree(site, "old", "new")])
    trees.settle(site, [_landed(site, tmp_path, "new/a", b"first file")])
    assert [k.stamp for k in site.trash_list("old/a")] == [stamp_of(WHEN - 60)]


# -- the journal half


@pytest.fixture
def j(tmp_path):
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T,)}, clock=Clock(WHEN))
    yield jr
    jr.close()


def _rows(jr: Journal) -> dict[str, tuple]:
    return {bytes(p).decode(): (k, t, bytes(s).decode() if s is not None else None)
            for p, k, t, s in jr.db.execute("SELECT path, kind, tree, src FROM ops")
            if b"/" not in bytes(p)}


def test_a_rotation_names_where_each_removals_bytes_went(j):
    """`mv d1 x; mv d2 d1; mv x d2` read together: d1's removal (the move's source end,
    then a mkdir over it) names d2, d2's names d1 through the mkdir recorded over it, x's
    names d2."""
    assert j.enqueue_move(S, "d1", "x", is_dir=True) == []
    assert j.enqueue_move(S, "d2", "d1", is_dir=True) == [T]
    assert j.enqueue_move(S, "x", "d2", is_dir=True) == [T]
    assert _rows(j) == {"d1": ("mkdir", 1, "d2"), "d2": ("mkdir", 1, "d1"),
                        "x": ("delete", 1, "d2")}


def test_a_rotation_then_a_rename_on_names_the_last_name(j):
    """`mv d1 d3; mv d2 d1; mv d3 d2; mv d1 d9`: d2's old bytes went to d1, then on to d9.
    d2's removal names d1 with no wait link to d1's row, so the chain a -> b -> c must find
    it by its new name (it named d1, and every version it kept stayed kept)."""
    assert j.enqueue_move(S, "d1", "d3", is_dir=True) == []
    assert j.enqueue_move(S, "d2", "d1", is_dir=True) == [T]
    assert j.enqueue_move(S, "d3", "d2", is_dir=True) == [T]
    assert _rows(j)["d2"] == ("mkdir", 1, "d1")
    assert j.enqueue_move(S, "d1", "d9", is_dir=True) == [T]
    assert _rows(j)["d2"] == ("mkdir", 1, "d9")
    plan = " ".join(str(r) for r in j.db.execute(
        "EXPLAIN QUERY PLAN UPDATE ops SET src = x'00' WHERE target = 't' AND source = 's' "
        "AND tree = 1 AND src = x'01' AND kind IN ('delete', 'mkdir') AND path != x'02'"))
    assert "ops_tree_src" in plan, plan      # no scan of the backlog per directory rename


def test_the_move_in_flight_keeps_the_removal_named_after_its_ack(j):
    assert j.enqueue_move(S, "d1", "x", is_dir=True) == []
    [move] = j.claim(T, 10)
    assert j.enqueue_move(S, "d2", "d1", is_dir=True) == [T]
    assert j.enqueue_move(S, "x", "d2", is_dir=True) == [T]
    j.ack([Outcome(move, "delete")])
    assert _rows(j)["x"] == ("delete", 1, "d2")


def test_a_removals_new_name_is_no_barrier():
    """Only where its bytes went: the re-send below the new name must not wait for it."""
    assert barrier_paths(b"d1", b"d2", kind="delete", is_dir=True, tree=True) == (b"d1",)
    assert barrier_paths(b"d1", b"d2", kind="mkdir", is_dir=True, tree=True) == (b"d1",)
    assert barrier_paths(b"d2", b"d1", kind="move", is_dir=True, tree=False) == (b"d2", b"d1")
