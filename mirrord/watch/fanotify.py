"""Whole-file-system fanotify watching of one source tree, turned into typed file events.

The same job and the same FsEvents as the inotify TreeWatcher, with one mark
(FAN_MARK_FILESYSTEM) instead of one watch per directory: nothing to place at
start, no watch limit, and an unlimited queue where the process may have one.
Rules, each for a reason:
- Events name a directory by file handle and a child by name
  (FAN_REPORT_DFID_NAME, plus FAN_REPORT_TARGET_FID for the child's own handle).
  fanotify_paths.DirPaths maps a directory handle to its path below the root,
  or to None (outside, excluded, gone), once per directory: the mark sees every
  change on the file system (other programs, SQLite, tests), and an outside
  event then costs one dict lookup. A new directory's handle comes with its
  FAN_CREATE, so it is learned without any system call.
- A directory rename that touches the tree clears that map (every cached
  descendant's path changed; each directory seen again costs one resolution).
  A deleted directory's entry is dropped. Events queued before a rename but
  resolved after it get today's path (a handle has no history): the result is
  right for the final state, and may repeat a write or a mkdir.
- FAN_RENAME carries both ends, so moves need no pairing window: a rename
  out of the tree (or to an excluded name) is a delete, into it a create.
- Files are reported on close-after-write, on being renamed in, on a hard link
  being made, and after FAN_MODIFY with no close for `quiet` seconds
  (a writer that keeps the file open); never on create alone.
- The kernel merges queued events for the same object, so one event can carry
  several bits (CREATE|MODIFY|CLOSE_WRITE): each bit is handled, in order.
- The root (or a directory above it) deleted or renamed is "lost": paths
  resolved later would no longer be below the root. fanotify reports no
  unmount, so the root's (st_dev, st_ino) is also checked every
  `root_check` seconds: unmounted, or mounted over, is "lost" too.
- A file system mounted below the root is not seen by the mark: start()
  reports each such mount point as a watch_error and counts it as unwatched.
"""

from __future__ import annotations

import os
import select
import stat as stat_mod
import time
from typing import Callable

from mirrord.watch import fanotify_sys as S
from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_paths import DirPaths
from mirrord.watch.fanotify_probe import (MARK_MASK, fanotify_available,  # noqa: F401
                                          mounts_below, open_group)

