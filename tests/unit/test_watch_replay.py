"""Recorded kernel event sequences replayed through the watcher: packed `struct
inotify_event` bytes parsed by inotify_simple.parse_events, served by a fake inotify
whose add_watch answers like the kernel from a real tmp tree in its final state (one wd
per inode, the existing wd for a watched inode, ENOENT for a missing path). Each test is
one directory-rename shape or event kind, including orders seen only under load
(events handled long after the changes they describe).

Every test checks (1) the watcher's tree against the real directories (path -> the wd
of that inode) and (2) a state-based model of the target after the reported events
against the real tree (tests/watch_model.py).
"""

from __future__ import annotations

import errno
import os
import stat
import struct

import pytest
from inotify_simple import flags as F
from inotify_simple import parse_events

from mirrord.watch.inotify import TreeWatcher
from tests.watch_model import apply, disk, real_dirs

D = F.ISDIR


def pack(wd: int, mask: int, name: str = "", cookie: int = 0) -> bytes:
    raw = name.encode()
    size = (len(raw) // 16 + 1) * 16 if raw else 0
    return struct.pack("iIII", wd, mask, cookie, size) + raw.ljust(size, b"\0")


class FakeINotify:
    """inotify_add_watch(2) semantics over the real file system: one wd per inode,
    ENOENT/ENOTDIR like the kernel, ENOSPC for paths in `refuse`."""

    def __init__(self):
        self.wds: dict[tuple[int, int], int] = {}
        self.next_wd = 1
        self.queue: list[bytes] = []
        self.refuse: set[str] = set()
        self.removed: list[int] = []

    def add_watch(self, path, mask):
        p = os.fsdecode(path)
        if p in self.refuse:
            raise OSError(errno.ENOSPC, "No space left on device")
        st = os.stat(p, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "Not a directory")
        key = (st.st_dev, st.st_ino)
        if key not in self.wds:
            self.wds[key] = self.next_wd
            self.next_wd += 1
        return self.wds[key]

    def wd_of(self, path) -> int:
        st = os.stat(path, follow_symlinks=False)
        return self.wds[(st.st_dev, st.st_ino)]

    def rm_watch(self, wd):
        for key, w in list(self.wds.items()):
            if w == wd:
                del self.wds[key]
                self.removed.append(wd)
                return
        raise OSError(errno.EINVAL, "Invalid argument")

    def feed(self, *events: bytes):
        self.queue.append(b"".join(events))

    def read(self, timeout=0):
        data = b"".join(self.queue)
        self.queue.clear()
        return parse_events(data)

    def fileno(self):
        return -1

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Rig:
    """A watcher on a real tree with the fake inotify and a hand-driven clock."""

    def __init__(self, tmp_path, **kw):
        self.root = tmp_path / "src"
        self.outside = tmp_path / "outside"
        self.root.mkdir()
        self.outside.mkdir()
        self.fake = FakeINotify()
        self.clock = Clock()
        self.kw = kw
        self.w: TreeWatcher | None = None
        self.events: list = []
        self.model: set[str] = set()

    def start(self):
        self.w = TreeWatcher(str(self.root), inotify=self.fake, clock=self.clock,
                             limit_file=str(self.root.parent / "no-limit-file"), **self.kw)
        assert self.w.start() == []
        self.model = disk(self.root)     # the daemon's catch-up scan at start

    def wd(self, rel: str) -> int:
        return self.w.path_wd[rel]

    def replay(self, *events: bytes, later: float = 1.0):
        """Feed the events, read them, then let every window pass and read again."""
        self.fake.feed(*events)
        got = self.w.read(0)
        self.clock.t += later
        got += self.w.read(0)
        self.events += got
        self.model = apply(self.model, got, self.root)
        return got

    def check(self):
        """The tree is the real tree, each wd watching its inode; the target matches."""
        dirs = real_dirs(self.root)
        assert set(self.w.path_wd) == dirs
        for rel, wd in self.w.path_wd.items():
            assert self.fake.wd_of(self.root / rel if rel else self.root) == wd, rel
        assert self.model == disk(self.root), self.events
        for node in self.w.tree.by_wd.values():   # nothing detached is left behind
            assert self.w.tree.path(node) is not None


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def kinds(events):
    return [(e.kind, e.path) + ((e.src,) if e.src else ()) for e in events]


# ------------------------------------------------------------------ directory renames


def test_rename_within_the_tree_is_one_node_move(rig):
    (rig.root / "d" / "s").mkdir(parents=True)
    rig.start()
    d, s = rig.wd("d"), rig.wd("d/s")
    os.rename(rig.root / "d", rig.root / "e")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "d", 7), pack(1, F.MOVED_TO | D, "e", 7))
    assert kinds(got) == [("move", "e", "d")]
    assert rig.w.path_wd["e"] == d and rig.w.path_wd["e/s"] == s
    rig.check()


