"""A file system mounted below a source root (a "sub-mount": src/site42 on its own tmpfs)
that goes away is never taken for the user deleting its files, on every target, by
every caller (live stream, catch-up, reconcile at start and by command); one that comes
back or appears while the daemon runs is shipped and watched (mirrord.submounts,
mirrord.daemon_mounts). Before: a restart or a reconcile while it was unmounted deleted
the mirror's copy of everything in it, and what a mount brought in was missed.

Real mounts (the suite runs as root); every mount is taken down in `finally`, lazily if
busy, so a failing test leaves none behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import target_files
from tests.reliability.conftest import Env, poll, tmpfs, umount, write_config

SITE = "site42"


def _config(tmp: Path, seaweedfs, sshd, *, at_start: str = "yes", watcher: str = "auto") -> Path:
    """Three real targets; no scheduled reconcile (what arrives later arrives live)."""
    cfg = write_config(tmp, seaweedfs, sshd)
    text = cfg.read_text().replace("[source:uploads]\n", f"[source:uploads]\nwatcher = {watcher}\n")
    cfg.write_text(text + f"\n[reconcile]\nevery = off\nat_start = {at_start}\n")
    return cfg


def _fill(root: Path, files: dict[str, bytes]) -> None:
    """Write `files` below `root`; a tmpfs's own root (mode 1777) gets the 0755 of an
    ordinary directory first, so only what the test changes differs."""
    for top in {rel.split("/", 1)[0] for rel in files if "/" in rel}:
        if (root / top).is_dir():
            (root / top).chmod(0o755)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _site_files() -> dict[str, bytes]:
    return {f"{SITE}/{d}/f{i}.jpg": os.urandom(200) for i in range(6) for d in ("a", "b/c")}


def _holds(env: Env, files: dict[str, bytes]) -> None:
    """Every target holds each of `files` byte for byte (and maybe more)."""
    for name, target in env.targets.items():
        held = target_files(target)
        missing = sorted(p for p, d in files.items() if held.get(p) != d)
        assert not missing, (name, missing[:5], len(missing))


def _all_hold(env: Env, files: dict[str, bytes]):
    def check():
        try:
            _holds(env, files)
        except AssertionError:
            return False
        return True
    return check


def _only_kept_below_site(env: Env, kept: str) -> None:
    """Wait until every target holds nothing below SITE but the file `kept` (what the data
    moved in lacks, deleted)."""
    poll(lambda: all(set(p for p in target_files(t) if p.startswith(SITE + "/")
                         and not p.endswith("/")) <= {kept} for t in env.targets.values()),
         timeout=90, what="what the moved-in data lacks deleted on every target")


def _lost_mounts(env: Env) -> list[str]:
    return env.daemon.status()["sources"]["uploads"].get("lost_mounts") or []


@contextlib.contextmanager
def _bound(staging: Path, at: Path) -> Iterator[Path]:
    """`staging` bind-mounted at `at` (a file system appearing with its contents in place
    at once), always unmounted afterwards."""
    at.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(staging), str(at)], check=True)
    try:
        yield at
    finally:
        umount(at)


@pytest.fixture
def site(tmp_path, seaweedfs, sshd):
    """(env factory, source, files): src/ holds top.txt and src/site42, its own tmpfs,
    with files; the mount is undone whatever happens."""
    src = tmp_path / "src"
    src.mkdir()
    envs: list[Env] = []

    def make(at_start: str = "yes", watcher: str = "auto") -> Env:
        envs.append(Env(tmp_path, _config(tmp_path, seaweedfs, sshd, at_start=at_start,
                                          watcher=watcher)))
        return envs[-1]
    try:
        with tmpfs(src / SITE, "8m"):
            files = {"top.txt": b"top", **_site_files()}
            _fill(src, files)
            yield make, src, files
    finally:
        for e in envs:
            e.close()
        umount(src / SITE)


def _mirrored_then_unmounted_while_stopped(site, at_start: str = "yes"):
    """(env, src, files): the daemon mirrored the tree, stopped, and the sub-mount went
    away (shape 2: gone while stopped)."""
    make, src, files = site
    env = make(at_start)
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0
    umount(src / SITE)
    return env, src, files


def _mirrored_then_unmounted_while_running(site):
    """(env, src, files): the daemon mirrored the tree, then the sub-mount went away under
    it (shape 1) and status shows it lost."""
    make, src, files = site
    env = make()
    env.daemon.start()
    env.converge()
    umount(src / SITE)
    poll(lambda: _lost_mounts(env) == [SITE], what="the lost sub-mount shown in status")
    return env, src, files


def test_unmounted_while_running_keeps_the_mirror_and_a_remount_is_watched(site):
    env, src, files = _mirrored_then_unmounted_while_running(site)
    assert not any((src / SITE).iterdir())
    (src / "after.txt").write_text("live")               # the rest still streams live
    poll(_all_hold(env, {"after.txt": b"live"}), what="after.txt shipped")
    res = env.daemon.cli("reconcile", check=False)       # shape 3, the daemon running
    assert SITE in res.stdout + res.stderr, res.stdout + res.stderr
    _holds(env, files)
    status = env.daemon.status()
    assert status["daemon"]["sources"]["uploads"]["state"] == "degraded"
    assert status["daemon"]["sources"]["uploads"]["lost_mounts"] == [SITE]
    with tmpfs(src / SITE, "8m"):                        # shape 4: back, with one file more
        _fill(src, {**files, f"{SITE}/back.txt": b"back"})
        poll(_all_hold(env, {f"{SITE}/back.txt": b"back"}), timeout=60,
             what="a file the new mount brought shipped without a reconcile")
        (src / SITE / "a" / "live.txt").write_text("in the new mount")
        poll(_all_hold(env, {f"{SITE}/a/live.txt": b"in the new mount"}), timeout=60,
             what="a write inside the new mount streamed live")
        (src / SITE / "a" / "f0.jpg").unlink()           # a real delete in it goes out again
        poll(lambda: all(f"{SITE}/a/f0.jpg" not in target_files(t)
                         for t in env.targets.values()), what="a delete inside the new mount")
        assert _lost_mounts(env) == []
        env.assert_exact(passes_allowed=True)
    env.daemon.stop()


@pytest.mark.parametrize("at_start", ["yes", "no"])
def test_unmounted_while_stopped_keeps_the_mirror(site, at_start):
    env, src, files = _mirrored_then_unmounted_while_stopped(site, at_start)
    env.daemon.start()                                   # catch-up (and a pass when at_start)
    poll(lambda: "catch-up done" in env.log_text(), what="the start's catch-up")
    if at_start == "yes":
        poll(lambda: "reconcile pass" in env.log_text(), what="the start's reconcile pass")
    poll(lambda: _lost_mounts(env) == [SITE], what="the lost sub-mount shown in status")
    poll(env.drained, what="the backlog drained")
    _holds(env, files)
    assert "refused" in env.log_text() or "not mounted" in env.log_text()
    with tmpfs(src / SITE, "8m"):                        # back while running: nothing lost
        _fill(src, files)
        poll(lambda: _lost_mounts(env) == [], what="the sub-mount back")
        env.assert_exact(passes_allowed=True)
    env.daemon.stop()


def test_an_empty_file_system_mounted_in_its_place_deletes_nothing(site):
    """While stopped, the mount is replaced by an empty one (mounted by mistake, or a tmpfs
    mounted again, which may get its old st_dev back): neither the catch-up nor the start's
    pass deletes what the mirror holds of it."""
    env, src, files = _mirrored_then_unmounted_while_stopped(site)
    with tmpfs(src / SITE, "8m"):
        (src / SITE).chmod(0o755)
        env.daemon.start()
        poll(lambda: "catch-up done" in env.log_text(), what="the start's catch-up")
        poll(lambda: env.log_text().count("reconcile pass done") >= 3, what="the start's passes")
        poll(env.drained, what="the backlog drained")
        _holds(env, files)
        assert "empty (mounted by mistake?)" in env.log_text()
        env.daemon.stop()


def test_reconcile_command_while_unmounted_deletes_nothing(site):
    env, src, files = _mirrored_then_unmounted_while_stopped(site)
    res = env.daemon.cli("reconcile", check=False)       # shape 3, the daemon stopped
    assert SITE in res.stdout + res.stderr and "not deleting" in res.stdout + res.stderr, \
        res.stdout + res.stderr
    _holds(env, files)


def test_retired_mount_point_is_forgotten(site):
    """The operator retires the mount and removes its mount point: the deletes go."""
    env, src, _files = _mirrored_then_unmounted_while_running(site)
    (src / SITE).rmdir()                                 # retired for good
    poll(lambda: all(not any(p.startswith(SITE + "/") for p in target_files(t))
                     for t in env.targets.values()), timeout=90,
         what="the retired mount's files deleted on every target")
    assert _lost_mounts(env) == []
    env.daemon.stop()


@pytest.mark.parametrize("watcher", ["inotify", "fanotify"])
def test_new_mount_below_the_root_is_shipped_and_watched(site, tmp_path, watcher):
    """inotify watches the new mount; fanotify's mark cannot see it, so it is counted
    unwatched and compared every few seconds (mirrord.daemon_mounts)."""
    make, src, _files = site
    env = make(watcher=watcher)
    env.daemon.start()
    env.converge()
    staging = tmp_path / "staging"
    with tmpfs(staging, "8m"):
        staging.chmod(0o755)
        new = {f"site43/x{i}.jpg": os.urandom(100) for i in range(5)}
        _fill(staging, {p.split("/", 1)[1]: d for p, d in new.items()})
        with _bound(staging, src / "site43"):            # shape 5: an operator adds a site
            poll(_all_hold(env, new), timeout=60, what="the new mount's files shipped")
            (src / "site43" / "y.jpg").write_bytes(b"y")
            poll(_all_hold(env, {"site43/y.jpg": b"y"}), timeout=60,
                 what="a write inside the new mount shipped")
            if watcher == "fanotify":
                health = env.daemon.status()["daemon"]["sources"]["uploads"]
                assert "site43" in health["unwatched_paths"], health
            env.assert_exact(passes_allowed=True)
    env.daemon.stop()


def test_data_moved_in_place_of_a_lost_mount_is_compared(site):
    """Found by a breaker: the mount goes away and the operator moves part of its data into
    the directory left behind. The point is forgotten (it holds files, no mount), but
    nothing compared it, so what the moved-in data lacks stayed on every target until a
    reconcile; now a point no longer lost is compared."""
    env, src, files = _mirrored_then_unmounted_while_running(site)
    kept = f"{SITE}/a/f0.jpg"
    _fill(src, {kept: files[kept]})                      # only one file moved in
    poll(lambda: _lost_mounts(env) == [], what="the point forgotten: data moved in")
    _only_kept_below_site(env, kept)
    env.converge()
    env.daemon.stop()


def test_a_file_bind_mounted_below_the_root_while_running_is_shipped(site, tmp_path):
    """Found by a breaker: a single file bind-mounted over another below the root while the
    daemon runs (a config file, say). Its subtree check walked nothing (a file is no
    subtree), so the old bytes stayed on every target; and so after its unmount."""
    make, src, _files = site
    (src / "bound.txt").write_bytes(b"")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"the bytes bound over it")
    env = make()
    env.daemon.start()
    env.converge()
    subprocess.run(["mount", "--bind", str(outside), str(src / "bound.txt")], check=True)
    try:
        poll(_all_hold(env, {"bound.txt": b"the bytes bound over it"}), timeout=60,
             what="the bound file's bytes shipped")
    finally:
        umount(src / "bound.txt")
    poll(_all_hold(env, {"bound.txt": b""}), timeout=60,
         what="the file under it shipped again once unmounted")
    env.daemon.stop()


def test_auto_started_while_a_remembered_mount_is_away_watches_it_once_back(site):
    """`auto` saw only the mount table: a daemon started while its sub-mount was away took
    fanotify, whose mark cannot see into the mount once it is back, so it stayed unwatched
    (degraded, compared every 5 s) until a restart. The mount points the state database
    remembers count too now (daemon_start.remembered_mounts)."""
    env, src, files = _mirrored_then_unmounted_while_stopped(site)
    env.daemon.start()
    assert "auto: a file system remembered below the root is not mounted now (site42)" in (
        env.log_text()), env.log_text()[-2000:]
    poll(lambda: _lost_mounts(env) == [SITE], what="the lost sub-mount shown in status")
    with tmpfs(src / SITE, "8m"):
        _fill(src, {**files, f"{SITE}/back.txt": b"back"})
        poll(_all_hold(env, {f"{SITE}/back.txt": b"back"}), timeout=60,
             what="the returned mount's new file shipped")
        poll(lambda: env.daemon.status()["daemon"]["sources"]["uploads"]["state"] == "ok",
             what="the source ok: every directory of the mount watched")
        health = env.daemon.status()["daemon"]["sources"]["uploads"]
        assert health["unwatched_directories"] == 0, health
        env.assert_exact(passes_allowed=True)
    env.daemon.stop()


def test_a_bind_mount_of_the_roots_own_file_system_unmounted_is_lost(site, tmp_path):
    """Found by a breaker: a bind mount of a directory on the root's own file system keeps
    its st_dev once unmounted, so its loss was taken for an empty file system mounted
    there: deletes held (right), but status said in_sync, no lost_mounts, heartbeat not
    degraded. The mount table tells now."""
    make, src, _files = site
    env = make()
    staging = tmp_path / "elsewhere"                    # tmp_path: the root's file system
    staging.mkdir()
    (staging / "pre.jpg").write_bytes(b"pre")
    env.daemon.start()
    env.converge()
    with _bound(staging, src / "bm"):
        poll(_all_hold(env, {"bm/pre.jpg": b"pre"}), timeout=60, what="the bind mount shipped")
        env.daemon.stop()
        env.daemon.start()                               # remembered with its st_dev
    poll(lambda: _lost_mounts(env) == ["bm"], what="the unmounted bind mount shown lost")
    poll(lambda: env.daemon.status()["targets"]["local"]["state"] == "degraded",
         what="the target degraded")
    health = env.daemon.status()["daemon"]["sources"]["uploads"]
    assert health["lost_mounts"] == ["bm"], health
    _holds(env, {"bm/pre.jpg": b"pre"})                  # nothing deleted
    assert env.daemon.stop() == 0
    assert _lost_mounts(env) == ["bm"]                   # status with the daemon stopped too
    with _bound(staging, src / "bm"):
        env.daemon.start()
        poll(lambda: _lost_mounts(env) == [], what="back: not lost")
        env.assert_exact(passes_allowed=True)
    env.daemon.stop()


def test_a_mount_points_own_mode_is_mirrored_live(site):
    """chmod of a mount point changes the mounted root's inode: inotify reports it only
    on that root's own watch (the parent's watch is on the directory the mount covers),
    and it was mirrored only by a restart's catch-up."""
    make, src, files = site
    env = make()                                  # auto: inotify, a mount is below the root
    env.daemon.start()
    env.converge()
    (src / SITE).chmod(0o750)
    (src / SITE / "a").chmod(0o700)               # an ordinary directory, for comparison
    env.assert_exact(passes_allowed=True)


