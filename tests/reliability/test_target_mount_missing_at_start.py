"""The real daemon started while its local target's file system is not mounted (an NFS
mount on the primary that failed at boot leaves an empty mount point).

An open item of the last session's note: the daemon wrote new files and a fresh
heartbeat into the bare mount point and said in_sync, while the mirror itself (what the
mirror host reads) fell behind. Now a target root found empty at open, with paths
shipped to it recorded, gets nothing until it holds the mirror again
(daemon_start.expect_mirrors, Target.expect_mirror); then it is caught up with no
restart. Real bind mounts (the suite runs as root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mirrord.targets.local import LocalTarget
from tests.e2e.helpers import wait_converged
from tests.reliability.conftest import Daemon, poll, umount


def _config(tmp: Path, src: Path, mnt: Path) -> Path:
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp}/state\nheartbeat_interval = 300ms\n"
                   f"[source:up]\npath = {src}\ntargets = nfs\n"
                   f"[target:nfs]\ntype = local\npath = {mnt}\n[reconcile]\nevery = off\n")
    return cfg


def _entries(root: Path) -> list[str]:
    """What stands in `root`, mirrord's own staging and lock files aside."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.relative_to(root).parts[:2] not in ((".mirrord", "tmp"),)
                  and p.name not in (".mirrord", "tmp") and not p.name.endswith(".lock"))


def test_a_target_not_mounted_at_start_gets_nothing_until_it_is_back(tmp_path):
    src, disk, mnt = tmp_path / "src", tmp_path / "disk", tmp_path / "mnt"
    for path in (src, disk, mnt):
        path.mkdir()
    for i in range(30):
        (src / f"f{i}.jpg").write_bytes(b"v1 %d" % i)
    subprocess.run(["mount", "--bind", str(disk), str(mnt)], check=True)
    d = Daemon(_config(tmp_path, src, mnt), tmp_path / "log")
    try:
        d.start()
        wait_converged(src, LocalTarget("nfs", mnt))
        d.stop()
        umount(mnt)                                   # the mount failed at the next boot
        d.start()
        (src / "new.jpg").write_bytes(b"written while the mirror is not mounted")
        poll(lambda: "holds nothing" in (d.status()["targets"]["nfs"].get("last_error") or ""),
             what="the target's error names the empty root")
        assert _entries(mnt) == []                    # no file, no heartbeat in the mount point
        assert "is its file system mounted?" in d.cli("status").stdout
        subprocess.run(["mount", "--bind", str(disk), str(mnt)], check=True)
        wait_converged(src, LocalTarget("nfs", mnt), timeout=120)
        assert (disk / "new.jpg").read_bytes() == b"written while the mirror is not mounted"
        poll(lambda: (disk / ".mirrord" / "heartbeat.json").exists(), what="the heartbeat")
        assert d.stop() == 0
    finally:
        d.stop()
        umount(mnt)


def test_a_source_and_mirror_both_emptied_on_purpose_are_mirrored_again(tmp_path):
    """Found by a breaker: the source and the mirror emptied while the daemon was stopped,
    `mirrord reconcile` (nothing to send: in sync), then started: the paths shipped before
    were still recorded, so the empty mirror was refused for good and a new upload never
    went out. A source that holds nothing expects no mirror."""
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.jpg").write_bytes(b"v1")
    d = Daemon(_config(tmp_path, src, mirror), tmp_path / "log")
    try:
        d.start()
        wait_converged(src, LocalTarget("nfs", mirror))
        d.stop()
        for path in list(src.iterdir()) + [p for p in mirror.iterdir() if p.name != ".mirrord"]:
            path.unlink()
        shutil.rmtree(mirror / ".mirrord")
        assert d.cli("reconcile", "--target", "nfs").returncode == 0
        d.start()
        (src / "new.jpg").write_bytes(b"the first upload of the new start")
        wait_converged(src, LocalTarget("nfs", mirror), timeout=60)
    finally:
        d.stop()
