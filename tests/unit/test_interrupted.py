"""mirrord.interrupted: the parents an op cut short may have made on a target, removed at
the next start when the source no longer has them; real files, no target."""

from __future__ import annotations

import os

from mirrord.config import SourceConfig
from mirrord.interrupted import Interrupted, removals


def _src(tmp_path, **kw) -> SourceConfig:
    root = tmp_path / "src"
    root.mkdir(exist_ok=True)
    return SourceConfig(name="up", path=root, targets=("t",), **kw)


def _paths(changes) -> list[tuple[str, str, bool, tuple[str, ...]]]:
    return sorted((c.path, c.kind, c.tree, c.targets) for c in changes)


def test_the_highest_parent_gone_is_removed_as_a_tree(tmp_path):
    src = _src(tmp_path)
    (src.path / "kept" / "still").mkdir(parents=True)
    (src.path / "other.jpg").write_bytes(b"x")
    rows = [Interrupted("t", "up", "gone/deeper/f.jpg", "put"),
            Interrupted("t", "up", "gone/g.jpg", "put"),            # the same parent: once
            Interrupted("t2", "up", "gone/g.jpg", "put"),           # another target: its own
            Interrupted("t", "up", "kept/lost/f.jpg", "move"),
            Interrupted("t", "up", "kept/still/f.jpg", "put"),      # parents all there: nothing
            Interrupted("t", "up", "top.jpg", "put"),               # no parent: the row itself
            Interrupted("t", "up", "gone2/f.jpg", "delete"),        # a delete makes no parent
            Interrupted("t", "elsewhere", "gone/x.jpg", "put")]     # a source not configured
    assert _paths(removals(rows, [src])) == [
        ("gone", "delete", True, ("t",)), ("gone", "delete", True, ("t2",)),
        ("kept/lost", "delete", True, ("t",))]


def test_a_file_where_the_parent_was_counts_as_gone(tmp_path):
    src = _src(tmp_path)
    (src.path / "d").write_bytes(b"now a file")
    assert _paths(removals([Interrupted("t", "up", "d/f.jpg", "put")], [src])) == [
        ("d", "delete", True, ("t",))]


def test_a_symlink_where_the_parent_was_counts_as_gone(tmp_path):
    src = _src(tmp_path)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", src.path / "d")
    assert _paths(removals([Interrupted("t", "up", "d/f.jpg", "put")], [src])) == [
        ("d", "delete", True, ("t",))]


def test_an_empty_source_root_proposes_nothing(tmp_path):
    """An unmounted mount point looks empty: nothing is removed on its word."""
    src = _src(tmp_path)
    assert removals([Interrupted("t", "up", "d/f.jpg", "put")], [src]) == []


def test_an_excluded_parent_is_left(tmp_path):
    src = _src(tmp_path, exclude=("cache/",))
    (src.path / "x.jpg").write_bytes(b"x")
    assert removals([Interrupted("t", "up", "cache/f.jpg", "put")], [src]) == []
