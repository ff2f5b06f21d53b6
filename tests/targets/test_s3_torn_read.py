"""S3 never stores a small file's body torn: a file truncated and rewritten in place
between the put's fstat and its read is refused before PutObject (fsutil.check_read_whole),
and what the bucket held stays (real SeaweedFS). The same rule on the local target and in
the shipper: tests/integration/test_torn_reads.py."""

from __future__ import annotations

import os

import pytest

from mirrord.errors import SourceBusy
from tests.targets.conftest import make_s3

OLD, NEW = b"old version " * 100, b"new!"


def test_a_body_rewritten_after_the_puts_fstat_is_refused_and_the_old_object_stays(
        seaweedfs, tmp_path, monkeypatch):
    t = make_s3(seaweedfs)
    t.open()
    f = tmp_path / "f"
    f.write_bytes(OLD)
    t.put("f", str(f), size=len(OLD), mtime=1.0)
    real_fstat = os.fstat
    calls = []

    def fstat_then_rewrite(fd):
        st = real_fstat(fd)
        if not calls:                       # the put's first look: the writer strikes after it
            calls.append(st)
            with open(f, "wb") as fh:       # O_TRUNC, write, close: a rewrite in place
                fh.write(NEW)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_rewrite)
    with pytest.raises(SourceBusy):
        t.put("f", str(f), size=len(OLD), mtime=2.0)
    monkeypatch.undo()
    assert calls, "the put never looked at the file"
    assert t.read("f") == OLD
    t.put("f", str(f), size=len(NEW), mtime=3.0)      # once quiet, the new version goes
    assert t.read("f") == NEW
    t.close()


def test_a_body_grown_after_the_puts_fstat_is_refused(seaweedfs, tmp_path, monkeypatch):
    """The put reads the size its fstat saw (fsutil.read_up_to), no more: bytes appended
    after that fstat are not read, and the fstat after the read refuses the body."""
    t = make_s3(seaweedfs)
    t.open()
    f = tmp_path / "f"
    f.write_bytes(OLD)
    t.put("f", str(f), size=len(OLD), mtime=1.0)
    real_fstat = os.fstat
    calls = []

    def fstat_then_append(fd):
        st = real_fstat(fd)
        if not calls:
            calls.append(st)
            with open(f, "ab") as fh:
                fh.write(NEW)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_append)
    with pytest.raises(SourceBusy):
        t.put("f", str(f), size=len(OLD), mtime=2.0)
    monkeypatch.undo()
    assert calls and t.read("f") == OLD
    t.put("f", str(f), size=len(OLD + NEW), mtime=3.0)
    assert t.read("f") == OLD + NEW
    t.close()
