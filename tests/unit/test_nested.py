"""mirrord.nested: a tree removal or a directory move on a target spares another source's
area nested below it; a real local directory and the in-memory target (no directories,
as S3), and the Shipper on them with the serial executor."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import PermanentError, RetryableError
from mirrord.journal import Op
from mirrord.nested import areas_below, claimed_by, holds_area, sync
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem
from mirrord.trash.keeper import KeepPolicy

T = "t"
_ids = itertools.count(1)


def _sources(tmp_path: Path, b_dest: str = "media/thumbs") -> list[SourceConfig]:
    for name in ("a", "b"):
        (tmp_path / name).mkdir(exist_ok=True)
    return [SourceConfig(name="a", path=tmp_path / "a", targets=(T,)),
            SourceConfig(name="b", path=tmp_path / "b", targets=(T,), dest=b_dest)]


def _seed(t, paths: list[str], tmp_path: Path) -> None:
    f = tmp_path / "seed"
    f.write_bytes(b"x")
    for p in paths:
        t.put(p, str(f), size=1, mtime=1.0)


def _files(t) -> set[str]:
    return {e.path for e in t.list() if not e.is_dir}


def _dirs(t) -> set[str]:
    return {e.path for e in t.list() if e.is_dir}


A_FILES = ["media/a.jpg", "media/sub/b.jpg", "media/sub/deep/c.jpg", "media/x.jpg"]
B_FILES = ["media/thumbs/t.jpg", "media/thumbs/deep/u.jpg"]
BESIDE = ["media2/y.jpg", "mediathumbs.jpg", "top.jpg"]


def test_areas_below_names_the_other_sources_dests_at_or_below(tmp_path):
    a, b = _sources(tmp_path)
    c = SourceConfig(name="c", path=tmp_path / "a", targets=("other",), dest="media/c")
    srcs = [a, b, c]
    assert areas_below(srcs, T, "media") == ["media/thumbs"]
    assert areas_below(srcs, T, "media/thumbs") == ["media/thumbs"]
    assert areas_below(srcs, T, "media/thumbs", besides="b") == []
    assert areas_below(srcs, T, "media/thumbsx") == []
    assert areas_below(srcs, T, "med") == []
    assert areas_below(srcs, T, "") == ["media/thumbs"], "a's empty dest is no area below"
    assert areas_below(srcs, "other", "media") == ["media/c"]
    assert holds_area(srcs, T, "old", "media") and not holds_area(srcs, T, "old", "new")


@pytest.fixture(params=["local", "memory"])
def target(request, tmp_path):
    if request.param == "memory":
        return MemoryTarget(T)
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    return t


def _real(target, items):
    return target.sync(items)


def test_a_tree_removal_spares_the_area_below_and_its_parents(target, tmp_path):
    _seed(target, A_FILES + B_FILES + BESIDE, tmp_path)
    item = SyncItem("media", "absent", tree=True, source_root=str(tmp_path / "a"),
                    source_rel="media")
    (res,) = sync(_real, target, [item], _sources(tmp_path))
    assert res.error is None and res.item is item
    assert _files(target) == set(B_FILES + BESIDE)
    if target.features.directories:
        assert {"media", "media/thumbs", "media/thumbs/deep"} <= _dirs(target)
        assert "media/sub" not in _dirs(target)


def test_an_area_deeper_down_keeps_the_whole_chain(target, tmp_path):
    deep = ["media/p/q/area/f.jpg"]
    mine = ["media/p/mine.jpg", "media/p/q/mine.jpg", "media/p/q/areax/g.jpg", "media/o/h.jpg"]
    _seed(target, deep + mine, tmp_path)
    (res,) = sync(_real, target, [SyncItem("media", "absent", tree=True)],
                  _sources(tmp_path, "media/p/q/area"))
    assert res.error is None
    assert _files(target) == set(deep)


def test_a_tree_item_made_a_directory_again_keeps_the_area(tmp_path):
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, A_FILES + B_FILES, tmp_path)
    item = SyncItem("media", "dir", tree=True, mode=0o750, mtime=5.0)
    (res,) = sync(_real, t, [item], _sources(tmp_path))
    assert res.error is None and res.entry is not None and res.entry.is_dir
    assert _files(t) == set(B_FILES)
    assert (os.stat(tmp_path / "mirror" / "media").st_mode & 0o777) == 0o750


def test_the_area_being_the_path_itself_is_left_whole(target, tmp_path):
    _seed(target, B_FILES, tmp_path)
    (res,) = sync(_real, target, [SyncItem("media/thumbs", "absent", tree=True)],
                  _sources(tmp_path))
    assert res.error is None and _files(target) == set(B_FILES)


def test_a_file_over_an_area_fails_with_nothing_done(target, tmp_path):
    _seed(target, A_FILES + B_FILES, tmp_path)
    src = tmp_path / "f"
    src.write_bytes(b"file")
    (res,) = sync(_real, target, [SyncItem("media", "file", local=str(src), size=4, tree=True)],
                  _sources(tmp_path))
    assert isinstance(res.error, PermanentError) and "media/thumbs" in str(res.error)
    assert _files(target) == set(A_FILES + B_FILES)


def test_a_batch_without_an_area_goes_through_as_it_is(tmp_path):
    t = MemoryTarget(T)
    _seed(t, ["media/a.jpg", "x/y.jpg"], tmp_path)
    seen = []

    def record(target, items):
        seen.append(items)
        return target.sync(items)

    items = [SyncItem("x", "absent", tree=True), SyncItem("media/a.jpg", "absent")]
    results = sync(record, t, items, _sources(tmp_path))
    assert seen == [items] and [r.error for r in results] == [None, None]
    assert _files(t) == set()


def test_a_listing_that_fails_is_the_items_error_and_the_rest_go_on(tmp_path):
    class Unlistable(MemoryTarget):
        def list(self, prefix=""):
            raise RetryableError("connection reset")

    t = Unlistable(T)
    _seed(t, B_FILES + ["z.jpg"], tmp_path)
    tree, plain = SyncItem("media", "absent", tree=True), SyncItem("z.jpg", "absent")
    res = sync(_real, t, [tree, plain], _sources(tmp_path))
    assert isinstance(res[0].error, RetryableError) and res[0].item is tree
    assert res[1].error is None and res[1].item is plain
    assert set(t.files) == set(B_FILES)


def test_an_error_on_one_part_is_the_items_error(tmp_path):
    class Refusing(MemoryTarget):
        def delete(self, path, *, tree=False):
            if path == "media/sub":
                raise PermanentError("EACCES")
            super().delete(path, tree=tree)

    t = Refusing(T)
    _seed(t, A_FILES + B_FILES, tmp_path)
    (res,) = sync(_real, t, [SyncItem("media", "absent", tree=True)], _sources(tmp_path))
    assert isinstance(res.error, PermanentError)
    assert set(t.files) == set(B_FILES) | {"media/sub/b.jpg", "media/sub/deep/c.jpg"}


# ---------------------------------------------------------------- through the Shipper
def _op(source: str, path: str, kind: str, *, src: str | None = None, is_dir: bool = False,
        tree: bool = False) -> Op:
    return Op(next(_ids), 1, T, source, path, kind, src, is_dir, tree, 0, 1000.0)


def test_the_shipper_spares_the_area_on_a_tree_delete(tmp_path):
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, A_FILES + B_FILES, tmp_path)
    shipper = Shipper({T: t}, _sources(tmp_path), {T: 1}, executor=serial)
    (out,) = shipper.run_ops(t, [_op("a", "media", "delete", is_dir=True, tree=True)])
    assert out.error is None and out.shipped_kind == "delete"
    assert _files(t) == set(B_FILES)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_with_keep_deleted_what_is_removed_is_kept_and_the_area_is_not(tmp_path, kind):
    """keep_deleted keeps each part of the removal; before, the tree's keep took `media`
    whole, B's area included."""
    if kind == "memory":
        t = MemoryTarget(T)
    else:
        t = LocalTarget(T, tmp_path / "mirror", fsync=False)
        t.open()
    _seed(t, A_FILES + B_FILES, tmp_path)
    shipper = Shipper({T: t}, _sources(tmp_path), {T: 1}, executor=serial,
                      keep={T: KeepPolicy(3600.0)})
    (out,) = shipper.run_ops(t, [_op("a", "media", "delete", is_dir=True, tree=True)])
    assert out.error is None and _files(t) == set(B_FILES)
    assert {k.path for k in t.trash_list()} == set(A_FILES)


