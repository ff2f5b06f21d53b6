"""The local target keeps by rename and hard link, never a copy, and never follows a symlink.

Local-only promises behind mirrord.targets.local_trash (the shared ones are in
test_trash_conformance.py): inodes are checked on disk, symlinks are planted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.config import LocalOptions, TargetConfig
from mirrord.errors import PermanentError
from mirrord.targets.mtime import ns_to_float
from mirrord.trash.model import DELETED, DIR_REMOVED, OVERWRITTEN, TRASH, stamp_of, trash_rel

from .conftest import make_local

NS = 1_600_000_000_123_456_789
STAMP = stamp_of(1_700_000_000.5)


@pytest.fixture
def local(tmp_path):
    t = make_local(tmp_path)
    t.open()
    yield t
    t.close()


def put(t, tmp_path, path: str, data: bytes, mode: int = 0o640):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    p = src / f"f{len(os.listdir(src))}"
    p.write_bytes(data)
    os.utime(p, ns=(NS, NS))
    return t.put(path, str(p), size=len(data), mtime=ns_to_float(NS), mtime_ns=NS, mode=mode)


def on_disk(t, rel: str) -> str:
    return os.path.join(t.root, rel)


def test_a_directory_removal_is_one_rename(local, tmp_path):
    for path in ["d/a", "d/b/c", "d/b/e/f"]:
        put(local, tmp_path, path, path.encode())
    inodes = {p: os.lstat(on_disk(local, p)).st_ino for p in ["d", "d/a", "d/b/e/f"]}
    assert local.keep("d", stamp=STAMP, coming="absent") == len(b"d/a" b"d/b/c" b"d/b/e/f")
    assert not os.path.lexists(on_disk(local, "d"))
    for path, ino in inodes.items():
        assert os.lstat(on_disk(local, trash_rel(STAMP, DIR_REMOVED, path))).st_ino == ino
    local.delete("d", tree=True)   # what the engine does next: finds nothing
    assert {k.path for k in local.trash_list()} == {"d/a", "d/b/c", "d/b/e/f"}


def test_an_overwrite_is_a_hard_link_and_the_put_leaves_the_kept_inode_alone(local, tmp_path):
    put(local, tmp_path, "x/o.txt", b"old")
    ino = os.lstat(on_disk(local, "x/o.txt")).st_ino
    assert local.keep("x/o.txt", stamp=STAMP, coming="file") == 3
    kept_path = on_disk(local, trash_rel(STAMP, OVERWRITTEN, "x/o.txt"))
    st = os.lstat(kept_path)
    assert (st.st_ino, st.st_nlink) == (ino, 2)
    put(local, tmp_path, "x/o.txt", b"new", mode=0o600)
    st = os.lstat(kept_path)
    assert (st.st_ino, st.st_nlink, st.st_mtime_ns, st.st_mode & 0o777) == (ino, 1, NS, 0o640)
    assert os.lstat(on_disk(local, "x/o.txt")).st_ino != ino
    with open(kept_path, "rb") as fh:
        assert fh.read() == b"old"


def test_a_delete_is_a_rename_of_the_same_inode(local, tmp_path):
    put(local, tmp_path, "del.txt", b"bytes")
    ino = os.lstat(on_disk(local, "del.txt")).st_ino
    local.keep("del.txt", stamp=STAMP, coming="absent")
    assert os.lstat(on_disk(local, trash_rel(STAMP, DELETED, "del.txt"))).st_ino == ino
    assert local.stat("del.txt") is None


def test_the_trash_is_on_the_roots_file_system(local, tmp_path):
    put(local, tmp_path, "f", b"1")
    local.keep("f", stamp=STAMP, coming="absent")
    assert os.stat(on_disk(local, TRASH)).st_dev == os.stat(local.root).st_dev


def test_a_symlink_or_fifo_at_the_path_is_never_kept(local, tmp_path):
    """Planted in the mirror, a symlink or FIFO is no version of a file: nothing is kept
    (as on rsync, whose keep script keeps only regular files and directories), it is not
    followed, and the delete or put that asked removes or replaces it. Kept before, a
    symlink was listed as a deleted version that `undelete` offered to restore."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    os.makedirs(local.root, exist_ok=True)
    os.symlink(outside, on_disk(local, "ln"))
    os.symlink(outside, on_disk(local, "ln2"))
    os.mkfifo(on_disk(local, "fifo"))
    assert local.keep("ln", stamp=STAMP, coming="absent") == 0
    assert local.keep("ln2", stamp=STAMP, coming="file") == 0
    assert local.keep("fifo", stamp=STAMP, coming="absent") == 0
    assert list(local.trash_list()) == [] and outside.read_bytes() == b"secret"
    assert os.path.islink(on_disk(local, "ln")) and os.path.islink(on_disk(local, "ln2"))


