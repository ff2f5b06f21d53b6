"""mirrord.alarm_moved: which deletes a rename recorded lately makes no deletes (the real
daemon on both watchers: tests/e2e/test_alarm_exchange.py, and what it must never hide:
tests/e2e/test_alarm_renames_hide_nothing.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord import alarm_moved
from mirrord.alarm_moved import NOTE_SECONDS, MovedNames


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def v(root: Path, rel: str) -> tuple[int, int]:
    """The version (size, mtime_ns) of the source file `rel`, as the targets would hold it."""
    st = (root / rel).lstat()
    return (st.st_size, st.st_mtime_ns)


def put(root: Path, rel: str, data: bytes = b"x", mtime_ns: int = 1_600_000_000_000_000_000) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    os.utime(root / rel, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a/f1", "b/g1", "b/sub/g2", "x"):
        put(tmp_path, name)
    return tmp_path


HELD = (1, 1_600_000_000_000_000_000)   # what the targets hold: the fixture's files


def test_nothing_noted_nothing_lives_on(root):
    assert not MovedNames().lives_on("s", str(root), "a/f1", HELD)
    assert not MovedNames().near("s", "a") and not MovedNames().any("s")


def test_an_exchange_of_directories_lives_on_both_ways(root):
    # `mv --exchange a b`, read as a rename a -> b and a look at both names: what the
    # targets hold at a/f1 stands at b/f1 in the source now, and b/g1 at a/g1
    put(root, "a/g1")
    put(root, "b/f1")
    (root / "b/sub/g2").unlink()    # the exchange took b/sub to a: not at b/sub/g2 either
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.any("s")
    assert moved.lives_on("s", str(root), "a/f1", HELD)
    assert moved.lives_on("s", str(root), "b/g1", HELD)
    assert not moved.lives_on("s", str(root), "b/sub/g2", HELD)   # a/sub/g2 does not stand
    assert not moved.lives_on("s", str(root), "c/f1", HELD)       # below neither end
    assert not moved.lives_on("t", str(root), "a/f1", HELD)       # another source
    assert not moved.lives_on("s", str(root), "a/f1", None)       # version not known


def test_another_file_of_the_same_name_is_not_the_one_held(root):
    # `mv photos photos.old`, new photos/* written, photos.old moved out: destroyed
    moved = MovedNames()
    moved.renamed("s", "old", "b")
    assert moved.lives_on("s", str(root), "old/g1", HELD)
    put(root, "b/g1", b"y")                                           # same size, same mtime
    assert moved.lives_on("s", str(root), "old/g1", HELD)
    put(root, "b/g1", b"yy")                                          # another size
    assert not moved.lives_on("s", str(root), "old/g1", HELD)
    put(root, "b/g1", b"x", mtime_ns=HELD[1] + 1)                     # another mtime, 1 ns
    assert not moved.lives_on("s", str(root), "old/g1", HELD)


def test_a_file_rename_lives_on_at_its_new_name_only_while_that_file_stands_there(root):
    moved = MovedNames()
    moved.renamed("s", "gone", "x")
    assert moved.lives_on("s", str(root), "gone", v(root, "x"))
    (root / "x").unlink()
    assert not moved.lives_on("s", str(root), "gone", HELD)      # deleted since: counted
    (root / "x").mkdir()
    assert not moved.lives_on("s", str(root), "gone", HELD)      # a directory is no file
    (root / "x").rmdir()
    (root / "x").symlink_to("a/f1")
    assert not moved.lives_on("s", str(root), "gone", HELD)      # nor a symlink to one


def test_deeper_renames_are_followed_from_every_directory_above(root):
    moved = MovedNames()
    moved.renamed("s", "old/sub", "b/sub")
    assert moved.lives_on("s", str(root), "old/sub/g2", HELD)
    assert moved.near("s", "old")             # an end below the tree removed
    assert moved.near("s", "b")
    assert moved.near("s", "old/sub/deeper")  # an end above it
    assert not moved.near("s", "ol")


def test_only_the_newest_ends_of_a_name_are_looked_at(root, monkeypatch):
    # `mv staging rel-N` again and again: each delete below staging looked at every rel-N
    monkeypatch.setattr(alarm_moved, "ENDS_LOOKED", 2)
    moved = MovedNames()
    for i in range(5):
        moved.renamed("s", "staging", f"rel-{i}")
    put(root, "rel-0/f")
    assert not moved.lives_on("s", str(root), "staging/f", HELD)   # the oldest: not looked at
    put(root, "rel-4/f")
    assert moved.lives_on("s", str(root), "staging/f", HELD)


def test_a_note_goes_after_note_seconds(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += NOTE_SECONDS - 1
    assert moved.lives_on("s", str(root), "gone", HELD)
    clock.now += 2
    assert not moved.lives_on("s", str(root), "gone", HELD) and not moved.any("s")
    assert not moved.near("s", "gone") and moved._ends == {"s": {}} and moved._sorted == {"s": []}


def test_renamed_again_renews_the_note_and_keeps_one(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += NOTE_SECONDS - 1
    moved.renamed("s", "gone", "x")
    clock.now += 2
    assert moved.lives_on("s", str(root), "gone", HELD)
    clock.now += NOTE_SECONDS
    assert not moved.lives_on("s", str(root), "gone", HELD) and moved._ends == {"s": {}}


def test_a_rename_and_its_way_back_are_two_notes(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += 10
    moved.renamed("s", "x", "gone")
    clock.now += NOTE_SECONDS - 5       # the first note goes, the second stays
    assert moved.lives_on("s", str(root), "gone", HELD)


def test_at_most_max_notes_are_kept_oldest_first(root, monkeypatch):
    monkeypatch.setattr(alarm_moved, "MAX_NOTES", 3)
    moved = MovedNames()
    moved.renamed("s", "gone", "x")
    for i in range(3):
        moved.renamed("s", f"o{i}", f"n{i}")
    assert not moved.lives_on("s", str(root), "gone", HELD)
    assert set(moved._ends["s"]) == {"o0", "n0", "o1", "n1", "o2", "n2"}
    assert moved._sorted["s"] == sorted(moved._ends["s"])


def test_taken_elsewhere_counts_the_files_held_that_live_on(root):
    put(root, "b/f1")
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.taken_elsewhere("s", str(root), [("a/f1", *HELD), ("a/f2", *HELD),
                                                 ("c/f1", *HELD), ("a/f1", 9, HELD[1])]) == 1


def test_renamed_away_and_back_lives_on_at_its_own_name(root):
    # `mv a c; mkdir a; mv --exchange a c`: a comparison of `a` that listed it while it was
    # the new empty directory proposes a/f1's delete after the exchange took the very file
    # back to a/f1 (helper-169: 1,500 files fired the alarm). It stands there: no delete
    moved = MovedNames()
    moved.renamed("s", "a", "c")
    moved.renamed("s", "c", "a")      # inotify may read an exchange's second half so
    assert moved.lives_on("s", str(root), "a/f1", HELD)
    put(root, "a/f1", b"yy")          # another file at the name now: destroyed
    assert not moved.lives_on("s", str(root), "a/f1", HELD)


def test_a_file_at_its_own_name_counts_only_below_a_noted_rename(root):
    # the look at the path itself needs a rename noted at or above it: without one a
    # delete proposed there (a catch-up after a restart) counts as before
    moved = MovedNames()
    moved.renamed("s", "b", "elsewhere")
    assert not moved.lives_on("s", str(root), "a/f1", HELD)
    assert moved.lives_on("s", str(root), "b/g1", HELD)    # b/g1 stands where it was


def shipped(*versions: tuple[int, int], token: str = "etag") -> list[tuple]:
    """Journal.held_versions' shape for shipped rows: (target, size, mtime_ns, token, number)."""
    return [(f"t{i}", size, mtime_ns, token, 0) for i, (size, mtime_ns) in enumerate(versions)]


