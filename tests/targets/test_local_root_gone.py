"""A local target whose file system goes away while the daemon writes to it (an NFS mount
on the primary unmounted, or another mounted over it): nothing is written into what shows
at the path then, until the mirror is back (mirrord.targets.root_check.RootIdentity).

Found by a breaker: the daemon went on writing files and a fresh heartbeat into the empty
mount point, status said in_sync, and failover on the mirror host read a current mirror
holding 1 file of 101. Real bind mounts (the suite runs as root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mirrord.errors import RetryableError
from mirrord.targets.local import LocalTarget


def _bind(src: Path, at: Path) -> None:
    subprocess.run(["mount", "--bind", str(src), str(at)], check=True)


def _umount(at: Path) -> None:
    subprocess.run(["umount", "-l", str(at)], check=False)


@pytest.fixture
def mounted(tmp_path):
    """(target opened on mnt, the bind-mounted directory, mnt, a source file)."""
    disk, mnt = tmp_path / "disk", tmp_path / "mnt"
    disk.mkdir()
    mnt.mkdir()
    _bind(disk, mnt)
    src = tmp_path / "f.jpg"
    src.write_bytes(b"bytes")
    t = LocalTarget("mirror", mnt)
    t.open()
    try:
        t.put("a/one.jpg", str(src), size=5, mtime=1.0)
        yield t, disk, mnt, src
    finally:
        t.close()
        _umount(mnt)


def _every_change(t: LocalTarget, src: Path) -> dict:
    return {
        "put": lambda: t.put("a/two.jpg", str(src), size=5, mtime=1.0),
        "mkdir": lambda: t.mkdir("b"),
        "delete": lambda: t.delete("a/one.jpg"),
        "tree delete": lambda: t.delete("a", tree=True),
        "set_meta": lambda: t.set_meta("a/one.jpg", mode=0o600, mtime_ns=5),
        "move": lambda: t.move("a/one.jpg", "a/moved.jpg"),
        "heartbeat": lambda: t.write_meta("heartbeat.json", b"{}")}


def test_nothing_is_written_where_the_mount_was(mounted):
    t, disk, mnt, src = mounted
    _umount(mnt)
    assert list(mnt.iterdir()) == []          # the bare mount point shows
    for what, change in _every_change(t, src).items():
        with pytest.raises(RetryableError, match="no longer the directory opened"):
            change()
    assert list(mnt.iterdir()) == [], what    # nothing made there, no heartbeat either
    assert (disk / "a" / "one.jpg").read_bytes() == b"bytes"


def test_another_file_system_mounted_over_the_mirror_gets_nothing(mounted, tmp_path):
    t, disk, mnt, src = mounted
    other = tmp_path / "other"
    other.mkdir()
    _bind(other, mnt)   # over it: the path shows another, empty directory
    try:
        for change in _every_change(t, src).values():
            with pytest.raises(RetryableError):
                change()
        assert list(other.iterdir()) == []
    finally:
        _umount(mnt)


def test_the_mirror_mounted_again_is_written_again(mounted):
    """The same mirror mounted anew (a new mount, its `.mirrord/` there): taken as the
    root, writes go on, into it."""
    t, disk, mnt, src = mounted
    _umount(mnt)
    with pytest.raises(RetryableError):
        t.put("a/two.jpg", str(src), size=5, mtime=1.0)
    _bind(disk, mnt)
    t.put("a/two.jpg", str(src), size=5, mtime=1.0)
    t.write_meta("heartbeat.json", b"{}")
    assert (disk / "a" / "two.jpg").read_bytes() == b"bytes"
    assert (disk / ".mirrord" / "heartbeat.json").read_bytes() == b"{}"



@pytest.mark.parametrize("write", ["heartbeat", "put"])
def test_a_write_in_flight_while_the_mirror_is_removed_does_not_make_it_again(tmp_path, write,
                                                                               monkeypatch):
    """`rm -rf mirror` between a write's root check and its staging: the staging used to
    make the root again (with `.mirrord/`), which the next check took for the mirror
    mounted again: a fresh heartbeat over an empty mirror, status in_sync (a breaker, 1 run
    in 6). The root is made only by open(), or before its identity was ever learnt."""
    import shutil
    root = tmp_path / "mirror"
    src = tmp_path / "f.jpg"
    src.write_bytes(b"bytes")
    t = LocalTarget("mirror", root)
    t.open()
    t.write_meta("heartbeat.json", b"{}")
    monkeypatch.setattr(t._root_id, "check", lambda: None)   # passed just before the rm
    shutil.rmtree(root)
    with pytest.raises(RetryableError):
        if write == "heartbeat":
            t.write_meta("heartbeat.json", b"{}")
        else:
            t.put("a/one.jpg", str(src), size=5, mtime=1.0)
    assert not root.exists()
    monkeypatch.undo()
    with pytest.raises(RetryableError):
        t.write_meta("heartbeat.json", b"{}")
    assert not root.exists()
