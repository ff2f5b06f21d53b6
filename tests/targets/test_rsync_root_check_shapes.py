"""Roots the rsync target's root check must not refuse (mirrord/targets/rsync/root_guard.py),
each taking puts, puts into new directories (rsync --mkpath), mkdirs, deletes, puts that
keep what they overwrite (the keep wrapper), moves, a listing and the heartbeat: written
by a breaker who found none refused.

Known and documented: a mirror copied to a new disk and mounted at the root while the
daemon runs is refused until the next open (restart) unless the copy holds this open's
witness (`.mirrord/open-*`): a bare mount point with a stale `.mirrord/` looks the same.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.config import RsyncOptions, TargetConfig
from mirrord.targets.model import SyncItem
from mirrord.trash.model import stamp_of

MTIME = 1_600_000_000.0


def sh(*a):
    subprocess.run(a, check=True, capture_output=True)


def item(tmp_path, rel, **kw):
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(rel.encode())
    os.utime(local, (MTIME, MTIME))
    return SyncItem(rel, "file", str(local), len(rel), MTIME, **kw)


def changes(tmp_path, n):
    return [item(tmp_path, f"b{n}.jpg"), item(tmp_path, f"new{n}/dir/c.jpg"), SyncItem(f"e{n}", "dir"),
            SyncItem("a.jpg", "absent"), item(tmp_path, "k.jpg", keep_stamp=stamp_of(1_795_000_000.0 + n))]


def target(sshd, path):
    cfg = TargetConfig(name="host", type="rsync", workers=2, rsync=RsyncOptions(
        host=sshd.host, port=sshd.port, user=sshd.user, path=path,
        ssh_key=sshd.key_path, known_hosts=sshd.known_hosts, strict_host_key_checking="yes"))
    return targets.create(cfg)


@pytest.mark.parametrize("kind", ["plain", "symlink", "subdir", "trailing", "weird", "dotslash"])
def test_legit_roots_keep_taking_changes(sshd, tmp_path, kind):
    base = sshd.new_root()
    mnt = base / ("m ' \" é $x" if kind == "weird" else "m")
    mnt.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=8m", "brkE", str(mnt))
    t = None
    try:
        if kind == "symlink":
            os.symlink(mnt, base / "link")
            path = str(base / "link")
        elif kind == "subdir":
            (mnt / "sub").mkdir()
            path = str(mnt / "sub")
        elif kind == "trailing":
            path = str(mnt) + "/"
        elif kind == "dotslash":
            path = str(mnt) + "/./"
        else:
            path = str(mnt)
        t = target(sshd, path)
        t.open()
        real = Path(path)
        for n, step in enumerate(["first", "rm .mirrord", "rm -rf everything", "heartbeat"]):
            if step == "rm .mirrord":
                shutil.rmtree(real / ".mirrord")
            elif step == "rm -rf everything":
                for e in os.listdir(real):
                    p = real / e
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            errs = [(r.item.path, r.error) for r in t.sync(changes(tmp_path, n)) if r.error]
            assert not errs, (step, errs)
            t.write_meta("heartbeat.json", b"{}")
            assert t.read_meta("heartbeat.json") == b"{}"
            t.mkdir(f"d{n}")
            t.move(f"b{n}.jpg", f"z/b{n}.jpg")
            assert any(e.path == f"z/b{n}.jpg" for e in t.list())
    finally:
        if t is not None:
            t.close()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_bind_mount_remounted_same_device_with_mirrord_removed(sshd, tmp_path):
    base = sshd.new_root()
    store, mnt = base / "store", base / "m"
    store.mkdir(); mnt.mkdir()
    sh("mount", "--bind", str(store), str(mnt))
    try:
        t = target(sshd, str(mnt))
        t.open()
        assert not [r for r in t.sync(changes(tmp_path, 0)) if r.error]
        shutil.rmtree(store / ".mirrord")
        sh("umount", str(mnt))
        sh("mount", "--bind", str(store), str(mnt))
        errs = [(r.item.path, r.error) for r in t.sync(changes(tmp_path, 1)) if r.error]
        assert not errs
        t.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