def test_swapped_with_a_directory_from_outside(rig):
    """User failure 1: the old gallery moved out and another moved in under its name;
    the held MOVED_FROM expires on the old node, never on the new gallery."""
    (rig.root / "gallery").mkdir()
    (rig.root / "gallery" / "old.jpg").write_bytes(b"1")
    (rig.outside / "staging").mkdir()
    (rig.outside / "staging" / "s.jpg").write_bytes(b"2")
    rig.start()
    old = rig.wd("gallery")
    os.rename(rig.root / "gallery", rig.outside / "x")
    os.rename(rig.outside / "staging", rig.root / "gallery")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "gallery", 11),
                     pack(1, F.MOVED_TO | D, "gallery", 12),
                     pack(old, F.CLOSE_WRITE, "moved-out-copy.jpg"))
    # MOVED_FROM already found another directory at the name: rescanned after the batch
    assert kinds(got) == [("rmtree", "gallery"), ("mkdir", "gallery"),
                          ("write", "gallery/s.jpg"), ("rescan", "gallery")]
    assert old in rig.fake.removed and rig.wd("gallery") != old
    (rig.root / "gallery" / "later.jpg").write_bytes(b"3")
    got = rig.replay(pack(rig.wd("gallery"), F.CLOSE_WRITE, "later.jpg"))
    assert kinds(got) == [("write", "gallery/later.jpg")]
    rig.check()


def test_created_and_renamed_at_once(rig):
    """User failure 2: add_watch on the created name gets ENOENT; the rename's MOVED_TO
    has a source with no node: a new directory arrived there."""
    rig.start()
    (rig.root / "2026-11").mkdir()
    (rig.root / "2026-11" / "f").write_bytes(b"1")
    got = rig.replay(pack(1, F.CREATE | D, "incoming"), pack(1, F.MOVED_FROM | D, "incoming", 3),
                     pack(1, F.MOVED_TO | D, "2026-11", 3))
    assert kinds(got) == [("rmtree", "incoming"), ("mkdir", "2026-11"), ("write", "2026-11/f")]
    got = rig.replay(pack(rig.wd("2026-11"), F.CLOSE_WRITE, "g"))
    rig.check()


def test_moved_out(rig):
    (rig.root / "d" / "s").mkdir(parents=True)
    rig.start()
    d, s = rig.wd("d"), rig.wd("d/s")
    os.rename(rig.root / "d", rig.outside / "d")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "d", 5), pack(s, F.CLOSE_WRITE, "later"))
    assert kinds(got) == [("rmtree", "d")]
    assert sorted(rig.fake.removed) == sorted([d, s])
    rig.check()


def test_moved_in(rig):
    (rig.outside / "p" / "q").mkdir(parents=True)
    (rig.outside / "p" / "q" / "f").write_bytes(b"1")
    rig.start()
    os.rename(rig.outside / "p", rig.root / "p")
    got = rig.replay(pack(1, F.MOVED_TO | D, "p", 9))
    assert set(kinds(got)) == {("mkdir", "p"), ("mkdir", "p/q"), ("write", "p/q/f")}
    rig.check()


