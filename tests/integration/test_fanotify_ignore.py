"""The fanotify watcher's kernel ignore marks (mirrord/watch/fanotify_ignore.py) on the
real kernel: a busy directory outside the root stops reaching the process after its
first event, yet nothing the tree needs is lost with it: a file or a marked directory
moved into the tree, a mark the kernel evicted, an overflow, the root and the
directories above it, a kernel without FAN_MARK_IGNORE, a full table.

Events are counted per directory handle at the watcher's _translate(), the one place
every event read goes through; the filesystem mark sees the whole machine, so counts
are of one directory's events only, and reads end at a sentinel (tests/watch_model).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mirrord.watch import fanotify_ignore as ignore_mod
from mirrord.watch import fanotify_sys as S
from tests.fanotify_marks import (
    counting_watcher,
    fanotify_root,
    handle,
    kinds,
    write_many,
)
from tests.watch_model import settle


@pytest.fixture
def root(tmp_path) -> Path:
    return fanotify_root(tmp_path)


@pytest.fixture
def watcher(root):
    w = counting_watcher(root)
    yield w
    w.close()


def test_a_busy_directory_outside_is_stopped_in_the_kernel(watcher, root, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    write_many(db, 5)
    settle(watcher, root)
    assert watcher.read_from[handle(db)] >= 1
    assert handle(db) in watcher.ignores.marked
    before = watcher.read_from[handle(db)]
    write_many(db, 500)     # 500 modifies and closes, 20 creates, none read
    (root / "x.jpg").write_bytes(b"x")
    assert kinds(settle(watcher, root)) == {("write", "x.jpg")}
    assert watcher.read_from[handle(db)] == before


def test_a_file_moved_in_from_a_marked_directory_is_reported(watcher, root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_many(out, 3)
    (out / "g.jpg").write_bytes(b"g")
    settle(watcher, root)
    assert handle(out) in watcher.ignores.marked
    (out / "g.jpg").rename(root / "g.jpg")      # FAN_RENAME is never ignored
    (out / "f0").rename(root / "sub-less")
    assert kinds(settle(watcher, root)) == {("write", "g.jpg"), ("write", "sub-less")}


def test_a_marked_directory_moved_in_loses_its_marks_before_its_scan(watcher, root, tmp_path):
    out = tmp_path / "out"
    (out / "a" / "b").mkdir(parents=True)
    for d in (out, out / "a", out / "a" / "b"):
        write_many(d, 2)
    settle(watcher, root)
    marked = {handle(d) for d in (out, out / "a", out / "a" / "b")}
    assert marked <= set(watcher.ignores.marked)
    out.rename(root / "in")
    # written after the move, before it is read: the kernel drops these (the marks are
    # still on); the scan made once the marks are off must find them
    (root / "in" / "new.jpg").write_bytes(b"n")
    (root / "in" / "a" / "b" / "deep.jpg").write_bytes(b"d")
    got = kinds(settle(watcher, root))
    assert {("write", "in/new.jpg"), ("write", "in/a/b/deep.jpg"), ("mkdir", "in/a/b")} <= got
    assert not marked & set(watcher.ignores.marked)
    (root / "in" / "a" / "b" / "later.jpg").write_bytes(b"l")
    assert kinds(settle(watcher, root)) == {("write", "in/a/b/later.jpg")}


def test_a_directory_moved_in_through_a_parent_loses_its_mark(watcher, root, tmp_path):
    """Only the deepest directory was busy (marked); its unmarked parent moves in."""
    out = tmp_path / "quiet" / "busy"
    out.mkdir(parents=True)
    write_many(out, 3)
    settle(watcher, root)
    assert handle(out) in watcher.ignores.marked
    (tmp_path / "quiet").rename(root / "q")
    (root / "q" / "busy" / "f0").write_bytes(b"rewritten after the move")
    got = kinds(settle(watcher, root))
    assert ("write", "q/busy/f0") in got
    assert handle(root / "q" / "busy") not in watcher.ignores.marked
    (root / "q" / "busy" / "f1").write_bytes(b"and again")
    assert kinds(settle(watcher, root)) == {("write", "q/busy/f1")}


def test_an_overflow_takes_every_mark_off(watcher, root, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    write_many(db, 3)
    settle(watcher, root)
    assert watcher.ignores.marked
    out: list = []
    watcher._translate(S.RawEvent(S.FAN_Q_OVERFLOW, 0), out)
    assert [e.kind for e in out] == ["overflow"] and not watcher.ignores.marked
    before = watcher.read_from[handle(db)]
    write_many(db, 3)       # the kernel reports them again: the mark is off
    settle(watcher, root)
    assert watcher.read_from[handle(db)] > before


def test_a_mark_the_kernel_dropped_is_placed_again(watcher, root, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    write_many(db, 3)
    settle(watcher, root)
    fd = os.open(db, os.O_RDONLY | os.O_DIRECTORY)
    try:    # what eviction of a FAN_MARK_EVICTABLE mark looks like from here
        S.fanotify_mark(watcher.fd, ignore_mod._REMOVE, ignore_mod.IGNORE_MASK, None, dirfd=fd)
    finally:
        os.close(fd)
    before = watcher.read_from[handle(db)]
    write_many(db, 3)
    settle(watcher, root)
    assert watcher.read_from[handle(db)] > before and handle(db) in watcher.ignores.marked
    before = watcher.read_from[handle(db)]
    write_many(db, 300)
    settle(watcher, root)
    assert watcher.read_from[handle(db)] == before


def test_events_queued_before_a_mark_do_not_place_it_again(watcher, root, tmp_path,
                                                           monkeypatch):
    db = tmp_path / "db"
    db.mkdir()
    placed: list[str] = []
    real = S.fanotify_mark

    def spy(fd, flags, mask, path, dirfd=S.AT_FDCWD):
        if flags & S.FAN_MARK_ADD and path is None:
            placed.append(os.readlink(f"/proc/self/fd/{dirfd}"))
        return real(fd, flags, mask, path, dirfd)
    monkeypatch.setattr(ignore_mod.S, "fanotify_mark", spy)
    for i in range(50):     # 50 files: their events are queued before the first is read
        (db / f"n{i}").write_bytes(b"x")
    settle(watcher, root)
    assert watcher.read_from[handle(db)] >= 2
    assert placed.count(str(db)) == 1


def test_the_root_above_and_excluded_directories_are_never_marked(watcher, root, tmp_path):
    write_many(tmp_path, 3)             # the root's parent
    (root / "cache").mkdir()            # excluded, below the root
    write_many(root / "cache", 3)
    settle(watcher, root)
    assert handle(tmp_path) not in watcher.ignores.marked
    assert handle(root / "cache") not in watcher.ignores.marked
    assert {handle(tmp_path), handle(root / "cache")} <= watcher.ignores.unmarkable
    os.rename(root, tmp_path / "moved-root")    # still seen: nothing above was marked
    got = []
    for _ in range(100):
        got += watcher.read(100)
        if any(e.kind == "lost" for e in got):
            break
    assert any(e.kind == "lost" for e in got)


def test_a_kernel_without_fan_mark_ignore_drops_events_in_the_process(watcher, root, tmp_path,
                                                                      monkeypatch):
    real = S.fanotify_mark

    def old_kernel(fd, flags, mask, path, dirfd=S.AT_FDCWD):
        if flags & S.FAN_MARK_IGNORE:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, flags, mask, path, dirfd)
    monkeypatch.setattr(ignore_mod.S, "fanotify_mark", old_kernel)
    db = tmp_path / "db"
    db.mkdir()
    write_many(db, 3)
    (root / "x.jpg").write_bytes(b"x")
    assert kinds(settle(watcher, root)) == {("write", "x.jpg")}
    assert not watcher.ignores.enabled and not watcher.ignores.marked
    before = watcher.read_from[handle(db)]
    write_many(db, 20)
    (root / "y.jpg").write_bytes(b"y")
    assert kinds(settle(watcher, root)) == {("write", "y.jpg")}
    assert watcher.read_from[handle(db)] > before


def test_a_full_table_unmarks_the_oldest(watcher, root, tmp_path):
    watcher.ignores.max_marks = 4
    dirs = [tmp_path / f"d{i}" for i in range(10)]
    for d in dirs:
        d.mkdir()
        write_many(d, 2)
        settle(watcher, root)
    assert 0 < len(watcher.ignores.marked) <= 4
    assert handle(dirs[-1]) in watcher.ignores.marked
    assert handle(dirs[0]) not in watcher.ignores.marked
    before = watcher.read_from[handle(dirs[0])]
    write_many(dirs[0], 2)      # unmarked: reported again (and marked again)
    settle(watcher, root)
    assert watcher.read_from[handle(dirs[0])] > before
    assert len(watcher.ignores.marked) <= 4
