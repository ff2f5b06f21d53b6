"""A local target whose file system is not mounted when the daemon starts (an NFS mount
on the primary that failed at boot): the bare mount point is an empty directory, or the
target's path below it does not exist. With paths shipped to it recorded (the daemon
calls Target.expect_mirror), nothing is written there until it holds the mirror again
(mirrord.targets.root_check.RootIdentity.await_content).

Before, the daemon wrote new files and a fresh heartbeat into the mount point and said
in_sync while the mirror itself fell behind (an open item of the last session's note).
Real bind mounts (the suite runs as root); the daemon's side is in
tests/reliability/test_target_mount_missing_at_start.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mirrord.errors import RetryableError
from mirrord.targets.local import LocalTarget
from tests.targets.test_local_root_gone import _every_change

WHY = "holds nothing while paths shipped to it are recorded"


def _target(root: Path) -> LocalTarget:
    t = LocalTarget("mirror", root)
    t.open()
    return t


@pytest.fixture
def src(tmp_path) -> Path:
    f = tmp_path / "f.jpg"
    f.write_bytes(b"bytes")
    return f


@pytest.mark.parametrize("shape", ["empty mount point", "path below it missing",
                                   "lost+found and a bare .mirrord"])
def test_an_empty_or_missing_root_expected_to_hold_the_mirror_gets_nothing(tmp_path, src, shape):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    root = mnt / "uploads" if shape == "path below it missing" else mnt
    if shape.startswith("lost+found"):
        (mnt / "lost+found").mkdir()
        (mnt / ".mirrord").mkdir()
    t = _target(root)
    try:
        assert t.found_empty
        t.expect_mirror(WHY)
        before = sorted(p.relative_to(root) for p in root.rglob("*"))
        for what, change in _every_change(t, src).items():
            with pytest.raises(RetryableError, match=WHY):
                change()
        assert sorted(p.relative_to(root) for p in root.rglob("*")) == before, what
        assert not (root / ".mirrord" / "heartbeat.json").exists()
    finally:
        t.close()


def test_once_the_mirror_is_mounted_it_is_written_to(tmp_path, src):
    disk, mnt = tmp_path / "disk", tmp_path / "mnt"
    disk.mkdir()
    mnt.mkdir()
    (disk / "old.jpg").write_bytes(b"shipped before")
    t = _target(mnt)
    try:
        t.expect_mirror(WHY)
        with pytest.raises(RetryableError, match=WHY):
            t.put("a/two.jpg", str(src), size=5, mtime=1.0)
        subprocess.run(["mount", "--bind", str(disk), str(mnt)], check=True)
        t.put("a/two.jpg", str(src), size=5, mtime=1.0)
        t.write_meta("heartbeat.json", b"{}")
        assert (disk / "a" / "two.jpg").read_bytes() == b"bytes"
        assert (disk / ".mirrord" / "heartbeat.json").exists()
    finally:
        t.close()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("shape", ["a mirrored file", "only a heartbeat"])
def test_a_root_holding_the_mirror_is_written_to_as_before(tmp_path, src, shape):
    """A mirror of a source emptied on purpose holds its heartbeat: it is a mirror."""
    root = tmp_path / "mirror"
    (root / ".mirrord").mkdir(parents=True)
    if shape == "a mirrored file":
        (root / "old.jpg").write_bytes(b"x")
    else:
        (root / ".mirrord" / "heartbeat.json").write_text("{}")
    t = _target(root)
    try:
        assert not t.found_empty
        t.expect_mirror(WHY)
        t.put("a/two.jpg", str(src), size=5, mtime=1.0)
        assert (root / "a" / "two.jpg").read_bytes() == b"bytes"
    finally:
        t.close()


def test_a_root_found_empty_with_nothing_shipped_is_written_to(tmp_path, src):
    """A first start (nothing recorded): the daemon does not call expect_mirror."""
    t = _target(tmp_path / "new")
    try:
        assert t.found_empty
        t.put("a/two.jpg", str(src), size=5, mtime=1.0)
        assert (tmp_path / "new" / "a" / "two.jpg").exists()
    finally:
        t.close()
