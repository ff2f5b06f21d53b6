"""Every directory-rename shape and every kind of change, on the real kernel.

After each shape: the watcher's tree equals the real tree (each wd watching that very
inode) and a state-based model of the target built from the reported events equals
the real tree. Waits are bounded polls (a sentinel file's events mark the end).
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
from pathlib import Path

import pytest

from mirrord.watch.inotify import TreeWatcher
from tests.watch_model import apply, disk, kernel_agrees, settle


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    r.mkdir()
    return r


@pytest.fixture
def outside(tmp_path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    return o


class Watched:
    def __init__(self, root: Path, **kw):
        self.root = root
        self.w = TreeWatcher(str(root), **kw)
        assert self.w.start() == []
        self.model = disk(root)

    def settle(self):
        events = settle(self.w, self.root)
        self.model = apply(self.model, events, self.root)
        return events

    def check(self):
        kernel_agrees(self.w, self.root)
        assert self.model == disk(self.root)


@pytest.fixture
def wt(root):
    w = Watched(root)
    yield w
    w.w.close()


def kinds(events):
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


def sh(root: Path, script: str) -> None:
    """Back-to-back changes in one process, faster than the watcher reads."""
    subprocess.run(["sh", "-c", script], cwd=root, check=True)


# ------------------------------------------------------------------ directory renames


def test_swapped_with_a_directory_from_outside(wt, root, outside):
    (root / "uploads" / "gallery").mkdir(parents=True)
    (root / "uploads" / "gallery" / "old.jpg").write_bytes(b"1")
    (outside / "staging").mkdir()
    (outside / "staging" / "new.jpg").write_bytes(b"2")
    wt.settle()
    sh(root, f"mv uploads/gallery {outside}/x && mv {outside}/staging uploads/gallery")
    wt.settle()
    (root / "uploads" / "gallery" / "later.jpg").write_bytes(b"3")
    (outside / "x" / "ghost.jpg").write_bytes(b"4")
    assert kinds(wt.settle()) == [("write", "uploads/gallery/later.jpg")]
    wt.check()


def test_created_and_renamed_at_once(wt, root):
    (root / "uploads").mkdir()
    wt.settle()
    sh(root, "mkdir uploads/incoming && mv uploads/incoming uploads/2026-11")
    wt.settle()
    (root / "uploads" / "2026-11" / "f.jpg").write_bytes(b"1")
    assert ("write", "uploads/2026-11/f.jpg") in kinds(wt.settle())
    wt.check()


def test_renamed_within_in_and_out(wt, root, outside):
    (root / "a" / "s").mkdir(parents=True)
    (outside / "in" / "t").mkdir(parents=True)
    (outside / "in" / "t" / "f").write_bytes(b"1")
    wt.settle()
    os.rename(root / "a", root / "b")
    os.rename(outside / "in", root / "b" / "in")
    os.rename(root / "b" / "s", outside / "s")
    wt.settle()
    (root / "b" / "in" / "t" / "g").write_bytes(b"2")
    assert kinds(wt.settle()) == [("write", "b/in/t/g")]
    wt.check()


def test_renamed_over_an_existing_empty_directory(wt, root):
    (root / "a").mkdir()
    (root / "a" / "f").write_bytes(b"1")
    (root / "b").mkdir()
    wt.settle()
    os.rename(root / "a", root / "b")
    # b held another directory: a rename over it and renameat2(RENAME_EXCHANGE) look
    # alike until later events, so b is rescanned once the batch is handled
    assert kinds(wt.settle()) == [("move", "b", "a"), ("rescan", "b")]
    wt.check()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="renameat2 is syscall 316 on x86_64 only")
def test_exchanged(wt, root):
    (root / "a").mkdir()
    (root / "a" / "in-a").write_bytes(b"1")
    (root / "b" / "sub").mkdir(parents=True)
    wt.settle()
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    rc = libc.syscall(316, at_fdcwd, bytes(root / "a"), at_fdcwd, bytes(root / "b"),
                      rename_exchange)
    assert rc == 0, os.strerror(ctypes.get_errno())
    wt.settle()
    (root / "a" / "sub" / "later").write_bytes(b"2")
    assert kinds(wt.settle()) == [("write", "a/sub/later")]
    wt.check()


def test_renamed_again_before_its_events_are_handled(wt, root):
    (root / "a" / "s").mkdir(parents=True)
    wt.settle()
    sh(root, "mv a b && mv b c && mkdir a && mv c a/c && mkdir c")
    wt.settle()
    wt.check()


def test_renamed_while_files_are_created_in_it(wt, root):
    (root / "a").mkdir()
    wt.settle()
    sh(root, "for i in 1 2 3 4 5 6 7 8; do echo $i > a/f$i; done & "
             "mv a b; sleep 0.05; mv b c; wait; true")
    wt.settle()
    wt.check()


def test_a_file_renamed_over_a_deleted_directory_name(wt, root):
    (root / "d").mkdir()
    (root / "f").write_bytes(b"1")
    wt.settle()
    sh(root, "rmdir d && mv f d")
    wt.settle()
    wt.check()


def test_a_directory_made_and_filled_then_moved_out_and_back(wt, root, outside):
    sh(root, f"mkdir -p n/m && echo 1 > n/m/f && mv n {outside}/n && mv {outside}/n n2")
    wt.settle()
    wt.check()


# ------------------------------------------------------------------ every kind of change


def test_chmod_is_an_attr_event(wt, root):
    (root / "f").write_bytes(b"1")
    (root / "d").mkdir()
    wt.settle()
    os.chmod(root / "f", 0o600)
    os.chmod(root / "d", 0o700)
    got = [(e.kind, e.path, e.is_dir) for e in wt.settle()]
    assert got == [("attr", "f", False), ("attr", "d", True)]


def test_utime_is_an_attr_event(wt, root):
    (root / "f").write_bytes(b"1")
    wt.settle()
    os.utime(root / "f", (1_000_000, 1_000_000))
    assert kinds(wt.settle()) == [("attr", "f")]


def test_truncate_by_path_is_a_write_once_quiet(wt, root):
    (root / "f").write_bytes(b"12345")
    wt.settle()
    os.truncate(root / "f", 2)
    assert kinds(wt.settle()) == [("write", "f")]


def test_writes_through_a_long_lived_fd_are_reported_once_quiet(root):
    w = Watched(root, quiet=0.3)
    try:
        with open(root / "log", "wb", buffering=0) as fh:
            fh.write(b"first")
            events = []
            for _ in range(100):           # bounded poll: ~10 s
                events += w.w.read(100)
                if any(e.path == "log" for e in events):
                    break
            assert kinds(events) == [("write", "log")]
            fh.write(b"second")
            for _ in range(100):
                events += w.w.read(100)
                if len(events) == 2:
                    break
            assert kinds(events) == [("write", "log"), ("write", "log")]
            assert w.w.next_deadline() is None
    finally:
        w.w.close()


def test_a_hard_link_is_a_write(wt, root):
    (root / "orig").write_bytes(b"data")
    wt.settle()
    os.link(root / "orig", root / "linked")
    got = wt.settle()
    assert ("write", "linked") in kinds(got) and all(e.path == "linked" for e in got)