def test_a_file_renamed_away_and_back_reported_as_written_replaces_nothing(root):
    # inotify reads `mv --exchange a c` (after `mv a c; mkdir a`) as a new directory a and
    # walks it: every file there is reported as written, and a target that has not shipped
    # the renames yet holds each at a/REL, the very version (helper-169 under load: 1,501
    # such writes counted as overwrites and fired the alarm)
    moved = MovedNames()
    moved.renamed("s", "a", "c")
    asked = []

    def held():
        asked.append(1)
        return shipped(HELD, HELD)
    assert moved.back_in_place("s", str(root), "a/f1", held)
    put(root, "a/f1", b"y")                       # rewritten, size and mtime kept: not seen
    assert moved.back_in_place("s", str(root), "a/f1", held)
    put(root, "a/f1", b"yy")                      # another version now: a real overwrite
    assert not moved.back_in_place("s", str(root), "a/f1", held)


def test_a_write_is_an_overwrite_unless_every_target_holds_the_file_as_it_stands(root):
    moved = MovedNames()
    moved.renamed("s", "a", "c")
    path = "a/f1"
    assert not moved.back_in_place("s", str(root), path, lambda: shipped(HELD, (1, HELD[1] + 1)))
    assert not moved.back_in_place("s", str(root), path, lambda: [])     # nothing held
    flying = [("t0", 7, 123.0, "in flight")]                              # a put in flight
    assert not moved.back_in_place("s", str(root), path, lambda: shipped(HELD) + flying)
    assert not moved.back_in_place("s", str(root), path, lambda: shipped(HELD, token="landed"))
    os.unlink(root / path)
    assert not moved.back_in_place("s", str(root), path, lambda: shipped(HELD))