def _mount_tmpfs(at: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=755", "tmpfs", str(at)],
                   check=True)


@contextlib.contextmanager
def _one_point(tmp_path: Path) -> Iterator[tuple]:
    """(SubMounts of tmp/src, its point SITE): a tmpfs holding a.jpg, unmounted afterwards."""
    from mirrord.submounts import SubMounts

    root = tmp_path / "src"
    point = root / SITE
    point.mkdir(parents=True)
    _mount_tmpfs(point)
    try:
        (point / "a.jpg").write_bytes(b"shipped")
        yield SubMounts("uploads", str(root)), point
    finally:
        umount(point)


def test_an_empty_tmpfs_mounted_at_once_in_a_points_place_is_lost_before_any_refresh(tmp_path):
    """The root's rule one level down (found in CI for the root): a sub-mount's tmpfs
    unmounted and an empty one mounted at once shows the st_dev it had, and the point
    was still in the mount table read last: a queued change's delete below it was let
    through until the main loop read the table again. The mount ID tells (mirrord.mountid);
    once the table is read, the point mounted anew empty stays held until it holds files."""
    with _one_point(tmp_path) as (mounts, point):
        assert mounts.refresh() == [SITE]
        assert mounts.refusal(f"{SITE}/a.jpg") is None        # mounted: the user's delete goes
        dev = os.stat(point).st_dev
        subprocess.run(["umount", "-l", str(point)], check=True)
        _mount_tmpfs(point)
        assert os.stat(point).st_dev == dev                   # the trap: the same st_dev
        assert "not mounted" in (mounts.refusal(f"{SITE}/a.jpg") or "")
        assert mounts.lost() == [SITE]
        assert mounts.refresh() == [SITE]                     # compared again by the daemon
        assert "not mounted" in (mounts.refusal(f"{SITE}/a.jpg") or "")   # held while empty
        (point / "new.jpg").write_bytes(b"written on the new file system")
        assert mounts.refusal(f"{SITE}/a.jpg") is None        # holds files: deletes go on
        assert mounts.lost() == []


