"""Found by a breaker (mirrord/targets/rsync/root_guard.py): the rsync root check was
defeated by the `.mirrord/` that mirrord's own writable open makes in a bare mount point
(a boot with the mirror's mount failed), and a target whose open failed at the daemon's
start (host unreachable) was never checked at all. Now only this open's witness, or the
root's identity, opens the way, and an open that failed is made before the next command.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirrord.errors import RetryableError
from mirrord.targets.model import SyncItem
from tests.targets.conftest import make_rsync

MTIME = 1_600_000_000.0
WHY = "the daemon's journal records paths shipped here"


def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False, capture_output=True)


def item(tmp_path: Path, rel: str) -> SyncItem:
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(rel.encode())
    os.utime(local, (MTIME, MTIME))
    return SyncItem(rel, "file", str(local), len(rel), MTIME)


@pytest.fixture
def made(sshd):
    out = []
    yield lambda t=None: out.append(t or make_rsync(sshd)) or out[-1]
    for t in out:
        t.close()
    for t in out:
        umount(t.opts.path)
        umount(t.opts.path)


def test_a_mirrord_an_earlier_open_left_in_the_mount_point_does_not_open_the_way(made, tmp_path):
    # 1. host rebooted, the mirror's mount failed: daemon #1 opens, finds the bare mount
    #    point empty, is told paths were shipped (awaiting): it refuses, fine...
    t1 = made()
    root = t1.opts.path
    t1.open()
    assert t1.found_empty
    t1.expect_mirror(WHY)
    assert isinstance(t1.sync([item(tmp_path, "x.jpg")])[0].error, RetryableError)
    # ...but its open made .mirrord/rsync-tmp in the bare mount point
    assert os.path.isdir(os.path.join(root, ".mirrord"))
    t1.close()
    # 2. operator mounts the mirror (holding its files and .mirrord/) and restarts mirrord
    mount("-t", "tmpfs", "-o", "size=8m", "mirrorE", root)
    Path(root, "a.jpg").write_bytes(b"mirrored")
    os.makedirs(os.path.join(root, ".mirrord"))
    Path(root, ".mirrord", "heartbeat.json").write_bytes(b"{}")
    t2 = made(make_rsync.__globals__["targets"].create(t1_cfg(t1)))
    t2.open()
    assert not t2.found_empty
    assert t2.sync([item(tmp_path, "b.jpg")])[0].error is None
    # 3. the mirror's file system is unmounted again while the daemon runs
    umount(root)
    assert os.listdir(root) == [".mirrord"]        # the leftover from step 1
    results = t2.sync([item(tmp_path, "c.jpg"), item(tmp_path, "new/dir/d.jpg")])
    errors = [r.error for r in results]
    hb_error = None
    try:
        t2.write_meta("heartbeat.json", b"{}")
    except RetryableError as exc:
        hb_error = exc
    landed = sorted(os.listdir(root))
    # expected: refused like any unmounted mirror; nothing written in the bare mount point
    assert all(isinstance(e, RetryableError) for e in errors) and hb_error is not None, \
        f"not refused: errors={errors} heartbeat_error={hb_error} bare mount point holds {landed}"


def t1_cfg(t):
    from mirrord.config import TargetConfig
    return TargetConfig(name="host", type="rsync", workers=2, rsync=t.opts)


def test_a_target_whose_open_failed_at_start_is_opened_and_checked(made, tmp_path, monkeypatch):
    """daemon_start.finish_opening: 'target not reachable at start; will retry' -- but
    nothing ever calls open() again, so guard.root_id stays None: no check at all."""
    t = made()
    root = t.opts.path
    mount("-t", "tmpfs", "-o", "size=8m", "mirrorE2", root)
    os.makedirs(os.path.join(root, ".mirrord"))
    Path(root, "a.jpg").write_bytes(b"mirrored")
    real = t.conn.run
    calls = {"n": 0}

    def flaky(*a, **k):   # the host unreachable for the daemon's open only
        calls["n"] += 1
        if calls["n"] == 1:
            raise RetryableError("ssh: connect to host: Connection refused")
        return real(*a, **k)
    monkeypatch.setattr(t.conn, "run", flaky)
    with pytest.raises(RetryableError):
        t.open()
    monkeypatch.setattr(t.conn, "run", real)
    assert t.sync([item(tmp_path, "b.jpg")])[0].error is None   # host back, mirror mounted
    umount(root)                                               # then unmounted
    results = t.sync([item(tmp_path, "c.jpg")])
    landed = sorted(os.listdir(root))
    assert isinstance(results[0].error, RetryableError), \
        f"not refused: {results[0].error}; bare mount point holds {landed}"


def test_a_first_batch_of_keeping_puts_after_a_failed_open_is_checked(made, tmp_path,
                                                                     monkeypatch):
    """The same with keep_deleted on: a batch of puts that keep what they overwrite runs
    its own --rsync-path (the keep wrapper), which took the root's check as it stood,
    none, before anything made the open that failed."""
    from mirrord.trash.model import stamp_of
    t = made()
    root = t.opts.path
    real = t.conn.run

    def refused(*a, **k):
        raise RetryableError("ssh: connect to host: Connection refused")
    monkeypatch.setattr(t.conn, "run", refused)
    with pytest.raises(RetryableError):
        t.open()
    monkeypatch.setattr(t.conn, "run", real)
    mount("-t", "tmpfs", "-o", "size=8m", "mirrorE3", root)
    Path(root, "a.jpg").write_bytes(b"mirrored")
    keeping = SyncItem("k.jpg", "file", str(tmp_path / "k"), 1, MTIME,
                       keep_stamp=stamp_of(1_795_000_000.0))
    (tmp_path / "k").write_bytes(b"k")
    os.utime(tmp_path / "k", (MTIME, MTIME))
    assert [r.error for r in t.sync([keeping])] == [None]
    assert t.guard.root_id is not None      # the open was made first
    umount(root)
    results = t.sync([SyncItem("k2.jpg", "file", str(tmp_path / "k"), 1, MTIME,
                               keep_stamp=stamp_of(1_795_000_001.0))])
    assert isinstance(results[0].error, RetryableError), results[0].error
    assert os.listdir(root) == []
