"""Writes that raise no event here, and how they still reach the mirror.

A source on a FUSE (or NFS, CIFS) file system: writes made by another client of that
file system raise no inotify event here (inotify(7): events come from the local VFS).
mirrord says so at start and in status, mirrors what this host writes live, and
reconcile repairs what the other clients wrote.

The "other client" is the directory behind a bindfs (FUSE) mount: writing there
changes what the mount shows without passing through it, exactly like another NFS
client writing to the server.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, live_only_config, poll, umount


@contextlib.contextmanager
def bindfs(backing: Path, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bindfs", "--no-allow-other", str(backing), str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        umount(mountpoint)


@pytest.fixture
def fuse_env(tmp_path, seaweedfs, sshd):
    backing = tmp_path / "backing"
    backing.mkdir()
    (backing / "seed.jpg").write_bytes(b"seed")
    with bindfs(backing, tmp_path / "src"):
        e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd))
        try:
            yield e, backing
        finally:
            e.close()


def test_fuse_source_is_flagged_and_reconcile_repairs_other_clients_writes(fuse_env):
    env, backing = fuse_env
    env.daemon.start()
    assert "network or FUSE file system" in env.log_text()
    status = poll(lambda: (d := env.daemon.status().get("daemon")) and d.get("sources") and d,
                  what="the source's health in status")
    source = status["sources"]["uploads"]
    assert source["remote_writes_unseen"] is True and source["fstype"].startswith("fuse")
    assert "mirrored only by reconcile" in env.daemon.cli("status").stdout
    (env.src / "through-the-mount.jpg").write_bytes(b"seen live")       # this host: an event
    (backing / "other-client.jpg").write_bytes(b"written by another client")   # no event
    (backing / "seed.jpg").write_bytes(b"rewritten by another client")
    poll(lambda: env.targets["local"].read("through-the-mount.jpg") == b"seen live",
         what="the local write through the mount mirrored live")
    # A network or FUSE mount shows another client's writes only once its attribute and
    # page caches expire (NFS: actimeo; FUSE: attr_timeout): reconcile repairs what it sees.
    poll(lambda: (env.src / "seed.jpg").read_bytes() == b"rewritten by another client"
         and (env.src / "other-client.jpg").exists(), what="the mount shows the other writes")
    res = env.daemon.cli("reconcile", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=90, excluded=excluded)
    assert env.daemon.stop() == 0


def test_a_write_through_mmap_arrives_when_the_writer_lets_go(tmp_path, seaweedfs, sshd):
    """inotify(7): changes made through mmap(2) raise no IN_MODIFY. The mapping holds the
    file open for writing, so nothing is shipped half-written meanwhile (the shipper's read
    lease check); IN_CLOSE_WRITE comes when the last reference goes (munmap after close),
    and the live stream ships the file then — no reconcile needed."""
    import mmap
    import os

    env = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd))
    try:
        path = env.src / "mapped.bin"
        path.write_bytes(b"\0" * 8192)
        env.daemon.start()
        for target in env.targets.values():
            wait_exact(env.src, target, timeout=90, excluded=excluded)
        fd = os.open(path, os.O_RDWR)
        mapped = mmap.mmap(fd, 0)
        os.close(fd)                       # the mapping alone keeps the file open
        mapped[100:110] = b"via mmap!!"
        mapped.flush()
        mapped.close()                     # the last reference: IN_CLOSE_WRITE
        for target in env.targets.values():
            wait_exact(env.src, target, timeout=90, excluded=excluded)
        assert env.targets["local"].read("mapped.bin")[100:110] == b"via mmap!!"
        assert env.daemon.stop() == 0
    finally:
        env.close()
