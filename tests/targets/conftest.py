"""One `target` fixture, parametrised over every target type, each on a fresh root.

The conformance suite runs unchanged against all of them, with real services:
the in-memory fake, a local directory, rsync through a real sshd, and S3
through a real SeaweedFS. None of them is ever skipped.
"""

from __future__ import annotations

import itertools

import pytest

from mirrord import targets
from mirrord.config import LocalOptions, RsyncOptions, S3Options, TargetConfig
from mirrord.targets.memory import MemoryTarget

_counter = itertools.count()


def make_local(tmp_path):
    cfg = TargetConfig(name="local", type="local", workers=4,
                       local=LocalOptions(path=tmp_path / "target"))
    return targets.create(cfg)


def make_s3(seaweedfs, prefix: str = "pre fix/"):
    cfg = TargetConfig(name="s3", type="s3", workers=4, s3=S3Options(
        bucket=seaweedfs.new_bucket(), prefix=prefix, endpoint_url=seaweedfs.endpoint_url,
        region=seaweedfs.region, access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key, addressing_style="path",
        multipart_threshold=8 << 20, multipart_chunksize=5 << 20))
    return targets.create(cfg)


def make_rsync(sshd, *, keep_deleted: float = 0.0):
    cfg = TargetConfig(name="host", type="rsync", workers=2, keep_deleted=keep_deleted, rsync=RsyncOptions(
        host=sshd.host, port=sshd.port, user=sshd.user, path=str(sshd.new_root()),
        ssh_key=sshd.key_path, known_hosts=sshd.known_hosts,
        strict_host_key_checking="yes"))
    return targets.create(cfg)


def make_target(kind: str, request, tmp_path):
    """A fresh, unopened target of `kind` (memory, local, rsync, s3); the services it needs
    come from `request`'s fixtures (sshd, seaweedfs)."""
    if kind == "memory":
        return MemoryTarget()
    if kind == "local":
        return make_local(tmp_path)
    if kind == "rsync":
        return make_rsync(request.getfixturevalue("sshd"))
    return make_s3(request.getfixturevalue("seaweedfs"))


@pytest.fixture(params=["memory", "local", "rsync", "s3"])
def target(request, tmp_path):
    t = make_target(request.param, request, tmp_path)
    t.open()
    yield t
    t.close()