def test_a_write_far_from_any_rename_is_not_looked_at(root):
    moved = MovedNames()
    moved.renamed("s", "b", "elsewhere")
    never = lambda: pytest.fail("held versions read with no rename at or above the path")  # noqa: E731
    assert not moved.back_in_place("s", str(root), "a/f1", never)
    assert not moved.back_in_place("s", str(root), "x", never)
    moved.renamed("s", "a/f1/deeper", "y")        # a rename below the path: not above it
    assert not moved.back_in_place("s", str(root), "a/f1", never)


def test_the_note_of_back_in_place_is_forgotten_with_the_rename(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "a", "c")
    clock.now += NOTE_SECONDS + 1                 # later: a write counts as before
    assert not moved.back_in_place("s", str(root), "a/f1", lambda: shipped(HELD))


def test_a_batch_of_writes_of_files_back_in_place_counts_nothing(root, tmp_path_factory):
    # count_batch with a real journal: both targets shipped a/f1 as it stands; the watcher's
    # walk reports it written after `mv a c; mkdir a; mv --exchange a c`
    from mirrord.alarm_batch import count_batch
    from mirrord.daemon_alarm_resend import Resends
    from mirrord.journal import Change, Journal, Outcome

    j = Journal(tmp_path_factory.mktemp("state") / "journal.db", {"s": ("t", "t2")})
    try:
        j.enqueue([Change("s", "a/f1", "put")])
        for t in ("t", "t2"):
            j.ack([Outcome(op, "put", size=HELD[0], mtime_ns=HELD[1])
                   for op in j.claim(t, 10, now=1e12, directories=False)])
        resends = Resends(lambda *at: 0, lambda *at: False, lambda: 0.0)
        moved = MovedNames()
        batch = [Change("s", "a/f1", "put")]
        assert count_batch(j, resends, "s", batch, root=str(root), moved=moved) == 1
        moved.renamed("s", "a", "c")
        moved.renamed("s", "c", "a")
        assert count_batch(j, resends, "s", batch, root=str(root), moved=moved) == 0
        put(root, "a/f1", b"rewritten")           # a real rewrite below the same renames
        assert count_batch(j, resends, "s", batch, root=str(root), moved=moved) == 1
    finally:
        j.close()


# --- spared deletes and their revival (an exchange in flight, then a side removed) ----------

def test_copy_at_names_where_the_file_stands(root):
    (root / "a/f1").rename(root / "b/f1")
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.copy_at("s", str(root), "a/f1", HELD) == "b/f1"
    assert moved.copy_at("s", str(root), "a/f1", None) is None
    assert moved.copy_at("s", str(root), "x", HELD) is None   # no rename noted near x


def _spared_exchange(root: Path) -> MovedNames:
    """a/f1 and a/f2 exchanged into b, their deletes at a spared (taken_elsewhere)."""
    (root / "a/f1").unlink(missing_ok=True)
    put(root, "b/f1")
    put(root, "b/f2")
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.taken_elsewhere("s", str(root), [("a/f1", *HELD), ("a/f2", *HELD)]) == 2
    return moved


def test_a_removal_of_where_spared_files_stood_counts_them_once(root):
    moved = _spared_exchange(root)
    for name in ("b/f1", "b/f2"):
        (root / name).unlink()
    never = lambda path: False   # the targets hold nothing at b/f1, b/f2 yet
    assert moved.revived("s", str(root), "b", never) == 2
    assert moved.revived("s", str(root), "b", never) == 0   # counted once


def test_a_spared_file_the_targets_hold_at_its_new_name_is_the_removals_own(root):
    # the rename acked: the removal's own count (files_removed_with) has b/f1 already
    moved = _spared_exchange(root)
    for name in ("b/f1", "b/f2"):
        (root / name).unlink()
    assert moved.revived("s", str(root), "b", lambda path: path == "b/f1") == 1


def test_a_spared_file_still_standing_or_elsewhere_is_not_revived(root):
    moved = _spared_exchange(root)
    (root / "b/f2").unlink()
    assert moved.revived("s", str(root), "b", lambda p: False) == 1   # b/f1 still stands
    moved = _spared_exchange(root)
    assert moved.revived("s", str(root), "c", lambda p: False) == 0   # not below c
    assert moved.revived("s", str(root), "b/f", lambda p: False) == 0   # a name, not a prefix


def test_a_spared_file_is_forgotten_after_note_seconds(root):
    clock = Clock()
    put(root, "b/f1")
    moved = MovedNames(clock)
    moved.renamed("s", "a", "b")
    moved.spare("s", "a/f1", "b/f1")
    (root / "b/f1").unlink()
    clock.now += NOTE_SECONDS + 1
    assert moved.revived("s", str(root), "b", lambda p: False) == 0
