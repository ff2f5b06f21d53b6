"""Recursive inotify watching of one source tree, turned into typed file events.

Kernel events are translated here and nothing else is decided: the daemon
turns FsEvents into journal changes. Rules, each for a reason:
- A file is reported on close-after-write or on being renamed into the tree,
  never on create, so half-written files are never shipped (a hard link,
  which has no close, is reported on create).
- A new directory is watched first and scanned second, so files written into
  it before its watch existed are still reported.
- MOVED_FROM is held for a short window to pair with its MOVED_TO by cookie;
  unpaired halves become a delete (moved out) or a create (moved in).
- Queue overflow and watch-limit errors are reported as events, never dropped:
  the daemon logs them, counts them and rescans.
- Nothing is followed through a symlink (IN_DONT_FOLLOW, lstat-based walks).
- At start-up only directories matter, and most directories of an uploads tree
  are leaves full of files. Where the file system counts subdirectories in a
  directory's link count (ext4, xfs, tmpfs), a watched directory whose count
  says "no subdirectories" is not listed at all. The count is read after the
  watch is in place, so a subdirectory made later still arrives as an event.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_mod
import time
from typing import Callable

from inotify_simple import INotify
from inotify_simple import flags as F

from mirrord.fsutil import counts_subdirs_in_nlink
from mirrord.watch.events import FsEvent, describe  # noqa: F401 - re-exported

log = logging.getLogger("mirrord.watch")

WATCH_MASK = (F.CLOSE_WRITE | F.CREATE | F.DELETE | F.MOVED_FROM | F.MOVED_TO
              | F.DELETE_SELF | F.MOVE_SELF | F.DONT_FOLLOW | F.ONLYDIR | F.EXCL_UNLINK)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class TreeWatcher:
    """Watches every directory below `root`; `read()` returns FsEvents with relative paths."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None = None, *,
                 move_window: float = 0.05, clock: Callable[[], float] = time.monotonic):
        self.root = os.path.abspath(root)
        self.excluded = excluded or (lambda _p: False)
        self.move_window = move_window
        self.clock = clock
        self.inotify = INotify()
        self.wd_path: dict[int, str] = {}
        self.path_wd: dict[str, int] = {}
        self.pending_moves: dict[int, tuple[str, bool, float]] = {}
        self.overflows = 0
        self.watch_errors = 0
        self.leaves_skipped = 0
        self._leaf_dev: int | None = self._trusted_nlink_device()

    def _trusted_nlink_device(self) -> int | None:
        """The root's device when its link counts can be trusted, else None."""
        try:
            dev = os.stat(self.root).st_dev
        except OSError:
            return None
        return dev if counts_subdirs_in_nlink(self.root) else None

    def _is_leaf(self, full: str) -> bool:
        """No subdirectory right now, by link count alone (only where that is trustworthy;
        a directory on another device, like a mount inside the tree, is always listed)."""
        if self._leaf_dev is None:
            return False
        try:
            st = os.stat(full, follow_symlinks=False)
        except OSError:
            return False
        return st.st_nlink == 2 and st.st_dev == self._leaf_dev

    def fileno(self) -> int:
        return self.inotify.fileno()

    def close(self) -> None:
        self.inotify.close()

    @property
    def watched(self) -> int:
        return len(self.wd_path)

    # ------------------------------------------------------------ watches
    def start(self) -> list[FsEvent]:
        """Watch the whole tree; returns watch_error events (the caller's scan covers files)."""
        events: list[FsEvent] = []
        self._add_tree("", scan=False, out=events)
        return events

    def rewatch(self) -> list[FsEvent]:
        """Add any watch that is missing (after an overflow); inotify reuses existing ones."""
        events: list[FsEvent] = []
        self._add_tree("", scan=False, out=events)
        return events

    def _add_watch(self, rel: str, out: list[FsEvent]) -> bool:
        full = os.path.join(self.root, rel) if rel else self.root
        try:
            wd = self.inotify.add_watch(os.fsencode(full), WATCH_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self.watch_errors += 1
                out.append(FsEvent("watch_error", rel, detail="inotify watch limit reached "
                                   "(fs.inotify.max_user_watches)"))
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                self.watch_errors += 1
                out.append(FsEvent("watch_error", rel, detail=exc.strerror or str(exc)))
            return False
        old = self.wd_path.get(wd)
        if old is not None and old != rel:
            self.path_wd.pop(old, None)
        self.wd_path[wd] = rel
        self.path_wd[rel] = wd
        return True

    def _add_tree(self, rel: str, *, scan: bool, out: list[FsEvent]) -> None:
        """Watch `rel` then walk it: subdirectories get watched, and with scan every
        file and directory found is reported (they may predate the watch)."""
        stack = [rel]
        while stack:
            cur = stack.pop()
            if not self._add_watch(cur, out):
                continue
            if scan and cur:
                out.append(FsEvent("mkdir", cur, is_dir=True))
            full = os.path.join(self.root, cur) if cur else self.root
            if not scan and self._is_leaf(full):  # checked after the watch: see module doc
                self.leaves_skipped += 1
                continue
            try:
                with os.scandir(os.fsencode(full)) as it:
                    entries = list(it)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    out.append(FsEvent("watch_error", cur, detail=f"cannot list: {exc.strerror}"))
                continue
            for entry in entries:
                try:  # d_type from the directory listing: no stat per file (start-up on big trees)
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = not is_dir and scan and entry.is_file(follow_symlinks=False)
                except OSError:
                    continue
                if not (is_dir or is_file):
                    continue
                child = _join(cur, os.fsdecode(entry.name))
                if self.excluded(child):
                    continue
                if is_dir:
                    stack.append(child)
                else:
                    out.append(FsEvent("write", child))

    def _forget_tree(self, rel: str, *, remove: bool) -> None:
        prefix = rel + "/"
        for path in [p for p in self.path_wd if p == rel or p.startswith(prefix)]:
            wd = self.path_wd.pop(path)
            self.wd_path.pop(wd, None)
            if remove:
                try:
                    self.inotify.rm_watch(wd)
                except OSError:
                    pass

    def _rename_tree(self, src: str, dst: str) -> None:
        prefix = src + "/"
        moved = [(p, wd) for p, wd in self.path_wd.items() if p == src or p.startswith(prefix)]
        for path, _wd in moved:
            del self.path_wd[path]
        for path, wd in moved:
            new = dst + path[len(src):]
            self.path_wd[new] = wd
            self.wd_path[wd] = new

    # ------------------------------------------------------------ events
    def next_deadline(self) -> float | None:
        """When the oldest unpaired MOVED_FROM must be settled (monotonic seconds)."""
        if not self.pending_moves:
            return None
        return min(t for _p, _d, t in self.pending_moves.values()) + self.move_window

    def read(self, timeout_ms: int = 0) -> list[FsEvent]:
        out: list[FsEvent] = []
        for ev in self.inotify.read(timeout=timeout_ms):
            self._translate(ev, out)
        self._expire_moves(out, force=False)
        return out

    def settle(self) -> list[FsEvent]:
        """Turn every held MOVED_FROM into a delete (at shutdown or when its window passed)."""
        out: list[FsEvent] = []
        self._expire_moves(out, force=True)
        return out

    def _expire_moves(self, out: list[FsEvent], *, force: bool) -> None:
        now = self.clock()
        for cookie, (rel, is_dir, t) in list(self.pending_moves.items()):
            if force or now - t >= self.move_window:
                del self.pending_moves[cookie]
                if is_dir:
                    self._forget_tree(rel, remove=True)
                    out.append(FsEvent("rmtree", rel, is_dir=True))
                else:
                    out.append(FsEvent("delete", rel))

    def _translate(self, ev, out: list[FsEvent]) -> None:
        mask = ev.mask
        if mask & F.Q_OVERFLOW:
            self.overflows += 1
            out.append(FsEvent("overflow", detail="inotify event queue overflowed "
                               "(fs.inotify.max_queued_events)"))
            return
        parent = self.wd_path.get(ev.wd)
        if mask & F.IGNORED:
            if parent is not None:
                self.wd_path.pop(ev.wd, None)
                if self.path_wd.get(parent) == ev.wd:
                    del self.path_wd[parent]
            return
        if parent is None:
            return
        if mask & (F.DELETE_SELF | F.MOVE_SELF | F.UNMOUNT):
            if parent == "":
                out.append(FsEvent("lost", "", detail="the source root was deleted, moved "
                                   "or unmounted"))
            return
        if not ev.name:
            return
        rel = _join(parent, ev.name)
        if self.excluded(rel):
            return
        is_dir = bool(mask & F.ISDIR)
        if mask & F.CREATE:
            self._created(rel, is_dir, out)
        elif mask & F.CLOSE_WRITE:
            out.append(FsEvent("write", rel))
        elif mask & F.DELETE:
            if is_dir:
                self._forget_tree(rel, remove=False)
            out.append(FsEvent("rmtree" if is_dir else "delete", rel, is_dir=is_dir))
        elif mask & F.MOVED_FROM:
            self.pending_moves[ev.cookie] = (rel, is_dir, self.clock())
        elif mask & F.MOVED_TO:
            self._moved_to(rel, is_dir, ev.cookie, out)

    def _created(self, rel: str, is_dir: bool, out: list[FsEvent]) -> None:
        if is_dir:
            self._add_tree(rel, scan=True, out=out)
            return
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except OSError:
            return
        if stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1:
            out.append(FsEvent("write", rel, size=st.st_size))  # a hard link: no close will follow

    def _moved_to(self, rel: str, is_dir: bool, cookie: int, out: list[FsEvent]) -> None:
        held = self.pending_moves.pop(cookie, None)
        if held is None:  # moved in from outside the tree: a create
            if is_dir:
                self._add_tree(rel, scan=True, out=out)
            else:
                out.append(FsEvent("write", rel))
            return
        src, _src_is_dir, _t = held
        if is_dir:
            self._forget_tree(rel, remove=False)  # a directory replaced by the move
            self._rename_tree(src, rel)
        out.append(FsEvent("move", rel, src=src, is_dir=is_dir))

