"""The sub-mount rule (mirrord.submounts) on plain directories: a remembered mount point
whose st_dev no longer matches and that is empty is lost (deletes at or below it are
refused); gone or holding files it is forgotten; the shipper and the catch-up apply it.
A "mount" is faked by remembering another st_dev than the directory has, and the mount
table by a mountinfo file; tests/reliability/test_submounts.py does it with real mounts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mirrord import submounts
from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Journal, Op, Outcome
from mirrord.shipper import Shipper
from mirrord.submounts import SubMounts
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem

S, T = "up", "t"


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    (r / "site42").mkdir(parents=True)
    return r


def _other_dev(path: Path) -> int:
    return os.stat(path).st_dev + 1000   # what a file system mounted there had


def test_no_remembered_point_refuses_nothing(root):
    assert SubMounts(S, str(root)).refusal("site42/a.jpg") is None


def test_a_delete_below_a_lost_point_is_refused_naming_source_and_point(root):
    m = SubMounts(S, str(root), {"site42": _other_dev(root / "site42")})
    why = m.refusal("site42/a/b.jpg")
    assert why is not None and S in why and str(root / "site42") in why and "a/b.jpg" in why
    assert m.refusal("site42") is not None          # the point itself (a tree removal)
    assert m.refusal("site420/x.jpg") is None        # a sibling sharing the prefix
    assert m.refusal("other/x.jpg") is None
    assert m.lost() == ["site42"]


def test_a_mounted_point_refuses_nothing_to_the_live_stream(root):
    m = SubMounts(S, str(root), {"site42": os.stat(root / "site42").st_dev})
    assert m.refusal("site42/a.jpg") is None and m.lost() == []


def test_a_scan_refuses_below_a_mounted_point_only_while_it_is_empty(root):
    """A scan's deletes below an empty file system (mounted by mistake, or a tmpfs
    mounted again with the st_dev it had) wait, as the catch-up's for an empty root."""
    m = SubMounts(S, str(root), {"site42": os.stat(root / "site42").st_dev})
    why = m.refusal("site42/a.jpg", scan=True)
    assert why is not None and "empty" in why and str(root / "site42") in why
    (root / "site42" / "still.jpg").write_bytes(b"x")
    assert m.refusal("site42/a.jpg", scan=True) is None
    assert m.snapshot() == {"site42": os.stat(root / "site42").st_dev}   # still remembered


def test_a_removed_mount_point_is_forgotten(root):
    m = SubMounts(S, str(root), {"site42": _other_dev(root / "site42")})
    (root / "site42").rmdir()
    assert m.refusal("site42/a.jpg") is None
    assert m.snapshot() == {}


def test_a_point_holding_files_in_place_of_the_mount_is_forgotten(root):
    m = SubMounts(S, str(root), {"site42": _other_dev(root / "site42")})
    (root / "site42" / "moved-in.jpg").write_bytes(b"x")
    assert m.refusal("site42/a.jpg") is None
    assert m.snapshot() == {}


def test_refresh_remembers_new_points_and_reports_them(root, tmp_path):
    info = tmp_path / "mountinfo"
    line = "36 35 0:40 / {} rw,relatime shared:1 - tmpfs tmpfs rw\n"
    info.write_text(line.format("/") + line.format(root / "site42"))
    m = SubMounts(S, str(root), mountinfo=str(info))
    assert m.refresh() == ["site42"]
    assert m.snapshot() == {"site42": os.stat(root / "site42").st_dev}
    assert m.refresh() == []                         # nothing changed since
    info.write_text(line.format("/"))                # unmounted, the directory still there
    m._known["site42"] = _other_dev(root / "site42")
    assert m.refresh() == [] and m.lost() == ["site42"]
    info.write_text(line.format("/") + line.format(root / "site42"))
    assert m.refresh() == ["site42"]                 # back (here with the same st_dev) empty:
    assert m.lost() == ["site42"]                    # held until it holds files
    (root / "site42" / "f.jpg").write_bytes(b"x")    # its files back
    assert m.lost() == []


def test_an_excluded_mount_point_is_not_remembered(root, tmp_path):
    """A tmpfs cache the excludes leave out: its unmount degrades nothing."""
    info = tmp_path / "mountinfo"
    info.write_text(f"36 35 0:40 / {root}/site42 rw - tmpfs tmpfs rw\n")
    src = SourceConfig(S, root, (T,), exclude=("/site42",))
    m = SubMounts(S, str(root), {"site42": _other_dev(root / "site42")}, mountinfo=str(info),
                  excluded=lambda rel: src.excluded(rel, is_dir=True))
    assert m.refresh() == [] and m.snapshot() == {} and m.lost() == []


def test_a_space_in_a_mount_point_is_unescaped(root, tmp_path):
    (root / "my site").mkdir()
    info = tmp_path / "mountinfo"
    info.write_text(f"36 35 0:40 / {root}/my\\040site rw - tmpfs tmpfs rw\n")
    assert list(submounts.mounts_below(str(root), str(info))) == ["my site"]


def test_the_state_row_round_trips(root, tmp_path):
    j = Journal(tmp_path / "state.db", {S: (T,)})
    try:
        m = SubMounts(S, str(root), {"site42": 7})
        submounts.save(j, m)
        again = submounts.load(j, SourceConfig(S, root, (T,)))
        assert again.snapshot()["site42"] == 7
    finally:
        j.close()


def _op(path: str, *, kind: str = "delete", tree: bool = False) -> Op:
    return Op(1, 1, T, S, path, kind, None, tree, tree, 1, time.time())


def test_the_shipper_refuses_a_delete_and_a_tree_removal_below_a_lost_point(root):
    target = MemoryTarget(T)
    target.open()
    keep = root.parent / "keep.jpg"
    keep.write_bytes(b"kept")
    target.sync([SyncItem("site42/a/b.jpg", "file", local=str(keep), size=4, mtime=1.0)])
    sc = SourceConfig(S, root, (T,))
    mounts = {S: SubMounts(S, str(root), {"site42": _other_dev(root / "site42")})}
    sh = Shipper({T: target}, [sc], {T: 1}, mounts=mounts)
    outs: list[Outcome] = sh.run_ops(target, [_op("site42/a/b.jpg"),
                                               _op("site42/a", tree=True),   # interrupted.py
                                               _op("gone.jpg")])
    assert [o.error is not None for o in outs] == [True, True, False]
    assert not outs[0].permanent and "not mounted" in outs[0].error
    assert target.stat("site42/a/b.jpg") is not None


def test_the_catch_up_counts_deletes_below_a_lost_point_as_refused(root, tmp_path):
    db = tmp_path / "state.db"
    j = Journal(db, {S: (T,)})
    (root / "top.txt").write_text("t")
    with j.transaction():
        for p in ("top.txt", "site42/a.jpg", "site42/b/c.jpg", "old.jpg"):
            j.db.execute("INSERT INTO shipped (target, source, key, size, mtime_ns) "
                         "VALUES (?, ?, ?, 1, 1)", (T, S, p.encode()))
    j.close()
    m = SubMounts(S, str(root), {"site42": _other_dev(root / "site42")})
    changes = []
    res = catch_up(db, SourceConfig(S, root, (T,)), [T], changes.extend,
                   refuse=lambda path: m.refusal(path, scan=True))
    deletes = sorted(c.path for c in changes if c.kind == "delete")
    assert deletes == ["old.jpg"] and res.refused_deletes == 2