def test_rename_over_an_existing_empty_directory(rig):
    (rig.root / "a").mkdir()
    (rig.root / "a" / "f").write_bytes(b"1")
    (rig.root / "b").mkdir()
    rig.start()
    a, b = rig.wd("a"), rig.wd("b")
    os.rename(rig.root / "a", rig.root / "b")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "a", 4), pack(1, F.MOVED_TO | D, "b", 4),
                     pack(b, F.DELETE_SELF), pack(b, F.IGNORED))
    # b held another directory: a rename over it and renameat2(RENAME_EXCHANGE) look
    # alike until later events, so b is rescanned once the batch is handled
    assert kinds(got) == [("move", "b", "a"), ("rescan", "b")]
    assert rig.wd("b") == a
    rig.check()


def test_exchanged(rig):
    """renameat2(RENAME_EXCHANGE): two MOVED_FROM/MOVED_TO pairs, the second one's
    source is the node the first one just put there."""
    for name in ("a", "b"):
        (rig.root / name).mkdir()
        (rig.root / name / f"in-{name}").write_bytes(b"1")
    rig.start()
    os.rename(rig.root / "a", rig.root / "t")
    os.rename(rig.root / "b", rig.root / "a")
    os.rename(rig.root / "t", rig.root / "b")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "a", 20), pack(1, F.MOVED_TO | D, "b", 20),
                     pack(1, F.MOVED_FROM | D, "b", 21), pack(1, F.MOVED_TO | D, "a", 21))
    assert ("move", "b", "a") in kinds(got)
    rig.check()


def test_renamed_again_before_its_events_are_handled(rig):
    (rig.root / "a" / "s").mkdir(parents=True)
    rig.start()
    a = rig.wd("a")
    os.rename(rig.root / "a", rig.root / "b")
    os.rename(rig.root / "b", rig.root / "c")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "a", 1), pack(1, F.MOVED_TO | D, "b", 1),
                     pack(1, F.MOVED_FROM | D, "b", 2), pack(1, F.MOVED_TO | D, "c", 2))
    assert kinds(got) == [("move", "b", "a"), ("move", "c", "b")]
    assert rig.wd("c") == a
    rig.check()


def test_renamed_while_files_are_created_in_it(rig):
    (rig.root / "a").mkdir()
    rig.start()
    a = rig.wd("a")
    (rig.root / "a" / "before").write_bytes(b"1")
    (rig.root / "a" / "during").write_bytes(b"2")
    os.rename(rig.root / "a", rig.root / "b")
    (rig.root / "b" / "after").write_bytes(b"3")
    got = rig.replay(pack(a, F.CLOSE_WRITE, "before"), pack(1, F.MOVED_FROM | D, "a", 8),
                     pack(a, F.CLOSE_WRITE, "during"), pack(1, F.MOVED_TO | D, "b", 8),
                     pack(a, F.CLOSE_WRITE, "after"))
    assert kinds(got)[:2] == [("write", "a/before"), ("move", "b", "a")]
    assert ("rescan", "b") in kinds(got)           # "during" came while it was held
    assert ("write", "b/after") in kinds(got)
    assert not any(e.path.startswith("a/during") for e in got)
    rig.check()


def test_create_handled_after_the_directory_was_renamed_and_another_made(rig):
    """mkdir a; mv a b; mkdir a, all before the first CREATE is read: add_watch("a")
    answers with the second directory's inode."""
    rig.start()
    (rig.root / "a").mkdir()
    (rig.root / "a" / "y").write_bytes(b"1")
    os.rename(rig.root / "a", rig.root / "b")
    (rig.root / "a").mkdir()
    (rig.root / "a" / "x").write_bytes(b"2")
    rig.replay(pack(1, F.CREATE | D, "a"), pack(1, F.MOVED_FROM | D, "a", 6),
               pack(1, F.MOVED_TO | D, "b", 6), pack(1, F.CREATE | D, "a"))
    rig.check()


