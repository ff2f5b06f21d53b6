"""The mirror host's file system unmounted under a running daemon (rsync target).

The real daemon and the three real targets; the rsync target's root on the "mirror host"
is a bind mount. It goes away while files are written, deleted and made in new
directories on the source. Before, the daemon went on writing into the bare mount point
left on the host's root file system (rsync made the files and their directories there,
the heartbeat's area was made again), so the changes were acknowledged into a directory
the mirror hid again once mounted, and the mirror lacked them for good. Now nothing is
written there, the target is not in_sync, the other targets go on, and once the mirror
is mounted again every change arrives by the live stream and the target is in_sync.
"""

from __future__ import annotations

import configparser
import os
import subprocess

import pytest

from tests.reliability.conftest import Env, live_only_config, poll


def bind(store: str, root: str) -> None:
    subprocess.run(["mount", "--bind", store, root], check=True, capture_output=True)


def umount(root: str) -> None:
    subprocess.run(["umount", "-l", root], check=False, capture_output=True)


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    cfg = live_only_config(tmp_path, seaweedfs, sshd)
    cfg.write_text(cfg.read_text() + "at_start = no\n")   # no pass at all: the live stream alone
    cp = configparser.ConfigParser()
    cp.read(cfg)
    root = cp["target:host"]["path"]
    store = tmp_path / "mirror-disk"
    store.mkdir()
    bind(str(store), root)
    e = Env(tmp_path, cfg)
    e.host_root = root
    try:
        yield e
    finally:
        e.close()
        umount(root)


def test_changes_while_the_mirror_is_unmounted_arrive_once_it_is_back(env):
    for i in range(5):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "in_sync", timeout=60,
         what="host in_sync")

    umount(env.host_root)
    (env.src / "f0.jpg").unlink()
    (env.src / "f1.jpg").write_bytes(b"changed")
    (env.src / "new" / "deep").mkdir(parents=True)
    for i in range(5):
        (env.src / "new" / "deep" / f"n{i}.jpg").write_bytes(b"n" * (10 + i))

    poll(lambda: "not the directory opened" in env.log_text(), timeout=60,
         what="the refusal logged")
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] != "in_sync", timeout=60,
         what="host not in_sync")
    poll(lambda: all(env.daemon.status()["targets"][n]["pending"] == 0 for n in ("local", "s3")),
         timeout=60, what="the other targets drained")   # they go on
    assert env.daemon.status()["targets"]["host"]["state"] != "in_sync"
    assert os.listdir(env.host_root) == []   # nothing made in the bare mount point

    bind(str(env.tmp / "mirror-disk"), env.host_root)
    env.assert_exact()
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "in_sync", timeout=60,
         what="host in_sync again")


def test_a_mirror_not_mounted_at_start_gets_nothing_until_it_is_back(env):
    """The mirror host's mount failed at boot and the daemon started: its open found the
    root holding nothing while paths shipped to it are recorded. Before, it wrote new files
    and a fresh heartbeat into the bare mount point and said in_sync."""
    for i in range(5):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0
    umount(env.host_root)                          # the mount failed at the next boot
    env.daemon.start()
    (env.src / "new.jpg").write_bytes(b"written while the mirror is not mounted")
    poll(lambda: "holds nothing" in (env.daemon.status()["targets"]["host"].get("last_error")
                                     or ""), timeout=60, what="the host's error names the empty root")
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "degraded", timeout=60,
         what="host degraded")   # decided at the next heartbeat
    assert [e for e in os.listdir(env.host_root) if e != ".mirrord"] == []
    assert not os.path.exists(os.path.join(env.host_root, ".mirrord", "heartbeat.json"))
    bind(str(env.tmp / "mirror-disk"), env.host_root)
    env.converge()
    assert (env.tmp / "mirror-disk" / "new.jpg").read_bytes() == \
        b"written while the mirror is not mounted"
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "in_sync", timeout=60,
         what="host in_sync again")


