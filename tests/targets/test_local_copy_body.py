"""The local target copies a body with read(2) and write(2) on descriptors
(mirrord/targets/local_stage.py, copy_to_end), not buffered file objects; what the
buffered writer did for it still holds. A short write is written again, a body larger
than one read is copied whole, a full disk is a retryable ENOSPC with no temp file and
no short file left (never a "source changed" wait that would retry the same short copy
for ever), an error the temp file's close reports fails the put, a copy that stopped
short is never installed, and no path leaves a descriptor open. A kept file fetched
from the trash (trash_fetch, `undelete --to-source`) goes through the same loop.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from mirrord.errors import RetryableError, SourceBusy
from mirrord.targets import local_stage
from mirrord.targets.local import LocalTarget
from mirrord.targets.local_stage import STAGE_DIR

STAMP = "20260101T000000.000000Z"


class OsProxy:
    """The os module as local_stage sees it, with some calls counted or changed by a
    subclass; everything else is os itself."""

    def __getattr__(self, name):
        return getattr(os, name)


class ShortWrites(OsProxy):
    """write(2) writes at most `most` bytes per call, as a write interrupted after a
    partial transfer or one near a quota does."""

    def __init__(self, most: int):
        self.most, self.calls = most, 0

    def write(self, fd, data):
        self.calls += 1
        return os.write(fd, bytes(data[:self.most]))


class NothingWritten(OsProxy):
    """write(2) returns 0 for a non-empty buffer, as a broken FUSE daemon or network
    client may; after `most` such calls it raises, so a copy that asks again for ever
    fails the test instead of hanging it."""

    def __init__(self, most: int = 50):
        self.most, self.calls = most, 0

    def write(self, fd, data):
        self.calls += 1
        if self.calls > self.most:
            raise AssertionError("write(2) asked again after it took nothing")
        return 0


class CountedReads(OsProxy):
    def __init__(self):
        self.calls = 0

    def read(self, fd, n):
        self.calls += 1
        return os.read(fd, n)


class FailingClose(OsProxy):
    """close(2) of a temp file in .mirrord/tmp/ closes it and then reports EIO, as NFS
    reports at close a write it could not do; other descriptors close as usual."""

    def __init__(self):
        self.failed = []

    def close(self, fd):
        where = os.readlink(f"/proc/self/fd/{fd}")
        os.close(fd)
        if f"/{STAGE_DIR}/" in where:
            self.failed.append(where)
            raise OSError(errno.EIO, os.strerror(errno.EIO))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def put_one(root: Path, src: Path, data: bytes) -> LocalTarget:
    src.write_bytes(data)
    os.chmod(src, 0o640)
    t = LocalTarget("local", str(root), fsync=False)
    t.open()
    t.put("d/f", str(src), size=len(data), mtime=1.5e9)
    return t


def test_a_body_larger_than_one_read_arrives_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(local_stage, "COPY_CHUNK", 4096)
    reads = CountedReads()
    monkeypatch.setattr(local_stage, "os", reads)
    data = os.urandom(4096 * 3 + 123)
    t = put_one(tmp_path / "mirror", tmp_path / "src", data)
    try:
        got = tmp_path / "mirror" / "d" / "f"
        assert got.read_bytes() == data
        assert got.stat().st_mtime == 1.5e9 and got.stat().st_mode & 0o777 == 0o640
        assert reads.calls == 5   # 4 chunks, then the end
    finally:
        t.close()


@pytest.mark.parametrize("size", [1, 1000, 70_000])
def test_short_writes_are_written_again_until_the_body_is_whole(tmp_path, monkeypatch, size):
    short = ShortWrites(most=333)
    monkeypatch.setattr(local_stage, "os", short)
    data = os.urandom(size)
    t = put_one(tmp_path / "mirror", tmp_path / "src", data)
    try:
        assert (tmp_path / "mirror" / "d" / "f").read_bytes() == data
        assert short.calls == -(-size // 333)
    finally:
        t.close()


def test_a_full_disk_is_a_retryable_enospc_and_leaves_nothing(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)], check=True)
    try:
        src = tmp_path / "src"
        src.write_bytes(os.urandom(1 << 20))
        t = LocalTarget("local", str(root), fsync=False)
        t.open()
        try:
            before = open_fds()
            with pytest.raises(RetryableError) as err:
                t.put("big", str(src), size=1 << 20, mtime=1.0e9)
            assert open_fds() == before
            assert not isinstance(err.value, SourceBusy)
            assert "ENOSPC" in str(err.value) and "'big'" in str(err.value)
            assert not (root / "big").exists()
            assert list((root / STAGE_DIR).iterdir()) == []
            small = tmp_path / "small"   # the disk is usable again once the temp file went
            small.write_bytes(b"s" * 4096)
            t.put("small", str(small), size=4096, mtime=1.0e9)
            assert (root / "small").read_bytes() == b"s" * 4096
        finally:
            t.close()
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


# (fault, what the fault itself must have seen): each fails the put as a retryable EIO
EIO_FAULTS = {
    # close(2) of the temp file reports a write NFS could not do: failed once, by its fd
    "temp file's close reports EIO": (FailingClose, lambda f: len(f.failed) == 1),
    # write(2) returns 0: asked once, not again for ever
    "write takes no byte": (NothingWritten, lambda f: f.calls == 1),
}


@pytest.mark.parametrize("fault", list(EIO_FAULTS))
def test_an_eio_in_the_copy_fails_the_put_and_leaves_nothing(tmp_path, monkeypatch, fault):
    """The put fails as a retryable EIO naming the path (not a SourceBusy wait), the old
    version stands, no temp file or descriptor is left, and the next put works."""
    make, seen = EIO_FAULTS[fault]
    root = tmp_path / "mirror"
    t = put_one(root, tmp_path / "src", b"first")
    try:
        (tmp_path / "src").write_bytes(b"second version")
        proxy = make()
        before = open_fds()
        monkeypatch.setattr(local_stage, "os", proxy)
        with pytest.raises(RetryableError) as err:
            t.put("d/f", str(tmp_path / "src"), size=14, mtime=1.6e9)
        monkeypatch.undo()
        assert seen(proxy)
        assert not isinstance(err.value, SourceBusy)
        assert "EIO" in str(err.value) and "'d/f'" in str(err.value)
        assert open_fds() == before
        assert (root / "d" / "f").read_bytes() == b"first"          # the old version stands
        assert list((root / STAGE_DIR).iterdir()) == []
        t.put("d/f", str(tmp_path / "src"), size=14, mtime=1.6e9)
        assert (root / "d" / "f").read_bytes() == b"second version"
    finally:
        t.close()


def test_a_copy_that_stopped_short_is_never_installed(tmp_path, monkeypatch):
    """The count the copy returns is what the check after it compares with the size: a
    copy one byte short (the source unchanged, so its fstat alone shows nothing) is a
    wait, and the old version stands."""
    root = tmp_path / "mirror"
    t = put_one(root, tmp_path / "src", b"first")
    try:
        (tmp_path / "src").write_bytes(b"second version")

        def one_short(src, dst):
            return os.write(dst, os.read(src, 13))

        monkeypatch.setattr(local_stage, "copy_to_end", one_short)
        before = open_fds()
        with pytest.raises(SourceBusy):
            t.put("d/f", str(tmp_path / "src"), size=14, mtime=1.6e9)
        assert open_fds() == before
        assert (root / "d" / "f").read_bytes() == b"first"
        assert list((root / STAGE_DIR).iterdir()) == []
    finally:
        t.close()


def test_a_source_gone_before_the_copy_fails_the_put_and_leaves_no_descriptor(tmp_path):
    root = tmp_path / "mirror"
    t = put_one(root, tmp_path / "src", b"first")
    try:
        before = open_fds()
        with pytest.raises(RetryableError, match="ENOENT"):   # the source's, named as such
            t.put("d/g", str(tmp_path / "no-such-file"), size=5, mtime=1.6e9)
        assert open_fds() == before
        assert not (root / "d" / "g").exists()
        assert list((root / STAGE_DIR).iterdir()) == []
    finally:
        t.close()


@pytest.mark.parametrize("size", [0, 1, 3 * 4096 + 5])
def test_a_kept_file_is_fetched_whole_through_the_same_copy(tmp_path, monkeypatch, size):
    """trash_fetch (`undelete --to-source`) copies with the put's loop: short writes are
    written again, a body larger than one read arrives whole, nothing is left open."""
    monkeypatch.setattr(local_stage, "COPY_CHUNK", 4096)
    data = os.urandom(size)
    t = put_one(tmp_path / "mirror", tmp_path / "src", data)
    try:
        t.keep("d/f", stamp=STAMP, coming="absent")
        [kept] = t.trash_list()
        short = ShortWrites(most=333)
        monkeypatch.setattr(local_stage, "os", short)
        before = open_fds()
        out = tmp_path / "fetched"
        out.write_bytes(b"an older file, longer than one byte")   # truncated, not kept
        t.trash_fetch(kept, str(out))
        assert out.read_bytes() == data
        chunks = [min(4096, size - at) for at in range(0, size, 4096)]
        assert short.calls == sum(-(-n // 333) for n in chunks)   # each read written whole
        assert open_fds() == before
    finally:
        t.close()


def test_a_write_that_takes_nothing_fails_the_fetch_instead_of_hanging(tmp_path, monkeypatch):
    """A write(2) of 0 bytes into the fetched file (a broken FUSE daemon under the source)
    is an EIO for the operator, asked once; both descriptors are closed."""
    t = put_one(tmp_path / "mirror", tmp_path / "src", b"kept bytes")
    try:
        t.keep("d/f", stamp=STAMP, coming="absent")
        [kept] = t.trash_list()
        proxy = NothingWritten()
        monkeypatch.setattr(local_stage, "os", proxy)
        before = open_fds()
        with pytest.raises(OSError) as err:
            t.trash_fetch(kept, str(tmp_path / "fetched"))
        assert err.value.errno == errno.EIO
        assert proxy.calls == 1
        assert open_fds() == before
    finally:
        t.close()