def test_add_watch_returning_a_known_wd_moves_that_node(rig):
    """mkdir a; rmdir a; mv c a: the CREATE of a is handled when c's inode stands
    there, so add_watch returns c's wd: the kernel says where that node is."""
    (rig.root / "c").mkdir()
    (rig.root / "c" / "f").write_bytes(b"1")
    rig.start()
    c = rig.wd("c")
    os.rename(rig.root / "c", rig.root / "a")
    rig.replay(pack(1, F.CREATE | D, "a"), pack(1, F.DELETE | D, "a"),
               pack(1, F.MOVED_FROM | D, "c", 2), pack(1, F.MOVED_TO | D, "a", 2))
    assert rig.wd("a") == c
    rig.check()


def test_a_file_renamed_over_a_deleted_directory_name(rig):
    (rig.root / "d").mkdir()
    (rig.root / "f").write_bytes(b"1")
    rig.start()
    d = rig.wd("d")
    os.rmdir(rig.root / "d")
    os.rename(rig.root / "f", rig.root / "d")
    got = rig.replay(pack(1, F.DELETE | D, "d"), pack(1, F.MOVED_FROM, "f", 3),
                     pack(1, F.MOVED_TO, "d", 3), pack(d, F.DELETE_SELF), pack(d, F.IGNORED))
    assert kinds(got) == [("rmtree", "d"), ("move", "d", "f")]
    rig.check()


def test_moved_out_then_the_name_reused_at_once_deletes_first(rig):
    """mv f /elsewhere; echo > f inside the move window: the delete of the old f must
    not come after the write of the new one."""
    (rig.root / "f").write_bytes(b"1")
    rig.start()
    os.rename(rig.root / "f", rig.outside / "f")
    (rig.root / "f").write_bytes(b"2")
    got = rig.replay(pack(1, F.MOVED_FROM, "f", 4), pack(1, F.CREATE, "f"),
                     pack(1, F.CLOSE_WRITE, "f"))
    assert kinds(got) == [("delete", "f"), ("write", "f")]
    rig.check()


# ------------------------------------------------------------------ content and metadata


def test_modify_without_close_becomes_a_write_once_quiet(rig):
    (rig.root / "f").write_bytes(b"1")
    rig.start()
    rig.fake.feed(pack(1, F.MODIFY, "f"))
    assert rig.w.read(0) == []
    assert rig.w.next_deadline() == pytest.approx(rig.clock.t + rig.w.quiet)
    rig.clock.t += rig.w.quiet / 2
    rig.fake.feed(pack(1, F.MODIFY, "f"))          # still being written: not quiet yet
    assert rig.w.read(0) == []
    rig.clock.t += rig.w.quiet
    assert kinds(rig.w.read(0)) == [("write", "f")]
    assert rig.w.next_deadline() == rig.w.identity.next_deadline()   # only the root check


def test_close_write_clears_the_dirty_mark(rig):
    rig.start()
    got = rig.replay(pack(1, F.MODIFY, "f"), pack(1, F.CLOSE_WRITE, "f"))
    assert kinds(got) == [("write", "f")]


def test_the_dirty_mark_follows_a_rename_and_is_dropped_on_delete(rig):
    (rig.root / "g").write_bytes(b"1")
    rig.start()
    got = rig.replay(pack(1, F.MODIFY, "f"), pack(1, F.MOVED_FROM, "f", 2),
                     pack(1, F.MOVED_TO, "g", 2))
    assert kinds(got) == [("move", "g", "f"), ("write", "g")]
    got = rig.replay(pack(1, F.MODIFY, "g"), pack(1, F.DELETE, "g"))
    assert kinds(got) == [("delete", "g")]


def test_attrib_is_an_attr_event(rig):
    (rig.root / "d").mkdir()
    rig.start()
    got = rig.replay(pack(1, F.ATTRIB, "f"), pack(1, F.ATTRIB | D, "d"),
                     pack(rig.wd("d"), F.ATTRIB | D))   # the directory's own copy: once only
    assert [(e.kind, e.path, e.is_dir) for e in got] == [("attr", "f", False), ("attr", "d", True)]


# ------------------------------------------------------------------ unwatched directories