def test_a_directory_move_holding_an_area_is_made_and_re_sent(tmp_path):
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, A_FILES + B_FILES, tmp_path)
    srcs = _sources(tmp_path)
    (tmp_path / "a" / "old").mkdir()   # `mv media old` at a
    shipper = Shipper({T: t}, srcs, {T: 1}, executor=serial)
    (out,) = shipper.run_ops(t, [_op("a", "old", "move", src="media", is_dir=True)])
    assert out.error is None and out.shipped_kind == "mkdir" and out.rescan
    assert _files(t) == set(A_FILES + B_FILES), "nothing moved: B's area stays where it is"
    assert "old" in _dirs(t)
    (gone,) = shipper.run_ops(t, [_op("a", "media", "delete", is_dir=True, tree=True)])
    assert gone.error is None and _files(t) == set(B_FILES)


def test_a_directory_move_beside_every_area_is_still_a_rename(tmp_path):
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, ["docs/a.jpg"] + B_FILES, tmp_path)
    srcs = _sources(tmp_path)
    (tmp_path / "a" / "old").mkdir()
    shipper = Shipper({T: t}, srcs, {T: 1}, executor=serial)
    (out,) = shipper.run_ops(t, [_op("a", "old", "move", src="docs", is_dir=True)])
    assert out.error is None and out.shipped_kind == "move"
    assert _files(t) == {"old/a.jpg"} | set(B_FILES)


