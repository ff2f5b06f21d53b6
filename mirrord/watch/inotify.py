"""Recursive inotify watching of one source tree, turned into typed file events.

Kernel events are translated here and nothing else is decided: the daemon turns
FsEvents into journal changes. Where each watch stands is watch/placing.py's job;
how the two halves of a rename are paired by cookie is watch/inotify_moves.py's.
Rules, each for a reason:
- A file is reported on close-after-write, on being renamed or linked into the tree,
  or once it has been quiet for `quiet` seconds after an IN_MODIFY with no close
  (truncate(2) by path, writes through a long-lived fd); never on create, so
  half-written files are not shipped (a hard link, which has no close, is reported on
  create). IN_ATTRIB (chmod, chown, utime) is an "attr" event.
- A new directory is watched first and scanned second, so files written into it
  before its watch existed are still reported.
- Queue overflow is reported as an event, never dropped: the daemon rescans.
- The root deleted, renamed or unmounted is "lost" (IN_DELETE_SELF, IN_MOVE_SELF,
  IN_UNMOUNT), and so is a root that no longer stands at its path with no event on its
  watch (mounted over, a bind mount unmounted, a directory above it renamed): its
  (st_dev, st_ino) is checked every `root_check` seconds (watch/rootcheck.py).
- One read() call handles at most READ_BUDGET seconds of events; the rest of what it
  took from the kernel waits in `backlog` for the next call, ahead of anything newer,
  and the timed work (expiring unpaired MOVED_FROMs, quiet files) waits with it, so a
  rename split across two calls is still paired. A storm of directory exchanges among
  writes (each exchanged directory is listed again) held one call, and with it the main
  loop, its heartbeats and the systemd watchdog, ~2 minutes.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import time
from collections import deque
from typing import Callable

from inotify_simple import INotify
from inotify_simple import flags as F

from mirrord.exclude import excluded_entry
from mirrord.watch.events import FsEvent, describe  # noqa: F401 - re-exported
from mirrord.watch.inotify_moves import Held, MovePairing
from mirrord.watch.longpaths import reachable
from mirrord.watch.placing import WATCH_MASK, WatchPlaces, join  # noqa: F401 - re-exported
from mirrord.watch.rootcheck import RootIdentity
from mirrord.watch.tree import Node
from mirrord.watch.read_lag import ReadLag
from mirrord.watch.unwatched import LIMIT_FILE, Unwatched

log = logging.getLogger("mirrord.watch")

READ_BUDGET = 0.25      # seconds of handling per read() call, checked after each event


class TreeWatcher(MovePairing, WatchPlaces):
    """Watches every directory below `root`; `read()` returns FsEvents with relative paths.

    excluded(rel) -> True for paths never reported or watched; move_window, quiet,
    rescan_every, retry_first, retry_cap: seconds (see the module docs); clock:
    monotonic seconds; inotify: an inotify_simple.INotify-like object (tests replay
    recorded kernel events through it); limit_file: where max_user_watches is read."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None = None, *,
                 move_window: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 quiet: float = 0.2, rescan_every: float = 5.0, retry_first: float = 1.0,
                 retry_cap: float = 60.0, inotify=None, limit_file: str = LIMIT_FILE,
                 root_check: float = 1.0):
        failed = Unwatched(clock, first=retry_first, cap=retry_cap, rescan_every=rescan_every,
                           limit_file=limit_file)
        # the real path, as the config's path is resolved at load: a root that became a
        # symlink (a deploy's `ln -sfn release uploads`) is watched where it points, and
        # its identity is checked at the path as given, so a swap of the link is "lost"
        super().__init__(os.path.realpath(root), excluded,
                         inotify if inotify is not None else INotify(), failed,
                         move_window)
        self.quiet = quiet
        self.clock = clock
        self.held: dict[int, Held] = {}                   # cookie -> held MOVED_FROM
        self.held_at: dict[tuple[Node, str], int] = {}    # (parent, name) -> cookie
        self.dirty: dict[tuple[Node, str], float] = {}    # IN_MODIFY without close -> last
        self.backlog: deque = deque()     # kernel events taken, not yet handled (READ_BUDGET)
        self.read_lag = ReadLag(clock)    # how long the backlog has not been found empty
        self._kernel_read_ns = 0          # wall ns before the kernel read the backlog came from
        self.identity = RootIdentity(root, clock, root_check)
        self.overflows = 0

    def _claim(self, node: Node) -> None:
        super()._claim(node)
        for held in self.held.values():
            if held.node is node:
                held.node = None

    def fileno(self) -> int:
        return self.inotify.fileno()

    def close(self) -> None:
        self.inotify.close()

    @property
    def pending_moves(self) -> dict[int, Held]:
        return self.held

    def start(self) -> list[FsEvent]:
        """Watch the whole tree; returns watch_error events (the caller's scan covers files).
        OSError when the root cannot be looked at."""
        self.identity.learn()
        return self.rewatch()

    def rewatch_at(self, rel: str) -> list[FsEvent]:
        """Place the watches at directory `rel` and below it again, as rewatch() does for
        the whole tree: a file system was mounted or unmounted there (mirrord.daemon_mounts),
        and inotify keeps no watch across that (the old file system's watches get
        IN_UNMOUNT and IN_IGNORED; the new one has none, and add_watch on the path now
        names another inode). No files are reported: the caller compares the subtree.
        A `rel` whose parent is not watched re-checks the whole tree."""
        parent_rel, _, name = rel.rpartition("/")
        parent = self.tree.lookup(parent_rel)
        if parent is None or not name:
            return self.rewatch()
        out: list[FsEvent] = []
        self._now = self.clock()
        node = self._place(parent, name, rel, out)
        if node is not None:
            self._walk(node, rel, scan=False, out=out)
        return out

    def next_deadline(self) -> float | None:
        """When read() next has timed work (monotonic seconds): a held MOVED_FROM or a
        set-aside node to settle, a modified file gone quiet, an unwatched retry or rescan,
        the root's identity check; now while events taken from the kernel wait in the
        backlog."""
        if self.backlog:
            return self.clock()
        times = [h.t + self.move_window for h in self.held.values()]
        check = self.identity.next_deadline()
        if check is not None:
            times.append(check)
        if self.limbo:
            times.append(min(self.limbo.values()) + self.move_window)
        if self.dirty:
            times.append(min(self.dirty.values()) + self.quiet)
        retry = self.failed.next_deadline()
        if retry is not None:
            times.append(retry)
        return min(times) if times else None

    def read(self, timeout_ms: int = 0) -> list[FsEvent]:
        """Events read within `timeout_ms` milliseconds, plus whatever timed work is due:
        the backlog first (the kernel is read only once it is empty), then, while fewer
        than READ_BUDGET seconds have passed, each event taken in order."""
        out: list[FsEvent] = []
        if not self.backlog:
            self._kernel_read_ns = time.time_ns()    # before the read: read_lag.drained
            self.backlog.extend(self.inotify.read(timeout=timeout_ms))
        self._now = self.clock()
        if self._handle_backlog(out, until=self._now + READ_BUDGET):
            self.read_lag.left_unread()
            return out                    # the timed work waits for the events before it
        # inotify_simple reads all the kernel held (FIONREAD) at _kernel_read_ns
        self.read_lag.drained(self._kernel_read_ns)
        self._find_missed(out)
        self._expire(out, force=False)
        self._retry(out)
        if self.recheck:
            self._flush_rechecks(out)
        self.identity.check("mounted over, unmounted (a bind mount), replaced, or renamed",
                            out)
        return out

    def settle(self) -> list[FsEvent]:
        """Everything timed, now: held MOVED_FROMs become deletes, quiet-pending files
        writes (at shutdown, or in tests)."""
        out: list[FsEvent] = []
        self._now = self.clock()
        self._handle_backlog(out, until=None)
        self._find_missed(out)
        self._expire(out, force=True)
        if self.recheck:
            self._flush_rechecks(out)
        return out

    def _handle_backlog(self, out: list[FsEvent], *, until: float | None) -> bool:
        """Translate backlog events in order until the clock reaches `until` (None: all of
        them); True when some are left."""
        backlog = self.backlog
        while backlog:
            self._translate(backlog.popleft(), out)
            if until is not None and backlog and self.clock() >= until:
                return True
        return False

    def _expire(self, out: list[FsEvent], *, force: bool) -> None:
        now = self._now
        for cookie, held in list(self.held.items()):
            if force or now - held.t >= self.move_window:
                self._drop_held(cookie, out)
        for node, t in list(self.limbo.items()):
            if force or now - t >= self.move_window:
                del self.limbo[node]
                if node.parent is None:
                    self._forget(node)
        for key, t in list(self.dirty.items()) if self.dirty else ():
            if force or now - t >= self.quiet:
                del self.dirty[key]
                prel = self.tree.path(key[0])
                rel = None if prel is None else join(prel, key[1])
                if rel is not None and not self.excluded(rel):
                    out.append(FsEvent("write", rel))

    def _translate(self, ev, out: list[FsEvent]) -> None:
        mask = ev.mask
        if mask & F.Q_OVERFLOW:
            self.overflows += 1
            out.append(FsEvent("overflow", detail="inotify event queue overflowed "
                               "(fs.inotify.max_queued_events)"))
            return
        node = self.tree.by_wd.get(ev.wd)
        if mask & F.IGNORED:
            self._ignored(node)
            return
        if node is None:
            return
        if mask & F.MODIFY:   # one per write(2): a dict update and nothing else
            # On a directory (its parent's watch: IN_ISDIR; its own: no name) IN_MODIFY is
            # its mtime set with the atime omitted (`touch -m`, GNU tar restoring it:
            # fsnotify_change), never a write. Directory mtimes are not mirrored; taken for
            # a write, "d/" was shipped as absent and a local mirror lost the directory.
            if ev.name and not mask & F.ISDIR:
                self.dirty[(node, ev.name)] = self._now
            return
        prel = self.tree.path(node)
        if prel is None:      # below a detached directory: a rescan covers it if it returns
            self.tree.top(node).touched = True
            return
        if mask & (F.DELETE_SELF | F.MOVE_SELF | F.UNMOUNT):
            if node is self.tree.root:
                self.identity.report_lost("deleted, moved or unmounted", out)
            return
        if not ev.name:       # IN_ATTRIB on a directory itself also reaches its parent's watch,
            if mask & F.ATTRIB and node is not self.tree.root and self._mount_root(prel):
                out.append(FsEvent("attr", prel, is_dir=True))   # but not from a mount's root
            elif mask & F.ATTRIB and node is self.tree.root:   # the source root's (""): what
                out.append(FsEvent("attr", "", is_dir=True))   # failed below it is retried
            return
        name = ev.name
        rel = join(prel, name)
        is_dir = bool(mask & F.ISDIR)
        if excluded_entry(self.excluded, rel, is_dir):
            return
        if self.missed and mask & (F.CREATE | F.DELETE | F.MOVED_FROM | F.MOVED_TO):
            self.missed.pop((node, name), None)
        if mask & F.CLOSE_WRITE:
            self.dirty.pop((node, name), None)
            out.append(FsEvent("write", rel))
        elif mask & F.ATTRIB:
            out.append(FsEvent("attr", rel, is_dir=is_dir))
        elif mask & F.CREATE:
            self._settle_at(node, name, 0, out)
            self._created(node, name, rel, is_dir, out)
        elif mask & F.DELETE:
            self._deleted(node, name, rel, is_dir, out)
        elif mask & F.MOVED_FROM:
            self._moved_from(node, name, is_dir, ev.cookie, out)
        elif mask & F.MOVED_TO:
            self._settle_at(node, name, ev.cookie, out)
            self._moved_to(node, name, rel, is_dir, ev.cookie, out)

    def _mount_root(self, rel: str) -> bool:
        """Whether the directory at `rel` is the root of a file system mounted there: its
        chmod or utime reaches only its own watch (the parent's watch is on the directory
        the mount covers), so its mode was mirrored only by a restart's catch-up."""
        try:
            with reachable(self.root, rel) as here, \
                    reachable(self.root, rel.rpartition("/")[0]) as above:
                return os.lstat(here).st_dev != os.lstat(above).st_dev
        except OSError:
            return False

    def _ignored(self, node: Node | None) -> None:
        """The kernel removed a watch (deleted directory, rm_watch, unmount)."""
        if node is not None:
            for orphan in self.tree.forget_wd(node.wd):
                self.limbo[orphan] = self._now
            self.limbo.pop(node, None)
            for held in self.held.values():
                if held.node is node:
                    held.node = None
        if self.failed.entries:     # a watch was freed: an unwatched directory may fit now
            self.failed.retry_all_now()

    def _created(self, parent: Node, name: str, rel: str, is_dir: bool,
                 out: list[FsEvent]) -> None:
        if is_dir:
            self._new_dir(parent, name, rel, out)
            return
        try:
            with reachable(self.root, rel) as path:   # deeper than PATH_MAX too
                st = os.lstat(path)
        except OSError:
            return
        if stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1:
            out.append(FsEvent("write", rel, size=st.st_size))  # a hard link: no close will follow
        elif stat_mod.S_ISREG(st.st_mode):   # an O_TMPFILE linked in (linkat(2)) gets no close
            self.dirty.setdefault((parent, name), self._now)    # under this name: due once quiet

    def _deleted(self, parent: Node, name: str, rel: str, is_dir: bool,
                 out: list[FsEvent]) -> None:
        self.dirty.pop((parent, name), None)
        if is_dir:
            child = parent.children.get(name)
            if child is not None:   # its IN_IGNORED follows; until then its place is unknown
                self._set_aside(child)
            self.failed.discard((parent, name))
        out.append(FsEvent("rmtree" if is_dir else "delete", rel, is_dir=is_dir))
