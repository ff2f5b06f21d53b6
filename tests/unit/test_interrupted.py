"""mirrord.interrupted: the parents an op cut short may have made on a target, removed at
the next start when the source no longer has them; real files, no target."""

from __future__ import annotations

import os

from mirrord.config import SourceConfig
from mirrord.interrupted import Interrupted, removals


def _src(tmp_path, name: str = "up", **kw) -> SourceConfig:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    return SourceConfig(name=name, path=root, **{"targets": ("t",), **kw})


def _paths(changes) -> list[tuple[str, str, bool, tuple[str, ...]]]:
    return sorted((c.path, c.kind, c.tree, c.targets) for c in changes)


def test_the_highest_parent_gone_is_removed_as_a_tree(tmp_path):
    src = _src(tmp_path, targets=("t", "t2"))
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


def test_a_target_the_source_no_longer_routes_to_is_left(tmp_path):
    """The row was in flight to t2; the source now mirrors to t alone: t2 is not its own."""
    src = _src(tmp_path)
    (src.path / "x.jpg").write_bytes(b"x")
    assert removals([Interrupted("t2", "up", "gone/f.jpg", "put")], [src]) == []


def test_another_sources_area_below_the_gone_parent_is_spared(tmp_path):
    """`thumbs` mirrors into media/thumbs of the target `up` mirrors whole: removing `media`
    would take thumbs' files (recorded as shipped, so never re-sent) with it."""
    up = _src(tmp_path)
    (up.path / "x.jpg").write_bytes(b"x")
    thumbs = _src(tmp_path, "thumbs", dest="media/thumbs")
    rows = [Interrupted("t", "up", "media/2024/05/f.jpg", "put"),
            Interrupted("t", "up", "media/thumbs/f.jpg", "put")]   # inside it: nothing at all
    assert _paths(removals(rows, [up, thumbs])) == [("media/2024", "delete", True, ("t",))]


def test_another_sources_area_on_another_target_does_not_count(tmp_path):
    up = _src(tmp_path)
    (up.path / "x.jpg").write_bytes(b"x")
    thumbs = _src(tmp_path, "thumbs", dest="media/thumbs", targets=("t2",))
    assert _paths(removals([Interrupted("t", "up", "media/2024/f.jpg", "put")], [up, thumbs])) == [
        ("media", "delete", True, ("t",))]


def test_the_areas_compare_below_this_sources_dest(tmp_path):
    up = _src(tmp_path, dest="site")
    (up.path / "x.jpg").write_bytes(b"x")
    thumbs = _src(tmp_path, "thumbs", dest="site/media/thumbs")
    other = _src(tmp_path, "other", dest="media")   # not below site/: no bearing
    assert _paths(removals([Interrupted("t", "up", "media/a/f.jpg", "put")], [up, thumbs, other])) == [
        ("media/a", "delete", True, ("t",))]
