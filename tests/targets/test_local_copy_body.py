"""The local target copies a body with read(2) and write(2) on descriptors
(mirrord/targets/local_stage.py, _copy_to_end), not buffered file objects: what a
buffered writer did for it must still hold. A short write is written again, a body
larger than one read is copied whole, a full disk is a retryable ENOSPC with no
temp file and no short file left (never a "source changed" wait that would retry the
same short copy for ever), and an error the temp file's close reports fails the put.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from mirrord.errors import PermanentError, RetryableError, SourceBusy
from mirrord.targets import local_stage
from mirrord.targets.local import LocalTarget
from mirrord.targets.local_stage import STAGE_DIR


class ShortWrites:
    """The os module, except that write(2) writes at most `most` bytes per call, as a
    write interrupted after a partial transfer or one near a quota does."""

    def __init__(self, most: int):
        self.most, self.calls = most, 0

    def write(self, fd, data):
        self.calls += 1
        return os.write(fd, bytes(data[:self.most]))

    def __getattr__(self, name):
        return getattr(os, name)


def put_one(root: Path, src: Path, data: bytes) -> LocalTarget:
    src.write_bytes(data)
    os.chmod(src, 0o640)
    t = LocalTarget("local", str(root), fsync=False)
    t.open()
    t.put("d/f", str(src), size=len(data), mtime=1.5e9)
    return t


def test_a_body_larger_than_one_read_arrives_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(local_stage, "COPY_CHUNK", 4096)
    data = os.urandom(4096 * 3 + 123)
    t = put_one(tmp_path / "mirror", tmp_path / "src", data)
    try:
        got = tmp_path / "mirror" / "d" / "f"
        assert got.read_bytes() == data
        assert got.stat().st_mtime == 1.5e9 and got.stat().st_mode & 0o777 == 0o640
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
            with pytest.raises(RetryableError) as err:
                t.put("big", str(src), size=1 << 20, mtime=1.0e9)
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


class FailingClose:
    """The os module, except that the second close(2) (the temp file's, after the source's)
    closes and then reports EIO, as NFS reports a write it could not do at close."""

    def __init__(self):
        self.closes = 0

    def close(self, fd):
        self.closes += 1
        os.close(fd)
        if self.closes == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    def __getattr__(self, name):
        return getattr(os, name)


def test_an_error_at_the_temp_files_close_fails_the_put_and_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "mirror"
    t = put_one(root, tmp_path / "src", b"first")
    try:
        (tmp_path / "src").write_bytes(b"second version")
        closing = FailingClose()
        monkeypatch.setattr(local_stage, "os", closing)
        with pytest.raises((RetryableError, PermanentError)) as err:
            t.put("d/f", str(tmp_path / "src"), size=14, mtime=1.6e9)
        monkeypatch.undo()
        assert closing.closes == 2 and "EIO" in str(err.value)
        assert (root / "d" / "f").read_bytes() == b"first"          # the old version stands
        assert list((root / STAGE_DIR).iterdir()) == []
    finally:
        t.close()
