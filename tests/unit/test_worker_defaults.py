"""A target's worker count when nothing sets it (mirrord.config.worker_defaults): a local
target with `fsync = no` on a local disk's file system takes LOCAL_DEFAULT_WORKERS (more
threads only hand Python's GIL around); with fsync on (each put waits for the disk), or
on a network file system, or one whose type is not known, [mirrord] workers (8), as each
of its operations waits. Anything written wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord import fsutil
from mirrord.config import load
from mirrord.config import worker_defaults
from mirrord.config.worker_defaults import LOCAL_DEFAULT_WORKERS

BODY = """
[mirrord]
state_dir = {state}
{mirrord}

[source:up]
path = {src}
targets = mirror

[target:mirror]
type = local
path = {dest}
fsync = {fsync}
{extra}
"""


def _workers(tmp_path: Path, dest: Path, mirrord: str = "", extra: str = "",
             fsync: str = "no") -> int:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    path = tmp_path / "m.ini"
    path.write_text(BODY.format(state=tmp_path / "state", mirrord=mirrord, src=src,
                                dest=dest, extra=extra, fsync=fsync))
    return load(path).target("mirror").workers


@pytest.mark.parametrize("where", ["tmp", "shm"])
def test_a_local_target_on_a_local_disk_takes_two(tmp_path, where):
    """The real file systems of this host: the test's own directory and /dev/shm (tmpfs)."""
    if where == "shm":
        dest = Path("/dev/shm") / f"mirrord-test-{tmp_path.name}"
    else:
        dest = tmp_path / "dest"
    assert _workers(tmp_path, dest) == LOCAL_DEFAULT_WORKERS == 2


@pytest.mark.parametrize("fsync", ["yes", "on", "true"])
def test_a_local_target_that_fsyncs_takes_mirrord_workers(tmp_path, fsync):
    assert _workers(tmp_path, tmp_path / "dest", fsync=fsync) == 8


def test_a_mirror_root_not_made_yet_is_judged_by_its_mount(tmp_path):
    assert _workers(tmp_path, tmp_path / "not" / "made" / "yet") == 2


MOUNTINFO = r"""22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 0:40 / /srv/mirror rw,relatime shared:2 - nfs4 fs:/export rw
31 30 0:41 / /srv/mirror/local\040disk rw shared:3 - xfs /dev/vdb rw
32 22 0:42 / /mnt rw - tmpfs tmpfs rw
33 32 0:43 / /mnt rw - cifs //fs/share rw
"""


@pytest.mark.parametrize("path, want", [
    ("/srv/mirror", "nfs4"), ("/srv/mirror/", "nfs4"), ("/srv/mirror/a/b", "nfs4"),
    ("/srv/mirror/local disk/x", "xfs"),     # the mount point's space is written \040
    ("/srv/mirrors", "ext4"),                # a name that only starts like a mount point
    ("/srv/mirror/../other", "ext4"),
    ("//srv/mirror/a", "nfs4"),              # normpath keeps a leading // (POSIX)
    ("/mnt/x", "cifs"),                      # a later mount at the same point hides the first
    ("/", "ext4"),
])
def test_the_file_system_is_found_by_the_paths_name(tmp_path, path, want):
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    assert fsutil.type_by_name(path, str(table)) == want


def test_no_mount_table_is_no_local_disk(tmp_path):
    assert fsutil.type_by_name("/x", str(tmp_path / "gone")) is None


@pytest.mark.parametrize("fstype", ["nfs4", "nfs", "cifs", "fuse.sshfs", None])
def test_a_local_target_on_a_network_or_unknown_file_system_takes_mirrord_workers(
        tmp_path, monkeypatch, fstype):
    seen = []

    def type_by_name(path):
        seen.append(path)
        return fstype
    monkeypatch.setattr(worker_defaults.fsutil, "type_by_name", type_by_name)
    assert _workers(tmp_path, tmp_path / "dest") == 8
    assert seen == [str(tmp_path / "dest")]


@pytest.mark.parametrize("mirrord, extra, want", [
    ("workers = 8", "", 8),        # [mirrord] workers written: every target's default
    ("workers = 1", "", 1),
    ("", "workers = 6", 6),        # the target's own key
    ("workers = 3", "workers = 5", 5),
])
def test_what_is_written_wins(tmp_path, mirrord, extra, want):
    assert _workers(tmp_path, tmp_path / "dest", mirrord, extra) == want


def test_a_local_disk_is_never_given_more_than_mirrord_says():
    class Opts:
        path = Path("/")
        fsync = False
    assert worker_defaults.default_workers("local", Opts(), 1, mirrord_wrote=False) == 1
    assert worker_defaults.default_workers("rsync", Opts(), 8, mirrord_wrote=True) == 2
