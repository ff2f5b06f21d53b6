"""Routes by which a directory the fanotify watcher marked (mirrord/watch/fanotify_ignore.py)
can come into the tree, and other ways the marks (or fanotify being the default) could
hide an event the tree needs. Each test ends with a write inside the tree that must be
reported: a mark left on a directory in the tree makes the kernel drop it."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from mirrord.watch import fanotify_sys as S
from tests.fanotify_marks import (
    counting_watcher,
    fanotify_root,
    handle,
    kinds,
    write_many,
)
from tests.watch_model import read_until, settle

_libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture
def root(tmp_path) -> Path:
    return fanotify_root(tmp_path)


@pytest.fixture
def watcher(root):
    w = counting_watcher(root)
    yield w
    w.close()


def busy_outside(tmp_path: Path, w, root: Path, name: str = "out") -> Path:
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    write_many(d, 3)
    settle(w, root)
    assert handle(d) in w.ignores.marked
    return d


def assert_reported(w, root: Path, rel: str) -> None:
    (root / rel).write_bytes(b"later")
    assert ("write", rel) in kinds(settle(w, root)), f"{rel}: write never reported"


# ------------------------------------------------------------------ breakages

def test_marked_dir_enters_via_excluded_dir_made_included_by_ancestor_rename(root, tmp_path):
    """Path-dependent exclude `a/cache`: a marked directory moved into root/a/cache is
    dropped (excluded, no entered()); renaming root/a to root/b makes b/cache/m part of
    the tree by a move inside the tree, which never calls entered(): the mark stays."""
    w = counting_watcher(root, exclude=("a/cache",))
    try:
        (root / "a" / "cache").mkdir(parents=True)
        settle(w, root)
        out = busy_outside(tmp_path, w, root)
        out.rename(root / "a" / "cache" / "m")
        settle(w, root)
        (root / "a").rename(root / "b")
        settle(w, root)
        assert_reported(w, root, "b/cache/m/new.jpg")
        assert_reported(w, root, "b/cache/m/f0")
    finally:
        w.close()


def test_symlinked_root_subdirectories_are_reported_and_never_marked(tmp_path):
    """A source path through a symlink (/srv/up -> /data/up): readlink of a directory in
    the tree gives the real path, which is not below the configured root: the watcher
    took every subdirectory for one outside (its events dropped) and marked it."""
    real = tmp_path / "real" / "src"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    root = tmp_path / "link" / "src"
    (root / "sub").mkdir()      # there before the start: its path is looked up by handle
    w = counting_watcher(root)
    try:
        write_many(root / "sub", 3)
        got = kinds(settle(w, root))
        assert ("write", "sub/f0") in got
        assert handle(root / "sub") not in w.ignores.marked
        assert_reported(w, root, "sub/new.jpg")
    finally:
        w.close()


def test_a_dir_written_while_being_marked_then_moved_in_keeps_no_mark(root, tmp_path,
                                                                   monkeypatch):
    """The race between reading an event and placing the mark: a write in out/ lands
    after the read but before fanotify_mark (queued: no mark yet), then out/ moves into
    the tree. The next read is short (drained(): epoch + 1), so that write looks like
    one from an evicted mark: seen() forgets the handle, finds the directory inside
    now and gives up, leaving the kernel mark on; the rename's entered() no longer
    knows it. Every later write below root/m was dropped by the kernel."""
    from mirrord.watch import fanotify_ignore as ignore_mod
    w = counting_watcher(root)
    try:
        out = tmp_path / "out"
        out.mkdir()
        real = S.fanotify_mark
        raced = []

        def racing(fd, flags, mask, path, dirfd=S.AT_FDCWD):
            if flags & S.FAN_MARK_ADD and path is None and not raced:
                raced.append(1)
                (out / "during.bin").write_bytes(b"between the read and the mark")
                real(fd, flags, mask, path, dirfd)
                out.rename(root / "m")      # after the mark is placed
                return None
            return real(fd, flags, mask, path, dirfd)
        monkeypatch.setattr(ignore_mod.S, "fanotify_mark", racing)
        (out / "first.bin").write_bytes(b"1")
        got = kinds(settle(w, root))
        assert raced
        assert {("write", "m/first.bin"), ("write", "m/during.bin")} <= got
        assert_reported(w, root, "m/later.jpg")
    finally:
        w.close()


# ------------------------------------------------------------------ attacks that held

def test_exchange_of_a_marked_dir_with_one_in_the_tree(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    (root / "x").mkdir()
    (root / "x" / "old.jpg").write_bytes(b"o")
    settle(watcher, root)
    exchange(root / "x", out)       # out's directory is root/x now, x's is outside
    (root / "x" / "after.jpg").write_bytes(b"a")
    got = kinds(settle(watcher, root))
    assert {("write", "x/f0"), ("write", "x/after.jpg")} <= got
    assert handle(root / "x") not in watcher.ignores.marked
    assert_reported(watcher, root, "x/f1")


def test_exchange_of_an_unmarked_parent_brings_a_marked_child_in(watcher, root, tmp_path):
    busy = busy_outside(tmp_path, watcher, root, "p/busy")
    (root / "x").mkdir()
    settle(watcher, root)
    exchange(root / "x", tmp_path / "p")
    got = kinds(settle(watcher, root))
    assert ("write", "x/busy/f0") in got
    assert handle(root / "x" / "busy") not in watcher.ignores.marked
    assert_reported(watcher, root, "x/busy/new.jpg")
    del busy


def test_moved_in_out_and_in_again(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    out.rename(root / "m")
    settle(watcher, root)
    (root / "m").rename(tmp_path / "back")
    settle(watcher, root)
    write_many(tmp_path / "back", 3)
    settle(watcher, root)
    assert handle(tmp_path / "back") in watcher.ignores.marked     # marked again outside
    (tmp_path / "back").rename(root / "m2")
    (root / "m2" / "between.jpg").write_bytes(b"b")
    assert ("write", "m2/between.jpg") in kinds(settle(watcher, root))
    assert_reported(watcher, root, "m2/f3")


def test_in_out_in_before_the_events_are_read(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    out.rename(root / "m")
    (root / "m" / "a.jpg").write_bytes(b"a")
    (root / "m").rename(tmp_path / "o2")
    (tmp_path / "o2" / "b.jpg").write_bytes(b"b")
    (tmp_path / "o2").rename(root / "n")
    got = kinds(settle(watcher, root))
    assert {("write", "n/a.jpg"), ("write", "n/b.jpg")} <= got
    assert_reported(watcher, root, "n/c.jpg")


def test_deep_nesting_only_the_leaf_marked(watcher, root, tmp_path):
    leaf = busy_outside(tmp_path, watcher, root, "d1/d2/d3/d4/leaf")
    mid = tmp_path / "d1" / "d2"
    write_many(mid, 2)
    settle(watcher, root)
    assert handle(mid) in watcher.ignores.marked
    (tmp_path / "d1").rename(root / "d1")
    (root / "d1" / "d2" / "d3" / "d4" / "leaf" / "f0").write_bytes(b"after")
    got = kinds(settle(watcher, root))
    assert ("write", "d1/d2/d3/d4/leaf/f0") in got
    assert not ({handle(root / "d1" / "d2"), handle(root / "d1/d2/d3/d4/leaf")}
                & set(watcher.ignores.marked))
    assert_reported(watcher, root, "d1/d2/d3/d4/leaf/new.jpg")
    assert_reported(watcher, root, "d1/d2/new.jpg")
    del leaf


def test_moved_in_through_a_name_excluded_dir(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    (root / "cache").mkdir()
    settle(watcher, root)
    out.rename(root / "cache" / "m")
    settle(watcher, root)
    (root / "cache" / "m").rename(root / "m")
    assert ("write", "m/f0") in kinds(settle(watcher, root))
    assert_reported(watcher, root, "m/new.jpg")


def test_moved_in_while_a_writer_keeps_its_file_open(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    with open(out / "open.bin", "wb") as f:
        f.write(b"1")
        f.flush()
        out.rename(root / "m")
        f.write(b"2" * 100)     # dropped by the kernel until the move is read
        f.flush()
        got = kinds(settle(watcher, root))
        assert ("write", "m/open.bin") in got
        f.write(b"3")
    # the close after the move is read is reported
    assert ("write", "m/open.bin") in kinds(settle(watcher, root))


def test_hard_link_from_a_marked_dir_into_the_tree(watcher, root, tmp_path):
    out = busy_outside(tmp_path, watcher, root)
    os.link(out / "f0", root / "linked")
    assert ("write", "linked") in kinds(settle(watcher, root))
    with open(root / "linked", "ab") as f:
        f.write(b"via the tree's name")
    assert ("write", "linked") in kinds(settle(watcher, root))
    # a write through the outside name is not reported, marks or not (its parent is
    # outside: the same without ignore marks, and with inotify): not the marks' doing


def test_deleted_marked_dir_and_a_new_dir_in_the_tree(watcher, root, tmp_path):
    for i in range(5):
        out = busy_outside(tmp_path, watcher, root, f"gone{i}")
        for p in out.iterdir():
            p.unlink()
        out.rmdir()
        (root / f"new{i}").mkdir()      # may take the freed inode number
        settle(watcher, root)
        assert_reported(watcher, root, f"new{i}/x.jpg")


def test_overflow_of_a_bounded_queue_with_a_marked_dir_moved_in(root, tmp_path):
    w = counting_watcher(root, unlimited_queue=False)
    try:
        out = busy_outside(tmp_path, w, root)
        limit = int(open("/proc/sys/fs/fanotify/max_queued_events").read())
        spam = root / "spam"
        spam.mkdir()
        settle(w, root)
        for i in range(limit + 1000):   # one merged event each: the queue overflows
            (spam / f"s{i}").write_bytes(b"")
        out.rename(root / "m")              # lost in the overflow
        (root / "m" / "x.jpg").write_bytes(b"x")
        # the sentinel of settle() may be lost too: read until the overflow, then drain
        read_until(w, lambda evs: any(e.kind == "overflow" for e in evs))
        settle(w, root)
        assert handle(root / "m") not in w.ignores.marked  # others' directories may be again
        assert_reported(w, root, "m/after.jpg")
    finally:
        w.close()


def test_mark_limit_then_a_marked_dir_moves_in(root, tmp_path):
    w = counting_watcher(root)
    try:
        w.ignores.max_marks = 8
        dirs = [busy_outside(tmp_path, w, root, f"d{i}") for i in range(3)]
        for i in range(3, 20):
            d = tmp_path / f"d{i}"
            d.mkdir()
            write_many(d, 2)
        settle(w, root)
        assert len(w.ignores.marked) <= 8
        last = tmp_path / "d19"
        assert handle(last) in w.ignores.marked
        last.rename(root / "m")
        dirs[0].rename(root / "m0")
        got = kinds(settle(w, root))
        assert {("write", "m/f0"), ("write", "m0/f0")} <= got
        assert_reported(w, root, "m/n.jpg")
        assert_reported(w, root, "m0/n.jpg")
    finally:
        w.close()


def test_the_roots_parent_is_busy_and_a_dir_moves_in_from_it(watcher, root, tmp_path):
    write_many(tmp_path, 3)
    settle(watcher, root)
    assert handle(tmp_path) not in watcher.ignores.marked
    (tmp_path / "f0").rename(root / "f0")
    assert ("write", "f0") in kinds(settle(watcher, root))
