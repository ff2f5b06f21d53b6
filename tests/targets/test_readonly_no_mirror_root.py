"""open(readonly=True) on a root that is no mirror at all raises MirrorRootMissing, which
failover refuses unless forced (failover.heartbeat.judge), on every target type: a local
or rsync root that does not exist or is not a directory (a file left where the mount
point was), an S3 bucket that does not exist.

A breaker: a regular file in place of the mirror root was a PermanentError, which failover
read as a silent primary (a warning): `failover --dry-run` exited 0 and /ready said 200
for a mirror that held nothing."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mirrord.errors import MirrorRootMissing
from mirrord.targets.s3.target import S3Target
from tests.targets.conftest import make_local, make_rsync, make_s3


@pytest.mark.parametrize("shape", ["missing", "a file"])
@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_root_that_is_not_a_directory_is_no_mirror(kind, shape, request, tmp_path):
    t = make_local(tmp_path) if kind == "local" else make_rsync(request.getfixturevalue("sshd"))
    root = Path(t.root) if kind == "local" else Path(t.opts.path)
    shutil.rmtree(root, ignore_errors=True)
    if shape == "a file":
        root.write_bytes(b"the mirror disk is not mounted\n")
    try:
        with pytest.raises(MirrorRootMissing) as caught:
            t.open(readonly=True)
    finally:
        t.close()
    said = "is not a directory" if shape == "a file" else "does not exist"
    assert said in str(caught.value)
    assert root.is_file() == (shape == "a file") and not root.is_dir()   # nothing made


def test_a_bucket_that_does_not_exist_is_no_mirror(seaweedfs):
    t = make_s3(seaweedfs)
    opts = dataclasses.replace(t.opts, bucket="no-such-bucket-here")
    t.close()
    gone = S3Target("s3", opts)
    try:
        with pytest.raises(MirrorRootMissing, match="NoSuchBucket"):
            gone.open(readonly=True)
    finally:
        gone.close()
