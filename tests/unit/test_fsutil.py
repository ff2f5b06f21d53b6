"""Durable writes and opening paths beneath a root without following any symlink."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from mirrord.fsutil import (BeneathOpener, atomic_write, fsync_dir, open_file_beneath,
                            read_up_to)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["f"]
    atomic_write(target, b"three", fsync=False)
    assert target.read_bytes() == b"three"


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"old")
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "d", b"cannot replace a directory")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")   # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["d", "f"]


def test_fsync_dir(tmp_path):
    fsync_dir(str(tmp_path))
    fsync_dir(os.fsencode(str(tmp_path)))


def test_open_file_beneath_reads_the_file(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"data")
    fd = open_file_beneath(str(tmp_path), "a/b/f")
    try:
        assert os.read(fd, 10) == b"data"
    finally:
        os.close(fd)


def test_open_file_beneath_refuses_a_symlinked_file_or_parent(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret")
    (root / "dlink").symlink_to(outside)
    for rel in ("link", "dlink/secret"):
        with pytest.raises(OSError) as info:
            os.close(open_file_beneath(str(root), rel))
        assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(FileNotFoundError):
        open_file_beneath(str(root), "missing")


def test_open_file_beneath_refuses_dot_dot(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(PermissionError):
        open_file_beneath(str(tmp_path / "root"), "../f")
    with pytest.raises(PermissionError):
        open_file_beneath(str(tmp_path / "root"), "./x/f")


def test_open_file_beneath_does_not_block_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "p")
    result = []
    t = threading.Thread(target=lambda: result.append(open_file_beneath(str(tmp_path), "p")),
                         daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        os.close(os.open(tmp_path / "p", os.O_WRONLY | os.O_NONBLOCK))   # let it go
        pytest.fail("opening a FIFO blocked")
    fd = result[0]
    try:
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_open_file_beneath_closes_the_directories_on_its_way(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        fd = open_file_beneath(str(tmp_path), "a/b")
        try:
            assert stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    with pytest.raises(FileNotFoundError):
        open_file_beneath(str(tmp_path), "a/missing/f")
    assert len(os.listdir("/proc/self/fd")) == before


def read_all(opener: BeneathOpener, rels: list[str]) -> list[bytes]:
    out = []
    for rel in rels:
        fd = opener.open_file(rel)
        try:
            out.append(os.read(fd, 100))
        finally:
            os.close(fd)
    return out


def test_beneath_opener_reads_many_paths_and_keeps_one_directory_open(tmp_path):
    for d in ("a/b", "c"):
        (tmp_path / d).mkdir(parents=True)
    for rel in ("a/b/1", "a/b/2", "c/3", "top"):
        (tmp_path / rel).write_bytes(rel.encode())
    before = len(os.listdir("/proc/self/fd"))
    rels = ["a/b/1", "a/b/2", "c/3", "top", "a/b/1"]
    with BeneathOpener(str(tmp_path)) as opener:
        assert read_all(opener, rels) == [r.encode() for r in rels]
        assert len(os.listdir("/proc/self/fd")) == before + 1   # the last directory only
    assert len(os.listdir("/proc/self/fd")) == before


def root_and_outside(tmp_path, inside: bytes) -> tuple[Path, Path]:
    """root/d/f holding `inside`, and a directory outside root holding `f` and `secret`."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (outside / "f").write_bytes(b"outside")
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(inside)
    return root, outside


def test_beneath_opener_refuses_what_open_file_beneath_refuses(tmp_path):
    root, outside = root_and_outside(tmp_path, b"ok")
    (root / "link").symlink_to(outside / "secret")
    (root / "dlink").symlink_to(outside)
    with BeneathOpener(str(root)) as opener:
        for rel in ("link", "dlink/secret"):
            with pytest.raises(OSError) as info:
                os.close(opener.open_file(rel))
            assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)
        with pytest.raises(PermissionError):
            opener.open_file("../outside/secret")
        with pytest.raises(FileNotFoundError):
            opener.open_file("missing/x")
        assert read_all(opener, ["d/f"]) == [b"ok"]   # a failure leaves it usable


def test_beneath_opener_sees_a_directory_replaced_by_a_symlink_in_the_next_batch(tmp_path):
    """The directory kept open is the one opened first; a new opener (the next batch)
    looks again, so a directory swapped for a symlink is refused from then on."""
    root, outside = root_and_outside(tmp_path, b"inside")
    with BeneathOpener(str(root)) as opener:
        assert read_all(opener, ["d/f"]) == [b"inside"]
        (root / "d").rename(tmp_path / "moved")
        (root / "d").symlink_to(outside)
        assert read_all(opener, ["d/f"]) == [b"inside"]   # the directory it holds, never outside
    with BeneathOpener(str(root)) as opener, pytest.raises(OSError):
        opener.open_file("d/f")


MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:41 / /srv/up\\040loads rw,nosuid shared:9 - nfs4 server:/export rw,vers=4.2
31 22 0:42 / /run/x rw - tmpfs tmpfs rw
"""


def test_filesystem_type_is_found_by_device_number(tmp_path, monkeypatch):
    from mirrord import fsutil
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    for dev, want in ((os.makedev(253, 1), "ext4"), (os.makedev(0, 41), "nfs4"),
                      (os.makedev(0, 42), "tmpfs"), (os.makedev(0, 99), None)):
        monkeypatch.setattr(fsutil.os, "stat", lambda _p, _d=dev: os.stat_result((0,) * 2 + (_d,) + (0,) * 7))
        assert fsutil.filesystem_type("/anything", str(info)) == want


def test_link_counts_are_trusted_only_on_known_local_file_systems(monkeypatch):
    from mirrord import fsutil
    for fstype, trusted in (("ext4", True), ("xfs", True), ("tmpfs", True), ("nfs4", False),
                            ("cifs", False), ("btrfs", False), (None, False)):
        monkeypatch.setattr(fsutil, "filesystem_type", lambda _p, _t=fstype: _t)
        assert fsutil.counts_subdirs_in_nlink("/x") is trusted


def test_this_machines_own_mount_table_is_readable(tmp_path):
    from mirrord.fsutil import filesystem_type
    assert filesystem_type(str(tmp_path)) not in (None, "")
    assert filesystem_type(str(tmp_path / "missing")) is None


def test_a_root_given_through_a_symlink_is_followed_and_nothing_below_it_is(tmp_path):
    """The root is the caller's (configured): refused, every path below a symlinked root
    looked absent, which the shipper reads as deleted. Below it, symlinks still refuse."""
    real = tmp_path / "data"
    (real / "a").mkdir(parents=True)
    (real / "a" / "f").write_bytes(b"x")
    os.symlink(real, tmp_path / "uploads")
    os.symlink(real / "a", real / "link")
    fd = open_file_beneath(str(tmp_path / "uploads"), "a/f")
    try:
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)
    with BeneathOpener(str(tmp_path / "uploads")) as opener:
        os.close(opener.open_file("a/f"))
        with pytest.raises(OSError) as exc:
            opener.open_file("link/f")
        assert exc.value.errno in (errno.ELOOP, errno.ENOTDIR)


def test_a_file_below_a_symlinked_source_root_is_observed_not_absent(tmp_path):
    """What the shipper does with it: "absent" would ship a delete of a file that is there."""
    from mirrord.observe import observe
    real = tmp_path / "data"
    (real / "a").mkdir(parents=True)
    (real / "a" / "f").write_bytes(b"xyz")
    os.symlink(real, tmp_path / "uploads")
    seen = observe(str(tmp_path / "uploads"), "a/f", keep_open=False)
    assert (seen.kind, seen.size) == ("file", 3)


def test_mount_point_is_the_longest_mount_above_the_path(tmp_path):
    """fsutil.mount_point from a mountinfo of our own: escaped names, a bind mount at the
    path itself, a path below it, and the parent's mount once the bind mount is gone."""
    from mirrord.fsutil import mount_point
    root = tmp_path / "up loads"
    (root / "site").mkdir(parents=True)
    info = tmp_path / "mountinfo"
    escaped = str(root).replace(" ", "\\040")
    info.write_text(f"21 1 8:1 / / rw - ext4 /dev/vda rw\n"
                    f"30 21 0:40 / {tmp_path} rw - tmpfs tmpfs rw\n"
                    f"31 30 0:40 /data {escaped} rw - tmpfs tmpfs rw\n")
    assert mount_point(str(root), str(info)) == str(root)
    assert mount_point(str(root / "site"), str(info)) == str(root)
    info.write_text(f"21 1 8:1 / / rw - ext4 /dev/vda rw\n30 21 0:40 / {tmp_path} rw - tmpfs tmpfs rw\n")
    assert mount_point(str(root), str(info)) == str(tmp_path)
    assert mount_point(str(root), str(tmp_path / "missing")) is None


@pytest.mark.parametrize("size,want", [(0, b""), (3, b"abc"), (10, b"abcdefghij"),
                                       (11, b"abcdefghij"), (4096, b"abcdefghij")])
def test_read_up_to_reads_the_first_bytes_or_the_whole_file(tmp_path, size, want):
    f = tmp_path / "f"
    f.write_bytes(b"abcdefghij")
    fd = os.open(f, os.O_RDONLY)
    try:
        assert read_up_to(fd, size) == want
    finally:
        os.close(fd)


def test_read_up_to_reads_again_after_a_short_read(monkeypatch, tmp_path):
    """read(2) may return fewer bytes than asked before the end (a signal, a pipe, a FUSE
    file system): what follows is read too."""
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 40)
    real_read, sizes = os.read, []

    def dribble(fd, n):
        sizes.append(n)
        return real_read(fd, min(n, 1000))

    monkeypatch.setattr(os, "read", dribble)
    fd = os.open(f, os.O_RDONLY)
    try:
        assert read_up_to(fd, 10240) == bytes(range(256)) * 40
        assert sizes == [10240, 9240, 8240, 7240, 6240, 5240, 4240, 3240, 2240, 1240, 240]
        os.lseek(fd, 10000, os.SEEK_SET)
        sizes.clear()
        assert read_up_to(fd, 10240) == (bytes(range(256)) * 40)[10000:]   # then the end
        assert sizes == [10240, 10000]   # 240 bytes, then the end: nothing more
    finally:
        os.close(fd)


def test_read_up_to_raises_the_reads_error(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(IsADirectoryError):
            read_up_to(fd, 10)
    finally:
        os.close(fd)
