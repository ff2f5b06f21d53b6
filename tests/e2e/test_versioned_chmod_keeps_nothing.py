"""On an S3 bucket with versioning, a chmod or touch seen live keeps nothing.

The S3 target changes an object's mode and mtime by copying it onto itself with new
metadata; in a versioned bucket that self-copy leaves the version it replaced behind as
a noncurrent version, which `mirrord trash` listed as an 'overwritten' kept version and
retention counted against the cap: a chmod -R of the uploads doubled the trash. The
README: "A chmod or touch seen live keeps nothing" (on every target)."""

from __future__ import annotations

import json
import os

from tests.e2e.test_trash_e2e import versioned_config
from tests.reliability.conftest import Env, poll


def test_live_chmod_and_touch_on_a_versioned_bucket_keep_no_version(tmp_path, seaweedfs):
    env = Env(tmp_path, versioned_config(tmp_path, seaweedfs), names=("s3",))
    try:
        for i in range(3):
            (env.src / f"f{i}.jpg").write_bytes(b"image %d" % i)
        env.daemon.start()
        s3 = env.targets["s3"]
        poll(lambda: all(s3.read(f"f{i}.jpg") == b"image %d" % i for i in range(3)),
             timeout=60, what="the files mirrored")
        os.chmod(env.src / "f0.jpg", 0o600)
        os.utime(env.src / "f1.jpg", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
        poll(lambda: s3.stat("f0.jpg").mode == 0o600, timeout=60, what="the chmod mirrored")
        poll(lambda: s3.stat("f1.jpg").mtime_ns == 1_500_000_000_000_000_000, timeout=60,
             what="the touch mirrored")
        doc = json.loads(env.daemon.cli("trash", "--json").stdout)
        assert doc["targets"]["s3"]["trash_mode"] == "versioning"
        assert doc["count"] == 0, doc
        (env.src / "f2.jpg").write_bytes(b"rewritten")   # a real overwrite is still kept
        poll(lambda: s3.read("f2.jpg") == b"rewritten", timeout=60, what="the rewrite")
        doc = json.loads(env.daemon.cli("trash", "--json").stdout)
        assert [(e["path"], e["why"]) for e in doc["targets"]["s3"]["entries"]] \
            == [("f2.jpg", "overwritten")], doc
    finally:
        env.close()