# ---------------------------------------------------------------- reconcile's deletes
def test_a_reconcile_proposes_no_delete_of_the_parents_left_for_an_area(tmp_path):
    """What the shipper leaves standing for B (`media`, the parent of B's area) is not an
    extra of A's: proposed, every pass would tree-delete it (and spare B's area) for ever."""
    from tests.unit.test_reconcile import make_cfg, run_pass, source

    a = source(tmp_path, {"keep.jpg": b"k"}, name="a", targets=(T,))
    b = source(tmp_path, {"t.jpg": b"t"}, name="b", targets=(T,), dest="media/thumbs")
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, ["keep.jpg", "media/thumbs/t.jpg", "media/stray.jpg", "media/old/x.jpg"], tmp_path)
    res, rec = run_pass(make_cfg(tmp_path, [a, b], max_delete=100), t, a)
    assert sorted((c.path, c.tree) for c in rec.changes("delete")) == [
        ("media/old", True), ("media/stray.jpg", False)]
    assert res.extra == 3   # media/old/, media/old/x.jpg, media/stray.jpg; not media/


# ------------------------------------------------------------ claimed_by: who owns a path
def _src(name: str, dest: str = "", targets: tuple[str, ...] = (T,)) -> SourceConfig:
    return SourceConfig(name=name, path=Path("/srv") / name, targets=targets, dest=dest)


@pytest.mark.parametrize("mine, path, others, owner", [
    ("", "media/x.jpg", [("b", "media")], "b"),                    # outer's file in b's area
    ("", "media", [("b", "media")], None),                         # the area's own directory
    ("", "mediax/y", [("b", "media")], None),                      # a name that only starts so
    ("", "media/thumbs/z", [("b", "media"), ("c", "media/thumbs")], "c"),   # innermost owns
    ("media", "media/thumbs/z", [("c", "media/thumbs")], "c"),     # nested in a non-empty dest
    ("media/thumbs", "media/thumbs/z", [("b", "media")], None),    # mine is inside b's: mine
    ("", "media/x", [("b", "")], None),                            # an empty dest owns nothing
    ("up", "up/x", [("b", "up")], None),                           # one dest shared: not nested
])
def test_claimed_by_names_the_innermost_other_source(mine, path, others, owner):
    me = _src("a", mine)
    sources = [me] + [_src(n, d) for n, d in others]
    got = claimed_by(sources, T, me, path)
    assert (got.name if got else None) == owner


def test_claimed_by_only_where_both_sources_go():
    me, b = _src("a"), _src("b", "media", targets=("other",))
    assert claimed_by([me, b], T, me, "media/x.jpg") is None   # b does not feed t


