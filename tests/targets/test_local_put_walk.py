"""The local target's put, mkdir and move reach their directory by descriptor
(mirrord.targets.local_parents) and write relative to it: the shapes that walk meets.

A symlink or a file where a parent goes (replaced; kept with a keep_stamp), a symlink
swapped in after the walk (the rename must not follow it: by path it did), racing
workers making the same parents, a directory where the file goes, a bind mount below the
root (rename(2) says EXDEV although st_dev is the same). Every test checks both that
nothing outside the root changed and that the new bytes landed where they belong, so a
put that did nothing cannot pass. Races are made deterministic by running the other
worker's step inside the call that would lose it; the threaded one uses bounded joins.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import threading
from pathlib import Path

import pytest

from mirrord.errors import NotFound
from mirrord.targets import local_parents, local_stage
from mirrord.targets.mtime import ns_to_float
from mirrord.trash.model import DELETED, DIR_REMOVED, TRASH, stamp_of, trash_rel

from .test_local_staging import all_files, tmpfs
from .test_local_trash import local  # noqa: F401 - the fixture

NS = 1_600_000_000_123_456_789
STAMP = stamp_of(1_700_000_000.5)
_names = itertools.count()


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    (d / "sub").mkdir(parents=True)
    (d / "victim").write_bytes(b"must stay")
    return d


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every entry below `d` (relative path -> bytes, None for a directory)."""
    out: dict[str, bytes | None] = {}
    for top, dirs, names in os.walk(d):
        for n in dirs:
            out[os.path.relpath(os.path.join(top, n), d)] = None
        for n in names:
            out[os.path.relpath(os.path.join(top, n), d)] = Path(top, n).read_bytes()
    return out


def source(tmp_path: Path, data: bytes) -> Path:
    """A new source file holding `data`, mtime NS."""
    p = tmp_path / "src" / f"f{next(_names)}"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    os.utime(p, ns=(NS, NS))
    return p


def put(t, tmp_path, path: str, data: bytes, *, keep_stamp: str | None = None, mode=0o640):
    return t.put(path, str(source(tmp_path, data)), size=len(data), mtime=ns_to_float(NS),
                 mtime_ns=NS, mode=mode, keep_stamp=keep_stamp)


def on_disk(t, rel: str) -> Path:
    return Path(t.root, rel)


def trash_files(t) -> set[str]:
    return set(all_files(on_disk(t, TRASH))) if on_disk(t, TRASH).exists() else set()


# ------------------------------------------------------------------ symlinks on the way
@pytest.mark.parametrize("keep_stamp", [None, STAMP])
def test_a_symlink_at_a_parent_pointing_outside_is_replaced_not_followed(local, tmp_path,
                                                                        outside, keep_stamp):
    before = snapshot(outside)
    os.symlink(outside, on_disk(local, "ln"))
    entry = put(local, tmp_path, "ln/sub/f", b"inside", keep_stamp=keep_stamp)
    assert snapshot(outside) == before
    assert not on_disk(local, "ln").is_symlink() and on_disk(local, "ln").is_dir()
    assert local.read("ln/sub/f") == b"inside"
    st = os.lstat(on_disk(local, "ln/sub/f"))   # the Entry is what stands there
    assert (entry.size, entry.mtime_ns, entry.mode) == (st.st_size, st.st_mtime_ns, 0o640)
    # nothing kept either way: a symlink planted in the mirror is no version of a file
    # (LocalTrash._keep_at; kept as itself before, `undelete` offered it back)
    assert trash_files(local) == set()
    assert not os.path.lexists(on_disk(local, trash_rel(STAMP, DELETED, "ln")))


def test_a_dangling_symlink_at_a_parent_is_replaced(local, tmp_path, outside):
    os.symlink(outside / "not-yet", on_disk(local, "dl"))
    put(local, tmp_path, "dl/f", b"inside")
    assert not (outside / "not-yet").exists() and local.read("dl/f") == b"inside"


def test_a_parent_swapped_for_a_symlink_after_the_walk_does_not_redirect_the_rename(
        local, tmp_path, outside, monkeypatch):
    """The walk found a real directory `a`; while the bytes are copied, `a` is moved away
    and a symlink to outside put in its place. The rename is relative to the descriptor
    the walk holds: the file lands in the directory that was walked, never outside.
    (Renamed by path, as before the descriptor walk, it landed in outside/.)"""
    os.makedirs(on_disk(local, "a"))
    before = snapshot(outside)
    real_copy = local_stage.Staging._copy

    def copy_then_swap(self, *a, **kw):
        st = real_copy(self, *a, **kw)
        os.rename(on_disk(local, "a"), on_disk(local, "moved"))
        os.symlink(outside, on_disk(local, "a"))
        return st
    monkeypatch.setattr(local_stage.Staging, "_copy", copy_then_swap)
    put(local, tmp_path, "a/victim", b"redirected?")
    assert snapshot(outside) == before
    assert on_disk(local, "moved/victim").read_bytes() == b"redirected?"
    assert os.listdir(on_disk(local, ".mirrord/tmp")) == []