def test_an_unmount_is_seen_after_a_boot_with_the_mount_missing(env):
    """Found by a breaker: a boot with the mirror's mount missing leaves `.mirrord/` in the
    bare mount point (made by the daemon's own writable open); after the mirror is back and
    the daemon restarted once, an unmount is no longer noticed: new files and the heartbeat
    go into the bare mount point and status says in_sync. Now refused."""
    for i in range(3):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0
    umount(env.host_root)                       # boot 2: the mount failed
    env.daemon.start()
    (env.src / "boot2.jpg").write_bytes(b"a change to refuse")
    poll(lambda: "holds nothing" in (env.daemon.status()["targets"]["host"].get("last_error")
                                     or ""), timeout=60, what="refused while empty")
    assert os.path.isdir(os.path.join(env.host_root, ".mirrord"))   # made by the open
    bind(str(env.tmp / "mirror-disk"), env.host_root)               # operator mounts it
    env.converge()
    assert env.daemon.stop() == 0                # a later restart (upgrade, reboot ...)
    env.daemon.start()
    env.converge()
    umount(env.host_root)                        # the mirror's file system goes away again
    (env.src / "late.jpg").write_bytes(b"written while the mirror is not mounted")
    poll(lambda: "not the directory opened" in (env.daemon.status()["targets"]["host"]
                                                .get("last_error") or ""),
         timeout=60, what="the host's change refused")
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "degraded", timeout=60,
         what="host degraded")
    bare = sorted(os.listdir(env.host_root))
    state = env.daemon.status()["targets"]["host"]["state"]
    assert "late.jpg" not in bare and state != "in_sync", \
        f"bare mount point holds {bare}; host state {state}"


def test_an_unmount_is_seen_after_an_open_that_failed_at_start(env, sshd):
    """Found by a breaker: the mirror host unreachable at the daemon's start. The open fails
    ("target not reachable at start; will retry"), nothing ever opens the target again, so
    the root guard never learns the root (guard.root_id None: no check at all). Once the host
    answers, a later unmount of the mirror is not noticed: files and the heartbeat go into
    the bare mount point and status says in_sync. Now refused."""
    for i in range(3):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0
    sshd.stop()                                   # mirror host down at the daemon's start
    try:
        env.daemon.start()
        poll(lambda: "not reachable at start" in env.log_text(), timeout=60,
             what="the open failed")
    finally:
        sshd.start()                              # host back, mirror mounted
    (env.src / "back.jpg").write_bytes(b"sent once the host is back")
    poll(lambda: (env.tmp / "mirror-disk" / "back.jpg").exists(), timeout=120,
         what="shipping resumed")
    umount(env.host_root)                         # the mirror's file system goes away
    (env.src / "late.jpg").write_bytes(b"written while the mirror is not mounted")
    poll(lambda: "not the directory opened" in (env.daemon.status()["targets"]["host"]
                                                .get("last_error") or ""),
         timeout=60, what="the host's change refused")
    poll(lambda: env.daemon.status()["targets"]["host"]["state"] == "degraded", timeout=60,
         what="host degraded")
    bare = sorted(os.listdir(env.host_root))
    state = env.daemon.status()["targets"]["host"]["state"]
    assert "late.jpg" not in bare and state != "in_sync", \
        f"bare mount point holds {bare}; host state {state}"


@pytest.mark.parametrize("name", ["host", "local"])
def test_an_unattended_reconcile_does_not_fill_an_unmounted_mirror(env, tmp_path, name):
    """Found by a breaker: `mirrord reconcile` with the daemon stopped (the shipped hourly
    mirrord-reconcile.timer does exactly this whenever mirrord.service is down) sent the
    whole mirror into the bare mount point of a mirror whose file system was not mounted.
    Now it refuses that target (exit 1, naming it) and reconciles the others; naming the
    target (`--target`) is the operator's way to refill a mirror emptied on purpose."""
    for i in range(3):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0
    if name == "host":
        root = env.host_root
        umount(root)                             # the mirror's mount is missing
    else:
        cp = configparser.ConfigParser()
        cp.read(env.cfg)
        root = str(env.cfg.parent / cp["target:local"]["path"])
        disk = tmp_path / "local-disk"
        os.rename(root, disk)                    # what a mount point shows when unmounted
        os.mkdir(root)
    proc = env.daemon.cli("reconcile", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "holds nothing while paths shipped to it are recorded" in proc.stdout + proc.stderr
    assert [e for e in os.listdir(root) if e != ".mirrord"] == []
    proc = env.daemon.cli("reconcile", "--target", name, check=False)   # on purpose: fills
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(e for e in os.listdir(root) if e != ".mirrord") == ["f0.jpg", "f1.jpg", "f2.jpg"]
