"""mirrord.alarm_moved: which deletes a rename recorded lately makes no deletes (the real
daemon on both watchers: tests/e2e/test_alarm_exchange.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord import alarm_moved
from mirrord.alarm_moved import NOTE_SECONDS, MovedNames


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a/f1", "b/g1", "b/sub/g2", "x"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_nothing_noted_nothing_lives_on(root):
    assert not MovedNames().lives_on("s", str(root), "a/f1")
    assert not MovedNames().near("s", "a")


def test_an_exchange_of_directories_lives_on_both_ways(root):
    # `mv --exchange a b`, read as a rename a -> b and a look at both names: what the
    # targets hold at a/f1 stands at b/f1 in the source now, and b/g1 at a/g1
    (root / "a" / "g1").write_bytes(b"g")
    (root / "b" / "f1").write_bytes(b"f")
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.lives_on("s", str(root), "a/f1")         # b/f1 stands
    assert moved.lives_on("s", str(root), "b/g1")         # a/g1 stands
    assert not moved.lives_on("s", str(root), "b/sub/g2")   # a/sub/g2 does not
    assert not moved.lives_on("s", str(root), "c/f1")       # below neither end
    assert not moved.lives_on("t", str(root), "a/f1")       # another source


def test_a_file_rename_lives_on_at_its_new_name_only_while_a_file_stands_there(root):
    moved = MovedNames()
    moved.renamed("s", "gone", "x")
    assert moved.lives_on("s", str(root), "gone")
    (root / "x").unlink()
    assert not moved.lives_on("s", str(root), "gone")      # deleted since: counted
    (root / "x").mkdir()
    assert not moved.lives_on("s", str(root), "gone")      # a directory is no such file
    (root / "x").rmdir()
    (root / "x").symlink_to("a/f1")
    assert not moved.lives_on("s", str(root), "gone")      # nor a symlink to one


def test_deeper_renames_are_followed_from_every_directory_above(root):
    moved = MovedNames()
    moved.renamed("s", "old/sub", "b/sub")
    assert moved.lives_on("s", str(root), "old/sub/g2")
    assert moved.near("s", "old")            # an end below the tree removed
    assert moved.near("s", "b")
    assert moved.near("s", "old/sub/deeper")  # an end above it
    assert not moved.near("s", "ol")


def test_a_note_goes_after_note_seconds(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += NOTE_SECONDS - 1
    assert moved.lives_on("s", str(root), "gone")
    clock.now += 2
    assert not moved.lives_on("s", str(root), "gone")
    assert not moved.near("s", "gone") and moved._ends == {"s": {}} and moved._sorted == {"s": []}


def test_renamed_again_renews_the_note_and_keeps_one(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += NOTE_SECONDS - 1
    moved.renamed("s", "gone", "x")
    clock.now += 2
    assert moved.lives_on("s", str(root), "gone")
    clock.now += NOTE_SECONDS
    assert not moved.lives_on("s", str(root), "gone") and moved._ends == {"s": {}}


def test_a_rename_and_its_way_back_are_two_notes(root):
    clock = Clock()
    moved = MovedNames(clock)
    moved.renamed("s", "gone", "x")
    clock.now += 10
    moved.renamed("s", "x", "gone")
    clock.now += NOTE_SECONDS - 5       # the first note goes, the second stays
    assert moved.lives_on("s", str(root), "gone")


def test_at_most_max_notes_are_kept_oldest_first(root, monkeypatch):
    monkeypatch.setattr(alarm_moved, "MAX_NOTES", 3)
    moved = MovedNames()
    moved.renamed("s", "gone", "x")
    for i in range(3):
        moved.renamed("s", f"o{i}", f"n{i}")
    assert not moved.lives_on("s", str(root), "gone")
    assert set(moved._ends["s"]) == {"o0", "n0", "o1", "n1", "o2", "n2"}
    assert moved._sorted["s"] == sorted(moved._ends["s"])


def test_taken_elsewhere_counts_the_keys_that_live_on(root):
    (root / "b" / "f1").write_bytes(b"f")
    moved = MovedNames()
    moved.renamed("s", "a", "b")
    assert moved.taken_elsewhere("s", str(root), ["a/f1", "a/f2", "c/f1"]) == 1