def test_mkdir_and_move_replace_a_symlinked_parent_too(local, tmp_path, outside):
    before = snapshot(outside)
    os.symlink(outside, on_disk(local, "m"))
    local.mkdir("m", mode=0o700)
    assert not on_disk(local, "m").is_symlink()
    assert os.lstat(on_disk(local, "m")).st_mode & 0o777 == 0o700
    os.symlink(outside, on_disk(local, "ln"))
    put(local, tmp_path, "x", b"moved in")
    local.move("x", "ln/sub/x")
    assert snapshot(outside) == before and local.read("ln/sub/x") == b"moved in"


# ------------------------------------------------------------------ reading and removing
@pytest.mark.parametrize("tree", [False, True])
def test_a_delete_below_a_symlinked_parent_removes_nothing_outside(local, outside, tree):
    """By path, delete('ln/victim') unlinked outside/victim (and a tree delete of 'ln/sub'
    removed outside/sub): a symlink planted in the mirror led the removal out of the root."""
    before = snapshot(outside)
    os.symlink(outside, on_disk(local, "ln"))
    local.delete("ln/victim")
    local.delete("ln/sub", tree=tree)
    assert snapshot(outside) == before
    assert on_disk(local, "ln").is_symlink()   # not the mirror's to remove through a parent


def test_stat_read_and_checksum_never_follow_a_symlink(local, tmp_path, outside):
    os.symlink(outside, on_disk(local, "ln"))
    os.symlink(outside / "victim", on_disk(local, "lf"))
    put(local, tmp_path, "real", b"mine")
    for path in ("ln/victim", "lf"):
        assert local.read(path) is None and local.checksum(path) is None
    assert local.stat("ln/victim") is None
    assert local.stat("lf") is None   # a symlink is no Entry (files and directories only)
    assert local.read("real") == b"mine" and local.stat("real").size == 4
    assert local.checksum("real") == hashlib.sha256(b"mine").hexdigest()
    assert local.read("absent") is None and local.checksum("ln") is None


def test_a_move_from_below_a_symlinked_parent_takes_nothing_from_outside(local, outside):
    before = snapshot(outside)
    os.symlink(outside, on_disk(local, "ln"))
    with pytest.raises(NotFound):
        local.move("ln/victim", "stolen")
    assert snapshot(outside) == before and not on_disk(local, "stolen").exists()


def test_a_move_replaces_what_stands_at_the_destination(local, tmp_path, outside):
    put(local, tmp_path, "a/f", b"moving")
    put(local, tmp_path, "d/old/x", b"in the way")
    os.symlink(outside, on_disk(local, "d/ln"))
    local.move("a/f", "d/old")
    local.move("d/old", "d/ln")   # the symlink at the destination is replaced, not followed
    assert local.read("d/ln") == b"moving" and not on_disk(local, "d/ln").is_symlink()
    assert not on_disk(local, "d/old").exists() and (outside / "victim").exists()


# ------------------------------------------------------------------ files in the way
@pytest.mark.parametrize("keep_stamp", [None, STAMP])
def test_a_file_in_the_way_of_a_parent_is_replaced_and_kept_with_a_stamp(local, tmp_path,
                                                                         keep_stamp):
    os.makedirs(on_disk(local, "p"))
    on_disk(local, "p/d").write_bytes(b"d was a file")
    put(local, tmp_path, "p/d/e/z", b"z", keep_stamp=keep_stamp)
    assert local.read("p/d/e/z") == b"z"
    if keep_stamp is None:
        assert trash_files(local) == set()
    else:
        assert trash_files(local) == {f"{STAMP}.{DELETED}/p/d"}
        assert on_disk(local, trash_rel(STAMP, DELETED, "p/d")).read_bytes() == b"d was a file"


def test_a_directory_in_the_way_of_the_file_is_removed_without_following_its_symlinks(
        local, tmp_path, outside):
    before = snapshot(outside)
    os.makedirs(on_disk(local, "d/sub"))
    on_disk(local, "d/sub/inner").write_bytes(b"inner")
    os.symlink(outside, on_disk(local, "d/link"))
    entry = put(local, tmp_path, "d", b"a file now")
    assert local.read("d") == b"a file now" and not entry.is_dir
    assert snapshot(outside) == before
    assert os.listdir(on_disk(local, ".mirrord/tmp")) == []