def test_the_shipper_refuses_an_outer_sources_change_in_an_inner_area(tmp_path):
    """A put, a delete and a move out of the area: the put (a's file is there) is a
    permanent error naming the owner, the delete (a holds nothing there, none of it was
    ever sent) is done as nothing, and b's files stay; the move is sent as a new file at
    its new name (the old name's file is b's)."""
    sources = _sources(tmp_path, b_dest="media")
    (tmp_path / "a" / "media").mkdir()
    (tmp_path / "a" / "media" / "x.jpg").write_bytes(b"a's x")
    (tmp_path / "a" / "moved.jpg").write_bytes(b"a's moved")
    t = MemoryTarget(T)
    _seed(t, ["media/x.jpg", "media/old.jpg"], tmp_path)   # b's files
    shipper = Shipper({T: t}, sources, {T: 1}, executor=serial)
    ops = [Op(next(_ids), 1, T, "a", "media/x.jpg", "put", None, False, False, 0, 1.0),
           Op(next(_ids), 2, T, "a", "media/gone.jpg", "delete", None, False, False, 0, 1.0),
           Op(next(_ids), 3, T, "a", "moved.jpg", "move", "media/old.jpg", False, False, 0, 1.0,
              src_shipped=(1, 1_000_000_000, None))]
    outs = shipper.run_ops(t, ops)
    assert outs[0].permanent and "area of [source:b]" in outs[0].error   # a's file is there
    assert outs[1].error is None and outs[1].shipped_kind == "skip"      # nothing of a's there
    assert outs[2].error is None and outs[2].shipped_kind == "put", outs[2]
    assert t.read("media/x.jpg") == b"x" and t.read("media/old.jpg") == b"x"   # b's, untouched
    assert t.read("moved.jpg") == b"a's moved"


def test_a_pass_leaves_out_and_counts_the_source_entries_in_another_area():
    from mirrord.reconcile.listings import own_entries
    from mirrord.targets.model import Entry
    walk = [Entry("media", 0, 0.0, True), Entry("media/a.jpg", 1, 0.0),
            Entry("media/deep", 0, 0.0, True), Entry("media/deep/b.jpg", 1, 0.0),
            Entry("mediax.jpg", 1, 0.0), Entry("top.jpg", 1, 0.0)]
    counted: dict[bytes, int] = {}
    kept = [e.path for e in own_entries(iter(walk), (b"media/",), counted)]
    assert kept == ["mediax.jpg", "top.jpg"]
    assert counted == {b"media/": 3}   # the area's own directory is not counted


@pytest.mark.parametrize("shape", ["file", "symlink", "deleted"])
def test_a_file_at_an_inner_areas_own_path_never_replaces_it(tmp_path, shape):
    """A's file (or symlink) named exactly B's dest, or its delete: the target's `media`
    is B's directory, and the put replaced it, the delete removed it (a breaker, local
    and rsync). Refused while A holds it, nothing once it does not; B's files stay."""
    sources = _sources(tmp_path, b_dest="media")
    t = LocalTarget(T, tmp_path / "mirror", fsync=False)
    t.open()
    _seed(t, ["media/b1.jpg", "media/sub/b2.jpg"], tmp_path)
    a = tmp_path / "a"
    if shape == "file":
        (a / "media").write_bytes(b"a's file named media")
    elif shape == "symlink":
        (a / "media").symlink_to("/etc/hostname")
    shipper = Shipper({T: t}, sources, {T: 1}, executor=serial)
    kind = "delete" if shape == "deleted" else "put"
    (out,) = shipper.run_ops(t, [_op("a", "media", kind)])
    if shape == "deleted":
        assert out.error is None and out.shipped_kind == "skip"
    else:
        assert out.permanent and "would replace the area of [source:b]" in out.error
    assert _files(t) == {"media/b1.jpg", "media/sub/b2.jpg"}


def test_a_pass_counts_a_file_at_an_areas_path_or_above_it():
    from mirrord.reconcile.listings import own_entries
    from mirrord.targets.model import Entry
    walk = [Entry("media", 1, 0.0), Entry("x", 1, 0.0), Entry("top.jpg", 1, 0.0)]
    counted: dict[bytes, int] = {}
    kept = [e.path for e in own_entries(iter(walk), (b"media/", b"x/y/"), counted)]
    assert kept == ["top.jpg"] and counted == {b"media/": 1, b"x/y/": 1}
    counted = {}
    assert [e.path for e in own_entries(iter(walk), (b"media/",), counted,
                                        directories=False)] == ["media", "x", "top.jpg"]
