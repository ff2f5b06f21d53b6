"""open(readonly=True) writes nothing, on every target type (Target.open's contract).

The commands that only look (failover and its --dry-run, health's /ready, trash,
undelete --dry-run, reconcile --dry-run) open targets read-only. Found by a breaker:
they opened them as the daemon does, so on the mirror host (where no process holds the
open lock: the daemon runs on the primary) `failover --dry-run` aborted the primary's
S3 multipart uploads in flight, emptied `.mirrord/tmp/` and made a missing root (an
NFS mount point whose mount was gone) an empty directory.

Each test snapshots the whole target (mirrord's own area, S3's open multipart uploads
and the open lock files in /dev/shm included) before and after a read-only open and
a look through it, with real services (sshd, SeaweedFS).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.config import RsyncOptions, TargetConfig
from mirrord.errors import MirrorRootMissing, PermanentError
from mirrord.targets.local import LocalTarget
from mirrord.targets.rsync import RsyncTarget
from mirrord.targets.s3 import S3Target
from mirrord.targets.sweep import lock_path
from tests.targets.conftest import make_local, make_target

KINDS = ["memory", "local", "rsync", "s3"]


def _tree(root: Path) -> dict:
    """Every name below `root` (hidden ones and `.mirrord/` included) with its kind,
    content digest and mtime; {} plus a marker when the root is absent."""
    if not os.path.lexists(root):
        return {"<root>": "absent"}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_file() and not p.is_symlink():
                out[rel] = ("f", hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns)
            else:
                out[rel] = ("d" if p.is_dir() else "other", st.st_mtime_ns)
    return out


def _s3_state(t, client) -> dict:
    objs = client.list_objects_v2(Bucket=t.bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=t.bucket).get("Uploads", [])
    return {"objects": sorted((o["Key"], o["ETag"], str(o["LastModified"])) for o in objs),
            "uploads": sorted((u["Key"], u["UploadId"]) for u in uploads)}


def _lock_file(t) -> bytes | None:
    """The open lock file in /dev/shm of an s3 or rsync target (local: in its .mirrord/)."""
    lock = getattr(t, "_open_lock", None)
    return None if lock is None or lock.directory is not None else lock_path(lock.identity)


def _snapshot(kind: str, t, request) -> dict:
    if kind == "memory":
        return {"files": dict(t.files), "meta": dict(t.meta), "trash": dict(t.trash)}
    lock = _lock_file(t)
    state = {"lock file": lock is not None and os.path.lexists(lock)}
    if kind == "s3":
        state.update(_s3_state(t, request.getfixturevalue("seaweedfs").client()))
    else:
        state["tree"] = _tree(Path(os.fsdecode(t.root)))
    return state


def _plant_debris(kind: str, t, request) -> None:
    """What a transfer in flight (or a crash) leaves where the sweep would remove it."""
    if kind == "local":
        Path(t.root, ".mirrord", "tmp", "tmpupload-in-flight").write_bytes(b"half a file")
    elif kind == "rsync":
        root = Path(os.fsdecode(t.root))
        (root / ".mirrord" / "rsync-tmp" / ".big.mp4.Xy12").write_bytes(b"half a file")
        (root / ".mirrord" / ".meta.old").write_bytes(b"x")
    elif kind == "s3":
        client = request.getfixturevalue("seaweedfs").client()
        up = client.create_multipart_upload(Bucket=t.bucket, Key=t.root + "big/video.mp4")
        client.upload_part(Bucket=t.bucket, Key=t.root + "big/video.mp4",
                           UploadId=up["UploadId"], PartNumber=1, Body=b"x" * (5 << 20))


@pytest.mark.parametrize("kind", KINDS)
def test_a_readonly_open_and_every_look_write_nothing(kind, request, tmp_path):
    t = make_target(kind, request, tmp_path)
    t.open()   # a daemon's open: makes its area; then a file, the heartbeat, a kept version
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    t.put("d/a.txt", str(src), size=5, mtime=1_700_000_000.0)
    t.write_meta("heartbeat.json", b'{"version": 1}')
    t.close()
    _plant_debris(kind, t, request)
    lock = _lock_file(t)
    if lock is not None and os.path.lexists(lock):
        os.unlink(lock)   # ours, just made: a read-only open must not make it again
    before = _snapshot(kind, t, request)

    looker = _another(kind, t, tmp_path)   # a command's own instance, on the same place
    looker.open(readonly=True)
    try:
        assert [e.path for e in looker.list() if not e.is_dir] == ["d/a.txt"]
        assert looker.stat("d/a.txt").size == 5 and looker.read("d/a.txt") == b"hello"
        assert looker.read_meta("heartbeat.json") == b'{"version": 1}'
        if kind != "memory":
            assert list(looker.trash_list()) == []
    finally:
        looker.close()
    assert _snapshot(kind, t, request) == before


def _another(kind: str, t, tmp_path):
    if kind == "memory":
        return t
    if kind == "local":
        return make_local(tmp_path)
    if kind == "rsync":
        return RsyncTarget(t.name, t.opts)
    return S3Target(t.name, t.opts, workers=4)


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_readonly_open_of_a_missing_root_says_so_and_makes_nothing(kind, request, tmp_path):
    """The mirror host's NFS mount is missing: the old open made an empty directory at the
    mount point, and failover said "no heartbeat.json ... is mirrord running on the
    primary?" instead of naming the missing root."""
    if kind == "local":
        gone = tmp_path / "mnt" / "mirror"
        t = LocalTarget("local", gone)
    else:
        sshd = request.getfixturevalue("sshd")
        gone = sshd.new_root() / "mnt" / "mirror"
        t = _rsync(sshd, gone)
    lock = _lock_file(t)
    with pytest.raises(PermanentError, match=f"the mirror root {gone} does not exist"):
        try:
            t.open(readonly=True)
        finally:
            t.close()
    assert not gone.parent.exists()
    assert lock is None or not os.path.lexists(lock)