def test_an_unwatched_directory_is_state_retried_and_rescanned(tmp_path):
    rig = Rig(tmp_path, rescan_every=5.0, retry_first=1.0, retry_cap=4.0)
    rig.start()
    (rig.root / "u" / "v").mkdir(parents=True)
    (rig.root / "u" / "v" / "f").write_bytes(b"1")
    rig.fake.refuse.add(str(rig.root / "u"))
    rig.fake.feed(pack(1, F.CREATE | D, "u"))
    got = rig.w.read(0)
    assert [(e.kind, e.path) for e in got] == [("watch_error", "u")]
    assert "max_user_watches" in got[0].detail
    assert rig.w.unwatched == 1 and rig.w.unwatched_paths() == ["u"]
    seen = []
    for _ in range(12):                      # 12 s of failing retries: no second watch_error
        rig.clock.t += 1.0
        seen += rig.w.read(0)
    assert {e.kind for e in seen} == {"rescan"} and len(seen) == 2
    assert all(e.path == "u" for e in seen)
    assert rig.w.next_deadline() is not None
    rig.fake.refuse.clear()
    rig.w._ignored(None)                    # a watch was freed elsewhere: retry at once
    got = rig.w.read(0)
    assert set(kinds(got)) == {("mkdir", "u"), ("mkdir", "u/v"), ("write", "u/v/f"),
                               ("rescan", "u")}
    assert kinds(got)[-1] == ("rescan", "u")
    assert rig.w.unwatched == 0 and rig.w.watch_errors == 1
    assert set(rig.w.path_wd) == {"", "u", "u/v"}


def test_an_unwatched_directory_renamed_is_found_under_its_new_name(tmp_path):
    rig = Rig(tmp_path)
    (rig.root / "u").mkdir()
    rig.fake.refuse.add(str(rig.root / "u"))
    rig.w = TreeWatcher(str(rig.root), inotify=rig.fake, clock=rig.clock,
                        limit_file=str(tmp_path / "none"))
    assert [e.kind for e in rig.w.start()] == ["watch_error"]
    rig.model = disk(rig.root)
    rig.fake.refuse.clear()
    os.rename(rig.root / "u", rig.root / "w")
    got = rig.replay(pack(1, F.MOVED_FROM | D, "u", 3), pack(1, F.MOVED_TO | D, "w", 3))
    assert kinds(got) == [("rmtree", "u"), ("mkdir", "w")]
    assert rig.w.unwatched == 0
    rig.check()


def test_a_rename_whose_halves_are_handled_calls_apart_is_one_move(rig, monkeypatch):
    """READ_BUDGET: a call stops after its budget and the rest of what it took waits in
    the backlog. Each call here handles one event and the clock passes the move window
    between calls (a storm's pace); writes elsewhere come between the two halves. The
    MOVED_FROM does not expire while its MOVED_TO waits in the backlog: one move, not a
    delete of the directory and a new one (a tree re-sent, and kept where deletes keep)."""
    from mirrord.watch import inotify

    (rig.root / "d" / "s").mkdir(parents=True)
    rig.start()
    d = rig.wd("d")
    monkeypatch.setattr(inotify, "READ_BUDGET", 0.0)
    os.rename(rig.root / "d", rig.root / "e")
    for name in ("x", "y", "z"):
        (rig.root / name).write_bytes(b"elsewhere")
    rig.fake.feed(pack(1, F.MOVED_FROM | D, "d", 9), pack(1, F.CLOSE_WRITE, "x"),
                  pack(1, F.CLOSE_WRITE, "y"), pack(1, F.CLOSE_WRITE, "z"),
                  pack(1, F.MOVED_TO | D, "e", 9))
    got = []
    for _ in range(10):
        got += rig.w.read(0)
        rig.clock.t += 1.0
    assert kinds(got) == [("write", "x"), ("write", "y"), ("write", "z"), ("move", "e", "d")]
    assert not rig.w.backlog and rig.w.path_wd["e"] == d
    rig.events += got
    rig.model = apply(rig.model, got, rig.root)
    rig.check()