def test_a_tmpfs_mounted_anew_with_files_in_a_points_place_lets_deletes_go(tmp_path):
    """A point mounted anew that already holds files (restored, or the same export
    mounted again) is mounted, not lost: a delete below it goes out."""
    with _one_point(tmp_path) as (mounts, point):
        mounts.refresh()
        subprocess.run(["sh", "-c", f"umount -l {point} && mount -t tmpfs -o size=4m,mode=755 "
                        f"tmpfs {point} && echo restored > {point}/b.jpg"], check=True)
        assert mounts.refusal(f"{SITE}/a.jpg") is None
        assert mounts.refresh() == [SITE]
        assert mounts.refusal(f"{SITE}/a.jpg") is None
        assert mounts.lost() == []


def test_data_moved_in_then_a_mount_elsewhere_is_still_compared(site, tmp_path):
    """Found in this session's rehearsal: the data moved in, then any mount table change on
    the host (another test's tmpfs; on a real host, a container's) before the 5-second
    recheck. That change's look forgot the point was lost without comparing it, so what
    the moved-in data lacks stayed on every target."""
    env, src, files = _mirrored_then_unmounted_while_running(site)
    kept = f"{SITE}/a/f0.jpg"
    _fill(src, {kept: files[kept]})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with tmpfs(elsewhere, "1m"):                          # the mount table changes
        poll(lambda: _lost_mounts(env) == [], what="the point forgotten: data moved in")
        _only_kept_below_site(env, kept)
    env.converge()
    env.daemon.stop()


@pytest.mark.parametrize("watcher", ["inotify", "fanotify"])
def test_an_empty_mount_over_a_shipped_directory_then_written_is_compared(site, tmp_path, watcher):
    """A breaker: an empty file system mounted while running over a directory that held
    shipped files is held lost (its deletes refused) until something is written in it;
    then it is compared, and the files it hides leave the targets. Under inotify they
    stayed on every target, status in_sync, a reconcile finding 3 extra."""
    make, src, files = site
    (src / "m").mkdir()
    hidden = {f"m/old{i}": b"hidden later" for i in range(3)}
    _fill(src, hidden)
    env = make(watcher=watcher)
    env.daemon.start()
    env.converge()
    with tmpfs(src / "m", "1m"):
        (src / "m").chmod(0o755)
        poll(lambda: "m" in _lost_mounts(env), what="the empty mount held lost")
        (src / "m" / "new").write_bytes(b"first file on the new mount")
        env.converge(timeout=90)
        env.daemon.stop()
