"""A directory that comes into being already filled, on the real kernel: the fanotify
watcher reports what it holds. A btrfs snapshot made inside the root is one FAN_CREATE of
a directory (btrfs_mksubvol() in fs/btrfs/ioctl.c ends with one fsnotify_mkdir()) and no
event for anything in it; a made directory's scan is all that names its files. Where
directories only start empty (ext4 here), a made directory is not scanned: the rule is
chosen per file system (mirrord/watch/fanotify_scan.py, MADE_EMPTY), and
tests/integration/test_fanotify.py::test_a_tree_copied_in_reports_each_file_once checks
the other side. Each state is checked with the daemon's state-based model
(tests/watch_model.py: a target built from the events equals the tree). btrfs-progs
comes with `make test` (scripts/install-system-deps.sh); the tests fail, never skip,
when the image cannot be made or mounted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.watch import fanotify_scan
from mirrord.watch.fanotify import FanotifyWatcher
from tests.integration.test_fanotify import kinds, settle
from tests.watch_model import apply, disk


@pytest.fixture
def btrfs(tmp_path):
    """A loop-mounted btrfs of 300 MiB (mkfs.btrfs' smallest is about 110)."""
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    with open(image, "wb") as fh:
        fh.truncate(300 << 20)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _subvolume(mnt: Path) -> Path:
    vol = mnt / "vol"
    subprocess.run(["btrfs", "-q", "subvolume", "create", str(vol)], check=True)
    (vol / "sub" / "deep").mkdir(parents=True)
    (vol / "a.jpg").write_bytes(b"a")
    (vol / "sub" / "b.jpg").write_bytes(b"b")
    (vol / "sub" / "deep" / "c.jpg").write_bytes(b"c")
    return vol


def _watch(root: Path) -> FanotifyWatcher:
    w = FanotifyWatcher(str(root), SourceConfig("up", root, ("t",)).excluded)
    assert w.start() == []
    return w


@pytest.mark.parametrize("readonly", [False, True], ids=["snapshot", "read-only-snapshot"])
@pytest.mark.parametrize("into", ["", "new/day"], ids=["at-root", "in-a-directory-just-made"])
def test_a_snapshot_made_in_the_tree_reports_what_it_holds(btrfs, readonly, into):
    vol = _subvolume(btrfs)
    root = btrfs / "src"
    root.mkdir()
    w = _watch(root)
    try:
        assert not w.made_empty     # btrfs: a made directory may be filled
        if into:
            (root / into).mkdir(parents=True)
        snap = root / into / "snap"
        subprocess.run(["btrfs", "-q", "subvolume", "snapshot", *(["-r"] if readonly else []),
                        str(vol), str(snap)], check=True)
        events = settle(w, root)
    finally:
        w.close()
    assert apply(set(), events, root) == disk(root), kinds(events)
    top = f"{into}/snap" if into else "snap"
    assert {("write", f"{top}/a.jpg"), ("write", f"{top}/sub/deep/c.jpg")} <= set(kinds(events))


def test_a_tree_copied_in_on_btrfs_is_still_mirrored_whole(btrfs):
    """The scan kept there: a `cp -r` may report a file twice, never miss one."""
    root = btrfs / "src"
    root.mkdir()
    w = _watch(root)
    try:
        stage = _subvolume(btrfs)
        subprocess.run(["cp", "-r", str(stage), str(root / "tree")], check=True)
        events = settle(w, root)
    finally:
        w.close()
    assert apply(set(), events, root) == disk(root), kinds(events)


@pytest.mark.parametrize("fstype, empty", [
    ("ext4", True), ("xfs", True), ("tmpfs", True),
    ("btrfs", False), ("bcachefs", False), ("nfs4", False), ("overlay", False),
    (None, False),      # unknown (a btrfs subvolume's anonymous device): assume the worst
])
def test_which_file_systems_make_directories_empty(monkeypatch, fstype, empty):
    monkeypatch.setattr(fanotify_scan, "filesystem_type", lambda _root: fstype)
    assert fanotify_scan.made_dirs_start_empty("/anywhere") is empty