READ_SIZE = 256 * 1024
MAX_READS = 64          # per read() call, so a flood elsewhere cannot hold the loop forever


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class FanotifyWatcher:
    """Watches everything below `root` through one filesystem mark; `read()` returns
    FsEvents with relative paths. Raises OSError from the constructor when no fanotify
    group can be opened and from start() when the mark or handles are refused
    (fanotify_available() says which beforehand)."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None = None, *,
                 move_window: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 quiet: float = 0.2, max_cached_dirs: int = 200_000,
                 unlimited_queue: bool = True, root_check: float = 1.0):
        self.root = os.path.abspath(root)
        self.excluded = excluded or (lambda _p: False)
        self.move_window = move_window      # unused: FAN_RENAME needs no pairing window
        self.clock = clock
        self.quiet = quiet
        self.fd, self.unlimited = open_group(unlimited=unlimited_queue)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self.paths = DirPaths(self.root, self.excluded, max_entries=max_cached_dirs)
        self.modified: dict[str, float] = {}        # rel -> clock() of last FAN_MODIFY
        self.pending_moves: dict = {}               # always empty: kept for API parity
        self.mounts: list[str] = []                 # mount points below the root (rel)
        self.overflows = 0
        self.watch_errors = 0
        self.leaves_skipped = 0
        self.dropped = 0            # events dropped as outside the root or excluded
        self._lost = False
        self.root_check = root_check
        self._root_id: tuple[int, int] | None = None
        self._next_check = 0.0

    # ------------------------------------------------------------ life cycle
    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    @property
    def watched(self) -> int:
        return 1 if self._root_id is not None and self.fd >= 0 else 0

    @property
    def handle_lookups(self) -> int:
        """Directory handles resolved with system calls so far (cache misses)."""
        return self.paths.lookups

    @property
    def unwatched(self) -> int:
        """Directories below which nothing is seen: mount points below the root."""
        return len(self.mounts)

    def unwatched_paths(self, limit: int = 20) -> list[str]:
        return self.mounts[:limit]

    def start(self) -> list[FsEvent]:
        """Place the filesystem mark and learn the root's handles. Returns a watch_error
        for each mount point below the root (the mark cannot see into it); the caller's
        scan covers files. Raises OSError when the mark or the root's handle is refused."""
        S.fanotify_mark(self.fd, S.FAN_MARK_ADD | S.FAN_MARK_FILESYSTEM, MARK_MASK, self.root)
        st = self.paths.learn_root()
        self._root_id, self._next_check = (st.st_dev, st.st_ino), self.clock() + self.root_check
        self.mounts = [os.path.relpath(p, self.root) for p in mounts_below(self.root)]
        self.watch_errors += len(self.mounts)
        return [FsEvent("watch_error", rel, detail="another file system or a bind "
                        "mount is mounted here; fanotify does not see below it (watcher = "
                        "inotify does)") for rel in self.mounts]

    def rewatch(self) -> list[FsEvent]:
        """Nothing to re-add after an overflow: the one mark stays in place."""
        return []

    # ------------------------------------------------------------ events
    def next_deadline(self) -> float | None:
        """When read() has work without any event (monotonic s): the oldest file modified
        without a close is due as a write, or the root's identity is due for a check."""
        due = [min(self.modified.values()) + self.quiet] if self.modified else []
        if self._root_id is not None and not self._lost:
            due.append(self._next_check)
        return min(due) if due else None

    def _check_root(self, out: list[FsEvent]) -> None:
        now = self.clock()
        if self._root_id is None or self._lost or now < self._next_check:
            return
        self._next_check = now + self.root_check
        try:
            st = os.stat(self.root)
            same = (st.st_dev, st.st_ino) == self._root_id
        except OSError:
            same = False
        if not same:
            self._report_lost("unmounted, mounted over or replaced", out)

    def read(self, timeout_ms: int = 0) -> list[FsEvent]:
        """Events read within `timeout_ms` milliseconds (0: only what is queued now)."""
        out: list[FsEvent] = []
        if self._poll.poll(timeout_ms):
            for _ in range(MAX_READS):
                try:
                    buf = os.read(self.fd, READ_SIZE)
                except BlockingIOError:
                    break
                for ev in S.parse(buf):
                    self._translate(ev, out)
        self._expire_modified(out, force=False)
        self._check_root(out)
        return out

    def settle(self) -> list[FsEvent]:
        """Every file still modified-without-close as a write (at shutdown)."""
        out: list[FsEvent] = []
        self._expire_modified(out, force=True)
        return out

    def _expire_modified(self, out: list[FsEvent], *, force: bool) -> None:
        if not self.modified:
            return
        now = self.clock()
        for rel, t in list(self.modified.items()):
            if force or now - t >= self.quiet:
                del self.modified[rel]
                out.append(FsEvent("write", rel))

    def _translate(self, ev: S.RawEvent, out: list[FsEvent]) -> None:
        mask = ev.mask
        if mask & S.FAN_Q_OVERFLOW:
            self.overflows += 1
            self.paths.clear()  # a lost directory rename would leave stale paths cached
            out.append(FsEvent("overflow", detail="fanotify event queue overflowed "
                               "(fs.fanotify.max_queued_events)"))
            return
        if mask & S.FAN_RENAME:
            self._renamed(ev, out)
            return
        parent = self.paths.rel(ev.dfid) if ev.dfid is not None else None
        if parent is None:
            if mask & S.FAN_ONDIR and ev.fid is not None:
                if mask & S.FAN_CREATE:
                    self.paths.remember(ev.fid, None)    # outside too: its events cost no lookup
                elif mask & S.FAN_DELETE and self.paths.is_root_or_above(ev.fid):
                    self._report_lost("deleted", out)
            self.dropped += 1
            return
        if ev.name == b"." or not ev.name:
            return      # an event on a directory itself (chmod of a directory): nothing to ship
        rel = _join(parent, os.fsdecode(ev.name))
        if self.excluded(rel):
            self.dropped += 1
            return
        if mask & S.FAN_ONDIR:
            if mask & S.FAN_CREATE:
                self._new_dir(rel, ev.fid, out)
            if mask & S.FAN_DELETE:
                self.paths.forget(ev.fid)
                out.append(FsEvent("rmtree", rel, is_dir=True))
            return
        self._file_event(mask, rel, out)

    def _file_event(self, mask: int, rel: str, out: list[FsEvent]) -> None:
        if mask & S.FAN_CREATE and not mask & S.FAN_CLOSE_WRITE:
            self._hard_link(rel, out)
        if mask & S.FAN_CLOSE_WRITE:
            self.modified.pop(rel, None)
            out.append(FsEvent("write", rel))
        elif mask & S.FAN_MODIFY:
            self.modified[rel] = self.clock()
        elif mask & S.FAN_ATTRIB and not mask & S.FAN_CREATE:
            out.append(FsEvent("attr", rel))
        if mask & S.FAN_DELETE:
            self.modified.pop(rel, None)
            out.append(FsEvent("delete", rel))

    def _hard_link(self, rel: str, out: list[FsEvent]) -> None:
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except OSError:
            return
        if stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1:
            out.append(FsEvent("write", rel, size=st.st_size))  # a hard link: no close follows

    def _renamed(self, ev: S.RawEvent, out: list[FsEvent]) -> None:
        if self.paths.is_root_or_above(ev.fid):
            self._report_lost("moved", out)
            return
        src = self._end(ev.old_dfid, ev.old_name)
        dst = self._end(ev.dfid, ev.name)
        if src is None and dst is None:
            self.dropped += 1
            return
        is_dir = bool(ev.mask & S.FAN_ONDIR)
        if is_dir:
            self.paths.clear()     # every cached path below the renamed directory changed
            if dst is not None and ev.fid is not None:
                self.paths.remember(ev.fid, dst)
        if src is not None and dst is not None:
            if src in self.modified:
                self.modified[dst] = self.modified.pop(src)
            out.append(FsEvent("move", dst, src=src, is_dir=is_dir))
        elif dst is not None:       # moved in from outside the root: a create
            if is_dir:
                self._new_dir(dst, None, out)
            else:
                out.append(FsEvent("write", dst))
        else:                       # moved out of the root: gone
            self.modified.pop(src, None)  # type: ignore[arg-type]
            out.append(FsEvent("rmtree", src, is_dir=True) if is_dir else FsEvent("delete", src))

    def _end(self, dfid: bytes | None, name: bytes | None) -> str | None:
        if dfid is None or not name:
            return None
        parent = self.paths.rel(dfid)
        if parent is None:
            return None
        rel = _join(parent, os.fsdecode(name))
        return None if self.excluded(rel) else rel

    def _report_lost(self, how: str, out: list[FsEvent]) -> None:
        if not self._lost:
            self._lost = True
            out.append(FsEvent("lost", "", detail=f"the source root (or a directory above it) "
                               f"was {how}"))

    def _new_dir(self, rel: str, fid: bytes | None, out: list[FsEvent]) -> None:
        """Report a new directory and everything already in it (it may have been moved in
        with contents, or filled before this event was read)."""
        if fid is not None:
            self.paths.remember(fid, rel)
        stack = [rel]
        while stack:
            cur = stack.pop()
            out.append(FsEvent("mkdir", cur, is_dir=True))
            try:
                with os.scandir(os.fsencode(os.path.join(self.root, cur))) as it:
                    entries = list(it)
            except OSError:
                continue    # gone again, or replaced by a file: its own events follow
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = not is_dir and entry.is_file(follow_symlinks=False)
                except OSError:
                    continue
                child = _join(cur, os.fsdecode(entry.name))
                if not (is_dir or is_file) or self.excluded(child):
                    continue
                if is_dir:
                    stack.append(child)
                else:
                    out.append(FsEvent("write", child))
