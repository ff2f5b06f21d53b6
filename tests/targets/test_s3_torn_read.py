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
