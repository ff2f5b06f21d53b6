"""An mtime before 1970 with a fraction reads back exactly from every target, and from
GNU find's %T@ (mirrord.targets.mtime.parse_find_ns).

findutils prints such a time as the whole seconds rounded down plus the fraction above
them (-1500000000.123456789 s: "-1500000001.8765432110"); read as a plain decimal, the
rsync target's listing differed from the source's mtime at every reconcile, which re-sent
the file each time and never said in sync (a breaker). Local and S3 were right."""

from __future__ import annotations

import os
import subprocess

import pytest

from mirrord.targets.mtime import parse_find_ns
from tests.targets.conftest import make_target

TIMES = [-1_500_000_000_123_456_789, -1, -500_000_000, -1_000_000_000, 1_600_000_000_250_000_000]


@pytest.mark.parametrize("ns", TIMES)
def test_find_prints_what_parse_find_ns_reads_back(tmp_path, ns):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    os.utime(f, ns=(ns, ns))
    printed = subprocess.run(["find", str(f), "-printf", "%T@"], capture_output=True,
                             check=True).stdout
    assert parse_find_ns(printed) == os.stat(f).st_mtime_ns == ns, printed


@pytest.mark.parametrize("kind", ["local", "rsync", "s3"])
def test_a_target_keeps_an_mtime_before_1970_exactly(kind, request, tmp_path):
    src = tmp_path / "src.jpg"
    src.write_bytes(b"old photo")
    ns = TIMES[0]
    os.utime(src, ns=(ns, ns))
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        t.put("old.jpg", str(src), size=9, mtime=ns / 1e9, mtime_ns=ns)
        listed = {e.path: e for e in t.list()}
        got = listed["old.jpg"]
        if got.mtime_ns:   # S3 lists the upload time: its stat reads the mtime kept
            assert got.mtime_ns == ns, got
        assert t.stat("old.jpg").mtime_ns == ns
    finally:
        t.close()
