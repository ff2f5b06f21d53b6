"""The S3 target reads a real server's listing timestamps (SeaweedFS) with the standard
library's ISO 8601 parser (mirrord/targets/s3/timestamps.py): the same instants as a plain
botocore client reads, without dateutil's general parser (39% of a 100,000-object
reconcile's CPU before)."""

from __future__ import annotations

import dateutil.parser

from tests.targets.conftest import make_s3


def test_listing_times_match_a_plain_client_without_dateutil(seaweedfs, tmp_path, monkeypatch):
    t = make_s3(seaweedfs)
    t.open()
    try:
        for i, name in enumerate(["a.png", "d/b.png", "d/e/c.png"]):
            local = tmp_path / f"f{i}"
            local.write_bytes(b"x" * (i + 1))
            t.put(name, str(local), size=i + 1, mtime=1_600_000_000.0 + i)
        plain = seaweedfs.client()   # botocore's default parser (dateutil)
        page = plain.list_objects_v2(Bucket=t.bucket, Prefix=t.root)
        want = {o["Key"][len(t.root):]: o["LastModified"].timestamp()
                for o in page["Contents"] if "/.mirrord/" not in "/" + o["Key"][len(t.root):]}
        assert len(want) == 3

        def refuse(*args, **kwargs):
            raise AssertionError(f"dateutil asked to parse {args[:1]!r}")
        monkeypatch.setattr(dateutil.parser, "parse", refuse)
        got = {e.path: e.mtime for e in t.list()}
        assert got == want
    finally:
        t.close()
