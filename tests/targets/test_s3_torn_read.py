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


@pytest.mark.parametrize("how,then", [("wb", NEW), ("ab", OLD + NEW)], ids=["rewritten", "grown"])
def test_a_body_changed_after_the_puts_fstat_is_refused_and_the_old_object_stays(
        seaweedfs, tmp_path, monkeypatch, how, then):
    """Rewritten in place (O_TRUNC, write, close), or grown: the put reads the size its
    fstat saw (fsutil.read_up_to), no more, and the fstat after the read refuses it."""
    t = make_s3(seaweedfs)
    t.open()
    f = tmp_path / "f"
    f.write_bytes(OLD)
    t.put("f", str(f), size=len(OLD), mtime=1.0)
    real_fstat = os.fstat
    calls = []

    def fstat_then_write(fd):
        st = real_fstat(fd)
        if not calls:                       # the put's first look: the writer strikes after it
            calls.append(st)
            with open(f, how) as fh:
                fh.write(NEW)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_write)
    with pytest.raises(SourceBusy):
        t.put("f", str(f), size=len(OLD), mtime=2.0)
    monkeypatch.undo()
    assert calls, "the put never looked at the file"
    assert t.read("f") == OLD
    t.put("f", str(f), size=len(then), mtime=3.0)      # once quiet, the new version goes
    assert t.read("f") == then
    t.close()


def test_a_file_longer_than_its_fstat_says_is_refused(seaweedfs, tmp_path, monkeypatch):
    """An fstat that answers from an attribute cache behind the file (a FUSE source with
    direct_io) while read(2) reaches the file: rewritten longer after the put's fstat, it
    shows the same size, mtime and ctime to both fstats. The put reads a byte more than
    the fstat's size and refuses what is longer (found by a review: reading exactly the
    fstat's size shipped a torn prefix of the new bytes under the old size)."""
    t = make_s3(seaweedfs)
    t.open()
    f = tmp_path / "f"
    f.write_bytes(OLD)
    t.put("f", str(f), size=len(OLD), mtime=1.0)
    real_fstat, cached = os.fstat, []

    def stale_fstat(fd):
        if not cached:
            cached.append(real_fstat(fd))
            with open(f, "wb") as fh:
                fh.write(NEW * 400)          # longer than OLD
        return cached[0]

    monkeypatch.setattr(os, "fstat", stale_fstat)
    with pytest.raises(SourceBusy):
        t.put("f", str(f), size=len(OLD), mtime=2.0)
    monkeypatch.undo()
    assert t.read("f") == OLD
    t.close()