def test_a_directory_in_the_way_is_kept_whole_with_a_stamp(local, tmp_path):
    os.makedirs(on_disk(local, "d/sub"))
    on_disk(local, "d/sub/inner").write_bytes(b"inner")
    put(local, tmp_path, "d", b"a file now", keep_stamp=STAMP)
    assert local.read("d") == b"a file now"
    assert trash_files(local) == {f"{STAMP}.{DIR_REMOVED}/d/sub/inner"}


# ------------------------------------------------------------------ racing workers
def test_a_racing_mkdir_of_the_same_parent_is_used(local, tmp_path, monkeypatch):
    """Another worker makes `r/s` between this walk's failed open and its mkdirat."""
    real_mkdir = os.mkdir

    def the_other_worker_first(name, *a, dir_fd=None, **kw):
        if dir_fd is not None:
            real_mkdir(name, *a, dir_fd=dir_fd, **kw)
        return real_mkdir(name, *a, dir_fd=dir_fd, **kw)   # FileExistsError now
    monkeypatch.setattr(local_parents.os, "mkdir", the_other_worker_first)
    put(local, tmp_path, "r/s/f", b"raced")
    monkeypatch.undo()
    assert local.read("r/s/f") == b"raced"


def test_a_file_in_the_way_made_a_directory_by_a_racing_worker_is_used(local, tmp_path,
                                                                       monkeypatch):
    """The walk saw a file at `p`; before its unlinkat another worker replaced it with a
    directory (EISDIR): the walk goes on into that directory."""
    on_disk(local, "p").write_bytes(b"in the way")
    real_unlink = os.unlink

    def the_other_worker_first(name, *a, dir_fd=None, **kw):
        if dir_fd is not None and name == b"p":
            real_unlink(name, dir_fd=dir_fd)
            os.mkdir(name, dir_fd=dir_fd)
        return real_unlink(name, *a, dir_fd=dir_fd, **kw)
    monkeypatch.setattr(local_parents.os, "unlink", the_other_worker_first)
    put(local, tmp_path, "p/f", b"below")
    monkeypatch.undo()
    assert local.read("p/f") == b"below"


def test_workers_making_the_same_new_parents_at_once_all_succeed(local, tmp_path):
    paths = [f"n/{i % 3}/deep/f{i}" for i in range(48)]
    srcs = {p: source(tmp_path, p.encode()) for p in paths}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(mine: list[str]) -> None:
        start.wait(timeout=30)
        for p in mine:
            try:
                local.put(p, str(srcs[p]), size=len(p), mtime=ns_to_float(NS), mtime_ns=NS)
            except BaseException as exc:   # noqa: BLE001 - reported by the assert below
                errors.append(exc)
    threads = [threading.Thread(target=worker, args=(paths[i::8],)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads) and errors == []
    assert {p: local.read(p) for p in paths} == {p: p.encode() for p in paths}


# ------------------------------------------------------------------ another mount
@pytest.fixture
def bind_mount(tmp_path, local):
    """root/bnd: a bind mount of a directory outside the root (same st_dev, but rename(2)
    across it says EXDEV)."""
    other, where = tmp_path / "other", on_disk(local, "bnd")
    other.mkdir()
    where.mkdir()
    subprocess.run(["mount", "--bind", str(other), str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_put_onto_a_bind_mount_below_the_root_stages_beside(local, tmp_path, bind_mount):
    assert os.stat(bind_mount).st_dev == os.stat(local.root).st_dev
    entry = put(local, tmp_path, "bnd/sub/f", b"across a bind mount", mode=0o604)
    assert local.read("bnd/sub/f") == b"across a bind mount" and entry.mode == 0o604
    assert all_files(bind_mount) == {"sub/f"}               # no beside temp file left
    assert os.listdir(on_disk(local, ".mirrord/tmp")) == []  # nor its marker


def test_a_put_onto_another_mount_replaces_a_symlinked_parent_there(local, tmp_path, outside):
    before = snapshot(outside)
    with tmpfs(on_disk(local, "mnt")):
        os.symlink(outside, on_disk(local, "mnt/ln"))
        put(local, tmp_path, "mnt/ln/f", b"on tmpfs")
        assert local.read("mnt/ln/f") == b"on tmpfs" and all_files(on_disk(local, "mnt")) == {"ln/f"}
        assert os.listdir(on_disk(local, ".mirrord/tmp")) == []
    assert snapshot(outside) == before