@pytest.mark.parametrize("kind", ["local", "rsync", "memory"])
def test_a_readonly_open_says_whether_the_root_holds_nothing_at_all(kind, request, tmp_path):
    """A mount point whose file system is not mounted is an empty directory, not a missing
    one: failover read "no heartbeat" (a warning) and switched to a mirror holding nothing.
    root_empty tells; anything at all in the root (a hidden file, `.mirrord/`) clears it."""
    if kind == "memory":
        t = make_target(kind, request, tmp_path)
        root = None
    else:
        root, t = _root_and_target(kind, request, tmp_path)
    t.open(readonly=True)
    try:
        assert t.root_empty is True
    finally:
        t.close()
    if root is None:
        t.meta["heartbeat.json"] = b"{}"
    else:
        (root / ".hidden").write_bytes(b"")
        assert _tree(root) == {".hidden": _tree(root)[".hidden"]}   # nothing else made
    t.open(readonly=True)
    try:
        assert t.root_empty is False
    finally:
        t.close()


@pytest.mark.parametrize("kind", ["local", "rsync"])
@pytest.mark.parametrize("leftover,empty", [
    ("lost+found/", True),                    # mkfs's: a new, empty file system mounted
    (".mirrord/", True),                      # made by an earlier command in the mount point
    (".mirrord/tmp/", True),
    (".mirrord/heartbeat.json", False),       # the primary's heartbeat: a mirror
    (".htaccess", False),                     # a mirrored file, hidden or not
    ("site/", False)])