def test_a_symlink_kept_inside_a_removed_directory_is_never_followed(local, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    os.makedirs(on_disk(local, "d"), exist_ok=True)
    (tmp_path / "f").write_bytes(b"a file")
    local.put("d/f", str(tmp_path / "f"), size=6, mtime=1.0)
    os.symlink(outside, on_disk(local, "d/ln"))
    local.keep("d", stamp=STAMP, coming="absent")     # the whole directory, the link inside
    assert os.path.islink(on_disk(local, trash_rel(STAMP, DIR_REMOVED, "d") + "/ln"))
    got = {k.path: k for k in local.trash_list()}
    assert "d/f" in got
    if "d/ln" in got:   # listed or not, never read through nor restored as its target
        with pytest.raises(PermanentError):
            local.trash_fetch(got["d/ln"], str(tmp_path / "out"))
        with pytest.raises(PermanentError):
            local.trash_restore(got["d/ln"], "restored")
    assert not (tmp_path / "out").exists() and local.stat("restored") is None
    local.trash_purge(list(got.values()))   # the retention can still remove them
    assert outside.read_bytes() == b"secret"


def test_a_symlink_among_the_parents_is_not_followed(local, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f").write_bytes(b"not the mirror's")
    os.makedirs(local.root, exist_ok=True)
    os.symlink(outside, on_disk(local, "evil"))
    assert local.keep("evil/f", stamp=STAMP, coming="absent") == 0
    assert local.keep("evil/f", stamp=STAMP, coming="file") == 0
    assert (outside / "f").read_bytes() == b"not the mirror's"
    assert list(local.trash_list()) == []


def test_a_symlinked_directory_inside_a_removed_tree_is_not_walked(local, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    put(local, tmp_path, "t/real", b"r")
    os.symlink(outside, on_disk(local, "t/link"))
    local.keep("t", stamp=STAMP, coming="absent")
    assert {k.path for k in local.trash_list()} == {"t/real", "t/link"}
    assert [k.path for k in local.trash_list("t/link/secret")] == []
    assert (outside / "secret").read_bytes() == b"s"


def test_a_kept_directory_is_never_replaced_and_the_delete_removes_the_original(local, tmp_path):
    put(local, tmp_path, "d/a", b"first")
    local.keep("d", stamp=STAMP, coming="absent")
    put(local, tmp_path, "d/a", b"second")   # the same place in the trash is taken
    assert local.keep("d", stamp=STAMP, coming="absent") == 0
    assert local.read("d/a") == b"second"
    local.delete("d", tree=True)
    [k] = local.trash_list()
    with open(on_disk(local, k.key), "rb") as fh:
        assert fh.read() == b"first"


def test_purge_removes_the_directories_it_empties(local, tmp_path):
    for path in ["a/b/c/1", "a/b/2", "z"]:
        put(local, tmp_path, path, b"x")
    local.keep("a", stamp=STAMP, coming="absent")
    local.keep("z", stamp=STAMP, coming="absent")
    got = {k.path: k for k in local.trash_list()}
    local.trash_purge([got["a/b/c/1"]])
    assert not os.path.lexists(on_disk(local, trash_rel(STAMP, DIR_REMOVED, "a/b/c")))
    assert os.path.exists(on_disk(local, trash_rel(STAMP, DIR_REMOVED, "a/b/2")))
    local.trash_purge([got["a/b/2"], got["z"]])
    assert os.listdir(on_disk(local, TRASH)) == []


def test_restore_is_staged_and_refuses_a_directory_at_the_path(local, tmp_path):
    put(local, tmp_path, "r.txt", b"kept")
    local.keep("r.txt", stamp=STAMP, coming="absent")
    [k] = local.trash_list()
    put(local, tmp_path, "busy/inside", b"dir")
    with pytest.raises(PermanentError):
        local.trash_restore(k, "busy")
    assert local.read("busy/inside") == b"dir"
    local.trash_restore(k, "r.txt")
    st = os.lstat(on_disk(local, "r.txt"))
    assert (st.st_mtime_ns, st.st_mode & 0o777, st.st_nlink) == (NS, 0o640, 1), "a copy, not a link"
    assert os.listdir(on_disk(local, ".mirrord/tmp")) == []


def test_a_kept_key_outside_the_trash_is_refused(local, tmp_path):
    put(local, tmp_path, "f", b"1")
    local.keep("f", stamp=STAMP, coming="absent")
    [k] = local.trash_list()
    bad = type(k)(k.path, k.stamp, k.why, k.size, k.mtime_ns, f"{TRASH}/{STAMP}.deleted/../../x")
    with pytest.raises(PermanentError):
        local.trash_fetch(bad, str(tmp_path / "out"))
    with pytest.raises(PermanentError):
        local.trash_purge([bad])


def test_list_and_stat_hide_the_trash(local, tmp_path):
    put(local, tmp_path, "a", b"1")
    put(local, tmp_path, "b", b"2")
    local.keep("a", stamp=STAMP, coming="file")
    local.keep("b", stamp=STAMP, coming="absent")
    assert os.path.isdir(on_disk(local, TRASH))
    assert [e.path for e in local.list()] == ["a"]
    with pytest.raises(PermanentError):
        local.stat(trash_rel(STAMP, DELETED, "b"))


def test_a_file_on_another_mount_is_refused_clearly_and_left_in_place(local, tmp_path):
    # the trash keeps by rename or link only (no copy): a mount below the root cannot reach it
    from .test_local_staging import tmpfs

    with tmpfs(Path(local.root) / "mnt"):
        put(local, tmp_path, "mnt/f", b"on tmpfs")
        for coming in ("file", "absent"):
            with pytest.raises(PermanentError, match="another mount"):
                local.keep("mnt/f", stamp=STAMP, coming=coming)
        assert local.read("mnt/f") == b"on tmpfs"
        assert list(local.trash_list()) == []
        assert os.listdir(on_disk(local, TRASH)) == [], "no empty place is left behind"


def test_an_overwrite_kept_by_an_earlier_try_is_not_kept_again_under_a_new_stamp(local, tmp_path):
    """kill -9 between keep and put, then a restart: the catch-up records the change again
    with a new time, so the retry has another stamp. The file's second link says it is
    kept already (the put that follows a keep replaces the inode): nothing kept twice."""
    put(local, tmp_path, "k.txt", b"old")
    assert local.keep("k.txt", stamp=STAMP, coming="file") == 3
    later = stamp_of(1_700_000_100.0)
    assert local.keep("k.txt", stamp=later, coming="file") == 0
    assert [(k.stamp, k.why) for k in local.trash_list()] == [(STAMP, OVERWRITTEN)]
    put(local, tmp_path, "k.txt", b"new")        # the retried put: a new inode, one link
    assert local.keep("k.txt", stamp=later, coming="file") == 3   # the next overwrite keeps
    assert sorted(k.stamp for k in local.trash_list()) == [STAMP, later]


@pytest.fixture
def via_symlink(tmp_path):
    """A local target whose configured root is a symlink to the real directory
    (/srv/mirror -> /data/mirror): the root itself is the operator's, and is followed."""
    real = tmp_path / "data-mirror"
    real.mkdir()
    os.symlink(real, tmp_path / "mirror")
    # a TargetConfig made in code, not by the INI loader (which resolves paths)
    t = targets.create(TargetConfig(name="local", type="local", workers=4,
                                    local=LocalOptions(path=tmp_path / "mirror")))
    assert t.root == str(tmp_path / "mirror")
    t.open()
    yield t, real
    t.close()


def test_a_root_reached_through_a_symlink_keeps_what_is_deleted_and_overwritten(via_symlink,
                                                                                 tmp_path):
    """Found by a read-through: the descriptor walks refused the root's own symlink (ELOOP),
    which keep() took for "nothing there", so the file went unkept."""
    t, real = via_symlink
    put(t, tmp_path, "x/o.txt", b"old")
    put(t, tmp_path, "x/d.txt", b"gone")
    assert t.keep("x/o.txt", stamp=STAMP, coming="file") == 3
    assert t.keep("x/d.txt", stamp=STAMP, coming="absent") == 4
    assert (real / trash_rel(STAMP, OVERWRITTEN, "x/o.txt")).read_bytes() == b"old"
    assert (real / trash_rel(STAMP, DELETED, "x/d.txt")).read_bytes() == b"gone"
    assert not (real / "x/d.txt").exists()
    assert {k.path for k in t.trash_list()} == {"x/o.txt", "x/d.txt"}
    assert t.keep_many([("x", STAMP, "dir")]) == [None]   # a directory stays: nothing to keep
    kept = next(k for k in t.trash_list() if k.path == "x/d.txt")
    fd, st = t._open_kept(kept)
    os.close(fd)
    assert st.st_size == 4
