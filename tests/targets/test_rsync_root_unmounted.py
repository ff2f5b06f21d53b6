"""The rsync target while the mirror host's file system at its root is unmounted
(mirrord/targets/rsync/root_guard.py).

An unmounted mirror leaves its mount point, an empty directory on the host's root file
system. The target went on writing there: rsync made the files (and with --mkpath the
directories to them), mkdirs, moves and the heartbeat went in, a reconcile listed the
empty mount point and sent the whole mirror into it, and status could say in_sync while
the real mirror, once mounted again, lacked every change since. The local target refuses
that (RootIdentity); the rsync target now does the same on the host: the root's device
number and whether it is a mount point, learnt at open, are checked by every remote
command and before every rsync receiver starts. A root emptied, or removed and made again
on the same file system (tests/targets/test_rsync_root_made_again.py), still takes files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirrord.errors import RetryableError
from mirrord.targets.model import SyncItem
from mirrord.trash.model import stamp_of
from tests.targets.conftest import make_rsync

MTIME = 1_600_000_000.0
REFUSED = "not the directory opened"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], check=False, capture_output=True)


@pytest.fixture
def host(sshd):
    t = make_rsync(sshd)
    yield t
    t.close()
    umount(t.opts.path)


def item(tmp_path: Path, rel: str, **kw) -> SyncItem:
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(rel.encode())
    os.utime(local, (MTIME, MTIME))
    return SyncItem(rel, "file", str(local), len(rel), MTIME, **kw)


def changes(tmp_path: Path) -> list[SyncItem]:
    """One of every change a batch carries: a put, a put into a new directory (rsync
    --mkpath), a directory, a delete, a tree removal, and a put keeping what it
    overwrites (the keep wrapper)."""
    return [item(tmp_path, "b.jpg"), item(tmp_path, "new/dir/c.jpg"), SyncItem("e", "dir"),
            SyncItem("a.jpg", "absent"), SyncItem("old", "absent", tree=True),
            item(tmp_path, "k.jpg", keep_stamp=stamp_of(1_795_000_000.0))]


def assert_all_refused(t, tmp_path: Path) -> None:
    for r in t.sync(changes(tmp_path)):
        assert isinstance(r.error, RetryableError), (r.item.path, r.error)
        assert REFUSED in str(r.error) or "rsync exit" in str(r.error), (r.item.path, r.error)
    for call in (lambda: t.write_meta("heartbeat.json", b"{}"), lambda: list(t.list()),
                 lambda: t.mkdir("m"), lambda: t.move("a.jpg", "z.jpg"), t.own_area,
                 lambda: t.delete("a.jpg")):
        with pytest.raises(RetryableError, match=REFUSED):
            call()


def test_a_bind_mounted_mirror_unmounted_gets_nothing_until_it_is_back(host, tmp_path):
    """A bind mount changes no device number: the root being a mount point tells."""
    store = tmp_path / "store"
    store.mkdir()
    root = host.opts.path
    mount("--bind", str(store), root)
    host.open()
    assert [r.error for r in host.sync([item(tmp_path, "a.jpg")])] == [None]
    umount(root)
    assert_all_refused(host, tmp_path)
    assert os.listdir(root) == []                  # nothing made in the bare mount point
    mount("--bind", str(store), root)              # the mirror back: changes go on
    assert all(r.error is None for r in host.sync(changes(tmp_path))), \
        [r.error for r in host.sync(changes(tmp_path))]
    assert {"b.jpg", "new", "e", "k.jpg"} <= set(os.listdir(store))
    assert not (store / "a.jpg").exists()


def test_a_mirror_file_system_unmounted_and_a_stale_mirrord_in_the_mount_point(host, tmp_path):
    """A file system of its own (its own device number) unmounted: refused, and still
    refused with a `.mirrord/` (even one holding a heartbeat and an earlier open's
    witness) in the bare mount point: an earlier open there (the mount failed at boot, a
    reconcile run while unmounted) left one, and any `.mirrord/` opened the way for good
    (breaker E). Only this open's witness, or the identity, does."""
    root = host.opts.path
    mount("-t", "tmpfs", "-o", "size=8m", "mirror1", root)
    host.open()
    assert [r.error for r in host.sync([item(tmp_path, "a.jpg")])] == [None]
    umount(root)
    assert_all_refused(host, tmp_path)
    assert os.listdir(root) == []
    stale = Path(root, ".mirrord")
    stale.mkdir()
    (stale / "heartbeat.json").write_bytes(b"{}")
    (stale / "open-0123456789abcdef").write_bytes(b"")
    (stale / "rsync-tmp").mkdir()
    assert_all_refused(host, tmp_path)
    assert sorted(os.listdir(root)) == [".mirrord"]


def test_a_readonly_open_learns_nothing_and_checks_nothing(host, tmp_path):
    """The read-only open (failover, trash on the mirror host) makes nothing and learns no
    identity: its commands run as before."""
    host.open(readonly=True)
    assert host.guard.root_id is None and host.guard.shell() == b""
    assert list(host.list()) == []


WHY = "the daemon's journal records paths shipped here"


@pytest.mark.parametrize("how", ["missing", "empty", "lost+found"])
def test_a_root_found_empty_at_open_with_paths_shipped_gets_nothing_until_it_holds_some(
        host, tmp_path, how):
    """The mirror's mount failed at boot: the daemon's open finds the root missing or
    holding nothing while paths shipped to it are recorded (Target.expect_mirror). Every
    change is refused until the root holds something (the mount back), then taken."""
    root = host.opts.path
    if how == "missing":
        os.rmdir(root)
    elif how == "lost+found":
        os.mkdir(os.path.join(root, "lost+found"))
    host.open()
    assert host.found_empty
    host.expect_mirror(WHY)
    for r in host.sync(changes(tmp_path)):
        assert isinstance(r.error, RetryableError), (r.item.path, r.error)
        assert "holds nothing" in str(r.error), (r.item.path, r.error)
    with pytest.raises(RetryableError, match="holds nothing"):
        host.write_meta("heartbeat.json", b"{}")
    made = {e for e in os.listdir(root) if e not in (".mirrord", "lost+found")}
    assert made == set()
    store = tmp_path / "store"   # the mirror's file system mounted: it holds the mirror
    store.mkdir()
    (store / "a.jpg").write_bytes(b"mirrored")
    (store / ".mirrord").mkdir()
    (store / ".mirrord" / "heartbeat.json").write_bytes(b"{}")
    mount("--bind", str(store), root)
    assert [r.error for r in host.sync([item(tmp_path, "b.jpg")])] == [None]
    assert (store / "b.jpg").exists()


def test_a_root_holding_the_mirror_at_open_is_written_to(host, tmp_path):
    Path(host.opts.path, "a.jpg").write_bytes(b"mirrored")
    host.open()
    assert not host.found_empty
    host.expect_mirror(WHY)
    assert [r.error for r in host.sync([item(tmp_path, "b.jpg")])] == [None]


def test_a_first_start_on_an_empty_root_is_written_to(host, tmp_path):
    """Nothing shipped recorded: the daemon does not call expect_mirror."""
    host.open()
    assert host.found_empty
    assert [r.error for r in host.sync([item(tmp_path, "b.jpg")])] == [None]