def test_what_an_empty_mount_point_may_hold(kind, leftover, empty, request, tmp_path):
    """A breaker's leftovers defeated "holds nothing at all": a `.mirrord/` an earlier
    undelete made in the mount point, or mkfs's `lost+found`, read as a mirror."""
    root, t = _root_and_target(kind, request, tmp_path)
    (root / leftover.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    if leftover.endswith("/"):
        (root / leftover).mkdir(parents=True)
    else:
        (root / leftover).write_bytes(b"{}")
    t.open(readonly=True)
    try:
        assert t.root_empty is empty
    finally:
        t.close()


@pytest.mark.parametrize("kind", ["local", "rsync"])
@pytest.mark.parametrize("entries,why", [
    (["NOT_MOUNTED"], "holds no .mirrord/"),      # an operator's marker in the mount point
    (["site/", ".htaccess"], "holds no .mirrord/"),  # files mirrord never wrote
    (["NOT_MOUNTED", ".mirrord/"], ""),           # mirrord's own area: a mirror (or F2's
    (["site/", ".mirrord/tmp/"], ""),             # heartbeat check, not this one)
    ([], "is empty"),
], ids=["marker", "files", "marker-and-area", "files-and-area", "nothing"])
def test_a_root_mirrord_never_wrote_is_no_mirror(kind, entries, why, request, tmp_path):
    """F2: a marker file in a bare mount point defeated "holds nothing at all", and failover
    took the mount point for a mirror whose primary had gone silent (a warning). Every
    writable open makes `.mirrord/`: a root without it, whatever else it holds, is no
    mirror (Target.no_mirror, root_unmarked)."""
    root, t = _root_and_target(kind, request, tmp_path)
    for entry in entries:
        (root / entry.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        if entry.endswith("/"):
            (root / entry).mkdir(parents=True, exist_ok=True)
        else:
            (root / entry).write_bytes(b"x")
    before = _tree(root)
    t.open(readonly=True)
    try:
        assert (why in t.no_mirror()) if why else t.no_mirror() == "", t.no_mirror()
    finally:
        t.close()
    assert _tree(root) == before   # nothing made


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_root_that_cannot_be_listed_is_not_called_empty(kind, request, tmp_path):
    """Found by a breaker (a regression of the empty-root check): a root of mode 0711, its
    heartbeat readable, failed the heartbeat read with EACCES for a user who may not
    list it. Such a root is not called empty, and its heartbeat is read."""
    if kind == "local":   # where nobody can reach it (pytest's tmp_path is 0700)
        base = Path(tempfile.mkdtemp(prefix="mirrord-0711-"))
        request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
        base.chmod(0o755)
        root = base / "mirror"
        root.mkdir()
        t = LocalTarget("local", root)
    else:
        root, t = _root_and_target(kind, request, tmp_path)
    (root / ".mirrord").mkdir()
    (root / ".mirrord" / "heartbeat.json").write_bytes(b'{"version": 1}')
    (root / ".mirrord" / "heartbeat.json").chmod(0o644)
    root.chmod(0o711)
    (root / ".mirrord").chmod(0o711)
    pid = os.fork()
    if pid == 0:   # as nobody: root ignores the mode bits
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            if kind == "rsync":
                code = 0   # the remote side runs as the ssh user: checked below as root
            else:
                t.open(readonly=True)
                code = 0 if (t.root_empty is False and
                             t.read_meta("heartbeat.json") == b'{"version": 1}') else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    t.open(readonly=True)
    try:
        assert t.root_empty is False
    finally:
        t.close()


def _root_and_target(kind: str, request, tmp_path):
    """(root, target): a local or rsync target whose root, tmp/mnt/mirror, is an empty
    directory (what an unmounted mount point shows)."""
    if kind == "local":
        root = tmp_path / "mnt" / "mirror"
        t = LocalTarget("local", root)
    else:
        sshd = request.getfixturevalue("sshd")
        root = sshd.new_root() / "mnt" / "mirror"
        t = _rsync(sshd, root)
    root.mkdir(parents=True)
    return root, t


def test_a_readonly_open_of_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "mirror").write_bytes(b"not a directory")
    t = LocalTarget("local", tmp_path / "mirror")
    with pytest.raises(MirrorRootMissing, match="is not a directory"):   # no mirror: failover
        t.open(readonly=True)                                             # refuses it
    assert (tmp_path / "mirror").read_bytes() == b"not a directory"


def test_the_memory_fake_refuses_changes_while_open_readonly(tmp_path):
    """The honest fake catches a caller that writes through a read-only open."""
    t = make_target("memory", None, tmp_path)
    t.open(readonly=True)
    with pytest.raises(PermanentError, match="opened read-only"):
        t.write_meta("heartbeat.json", b"{}")
    with pytest.raises(PermanentError, match="opened read-only"):
        t.delete("a")
    t.close()
    t.write_meta("heartbeat.json", b"{}")
    assert t.meta["heartbeat.json"] == b"{}"


def _rsync(sshd, root: Path):
    """An rsync target on the test sshd with `root` as its path (not made here)."""
    return targets.create(TargetConfig(name="host", type="rsync", workers=2, rsync=RsyncOptions(
        host=sshd.host, port=sshd.port, user=sshd.user, path=str(root),
        ssh_key=sshd.key_path, known_hosts=sshd.known_hosts, strict_host_key_checking="yes")))
