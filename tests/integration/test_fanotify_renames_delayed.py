"""fanotify: every rename shape arrives as exactly its moves when the reader is late and the
rest of the file system is busy (issue 18: a rename must ship as a rename, not a re-send).

fanotify's mark sees the whole file system. A directory elsewhere that is emptied and
removed (another program's temporary directory, a pytest tmp dir on a CI machine) leaves
queued FAN_DELETEs whose directory handle is gone by the time they are read. The watcher
took that as a possible rename over an emptied directory and asked for a rescan of the
next directory renamed into the tree; the daemon's subtree check, run before the move was
shipped, then re-sent every file below it (tests/e2e/test_operations.py::
test_renames_arrive_as_renames_not_copies under load: a new inode below the moved
directory). Now only a directory that really replaced one (its FAN_ATTRIB read with the
handle gone: mirrord/watch/fanotify_late.py, renamed_in) is rescanned.

The same delay made other shapes re-sends through the journal, which keeps a move only
with no work pending at its ends (Journal.enqueue_move): events below a directory read
after its rename, named by the new path before the move (fanotify_late.take_back), and
what a rename replaced, reported before it (fanotify_late.drop_replaced). Each shape's
stream is checked exactly, and the state a target reaches by it against the disk.

Each case: a settled tree and a directory outside the root made before the watcher
started (its handle unknown to it), then the removal outside and the renames with no
read in between (the reader delayed, so everything is queued), real kernel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from mirrord.watch.fanotify import FanotifyWatcher, fanotify_available
from tests.watch_model import apply, disk, settle


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "src"
    (r / "dir" / "sub").mkdir(parents=True)
    (r / "dir" / "sub" / "file.bin").write_bytes(b"inner")
    (r / "a").write_bytes(b"a")
    (r / "b").write_bytes(b"b")
    ok, why = fanotify_available(str(r))
    assert ok, f"fanotify is not available here: {why}"
    return r


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A directory outside the root with a file in it, made before the watcher started."""
    d = tmp_path / "elsewhere" / "x"
    d.mkdir(parents=True)
    (d / "f").write_bytes(b"")
    return d


@pytest.fixture
def watcher(root, elsewhere):
    w = FanotifyWatcher(str(root))
    assert w.start() == []
    yield w
    w.close()


def _remove(d: Path) -> None:
    os.unlink(d / "f")
    os.rmdir(d)


def _write_below_then_rename_dir(r: Path) -> None:
    (r / "dir" / "sub" / "file.bin").write_bytes(b"new")
    os.rename(r / "dir", r / "moved")


def _file_in_then_rename_dir(r: Path) -> None:
    os.rename(r / "a", r / "dir" / "sub" / "y")
    os.rename(r / "dir", r / "moved")


def _file_out_then_rename_dir(r: Path) -> None:
    os.rename(r / "dir" / "sub" / "file.bin", r / "w")
    os.rename(r / "dir", r / "moved")


def _then_write(r: Path) -> None:
    os.rename(r / "a", r / "c")
    with open(r / "c", "ab") as fh:
        fh.write(b" more")


def _dir_then_write(r: Path) -> None:
    os.rename(r / "dir", r / "moved")
    (r / "moved" / "sub" / "file.bin").write_bytes(b"new")


SHAPES: dict[str, tuple[Callable[[Path], None], list[tuple]]] = {
    "file rename": (lambda r: os.rename(r / "a", r / "c"), [("move", "c", "a")]),
    "rename over an existing file": (lambda r: os.rename(r / "a", r / "b"),
                                     [("move", "b", "a")]),
    "directory rename with files below": (lambda r: os.rename(r / "dir", r / "moved"),
                                          [("move", "moved", "dir")]),
    "file chain a->c->d": (lambda r: (os.rename(r / "a", r / "c"), os.rename(r / "c", r / "d")),
                           [("move", "c", "a"), ("move", "d", "c")]),
    "directory chain": (lambda r: (os.rename(r / "dir", r / "d2"), os.rename(r / "d2", r / "d3")),
                        [("move", "d2", "dir"), ("move", "d3", "d2")]),
    "rename then write": (_then_write, [("move", "c", "a"), ("write", "c")]),
    "directory rename then write below": (_dir_then_write,
                                          [("move", "moved", "dir"),
                                           ("write", "moved/sub/file.bin")]),
    # events below a directory read after its rename are named by the new path: they are
    # reported after the move, never before it (Journal.enqueue_move keeps a move only
    # with no work pending at its ends: else the whole directory is re-sent)
    "write below, then directory rename": (_write_below_then_rename_dir,
                                           [("move", "moved", "dir"),
                                            ("write", "moved/sub/file.bin")]),
    "file renamed in, then directory rename": (_file_in_then_rename_dir,
                                               [("delete", "a"), ("move", "moved", "dir"),
                                                ("write", "moved/sub/y")]),
    "file renamed out, then directory rename": (_file_out_then_rename_dir,
                                                [("write", "w"), ("move", "moved", "dir"),
                                                 ("delete", "moved/sub/file.bin")]),
    # what a rename replaces is not reported before it: a new directory listed when its
    # FAN_CREATE is read already holds what was renamed into it ("mkdir -p; mv")
    "directory made, then a file renamed into it": (
        lambda r: (os.mkdir(r / "new"), os.rename(r / "a", r / "new" / "a")),
        [("mkdir", "new"), ("move", "new/a", "a")]),
    "directory made, then a directory renamed into it": (
        lambda r: (os.mkdir(r / "new"), os.rename(r / "dir", r / "new" / "dir")),
        [("mkdir", "new"), ("move", "new/dir", "dir")]),
    "file written, then another renamed over it": (
        lambda r: ((r / "b").write_bytes(b"bb"), os.rename(r / "a", r / "b")),
        [("move", "b", "a")]),
    "file deleted, then another renamed to its name": (
        lambda r: (os.unlink(r / "b"), os.rename(r / "a", r / "b")),
        [("move", "b", "a")]),
}


def kinds(events) -> list[tuple]:
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_directory_removed_elsewhere_leaves_renames_as_moves(watcher, root, elsewhere, shape):
    do, expected = SHAPES[shape]
    before = disk(root)
    _remove(elsewhere)
    do(root)
    events = settle(watcher, root)
    assert kinds(events) == expected
    assert apply(before, events, root) == disk(root)


def test_a_directory_renamed_over_an_emptied_one_is_still_rescanned(watcher, root):
    """The case the rescan is for: "rm d2/f; mv d1 d2" read late. The delete names d2 by a
    handle gone when read (no path, nothing reported), so the target's d2/f is removed
    only by a comparison of d2 after the move."""
    (root / "d2").mkdir()
    (root / "d2" / "f").write_bytes(b"old")
    (root / "d1").mkdir()
    settle(watcher, root)
    os.rename(root / "dir", root / "other")     # read first: clears the handle cache, so
    os.unlink(root / "d2" / "f")                # d2's handle is looked up after d2 is gone
    os.rename(root / "d1", root / "d2")
    got = kinds(settle(watcher, root))
    assert got[:2] == [("move", "other", "dir"), ("move", "d2", "d1")]
    assert ("rescan", "d2") in got[2:]
