"""Whole-file-system fanotify watching of one source tree, turned into typed file events.

The same job and FsEvents as the inotify TreeWatcher, with one mark
(FAN_MARK_FILESYSTEM) instead of a watch per directory: nothing to place at
start, no watch limit, an unlimited queue where the process may have one.
Rules, each for a reason:
- Events name a directory by handle and a child by name (FAN_REPORT_DFID_NAME,
  plus FAN_REPORT_TARGET_FID). fanotify_paths.DirPaths maps a handle to its
  path below the root, or None (outside, excluded, gone), once per directory,
  so an event from elsewhere on the file system costs one dict lookup.
- A handle is resolved when the event is READ, not when it happened (it has no
  history). So (renames: fanotify_renames): a directory rename touching the tree
  clears the map; an end of a rename that is outside or gone ships the other end
  as it stands on disk (fanotify_scan.as_it_stands), never a blind delete; the
  two FAN_RENAMEs of a renameat2(RENAME_EXCHANGE) ship both names as they stand;
  a delete or rename out of a directory that was gone when read makes the next
  directory renamed into the tree rescanned if that rename replaced a directory
  (FAN_ATTRIB on it:
  fanotify_late.renamed_in; a directory removed elsewhere on the file system
  must not turn a move into a re-send). Events below a directory renamed after
  they were resolved (until the queue is next found empty, or a read comes back
  short) were named by the new path BEFORE the move: those not yet returned are
  taken back, and all are reported again, as they stand on disk, after it
  (fanotify_late; the churn test's extra directory); only when some were
  returned already is the directory rescanned too.
- Files are reported on close-after-write, on being renamed in, on a hard link,
  and after FAN_MODIFY (or a create with no close: an O_TMPFILE linked in, whose
  close is reported under its "#<inode>" name) quiet for `quiet` seconds, named
  by its directory's path at that time (fanotify_quiet: renamed in between;
  fanotify_files turns a file's event bits into FsEvents).
- A directory made in the tree is a mkdir alone where directories start empty
  (ext4, xfs, tmpfs...: fanotify_scan.MADE_EMPTY): whatever is made in it has events
  of its own (the mark covers the file system; an ignore mark is never on a new
  directory). Elsewhere it is scanned (a btrfs snapshot is one FAN_CREATE, nothing for
  what it holds), and so is one renamed in: its contents had their events elsewhere.
- The kernel merges queued events for one object: each bit is handled, in order.
- The root or a directory above it deleted or renamed is "lost"; fanotify reports
  no unmount, so the root's (st_dev, st_ino) is checked every `root_check` s
  (watch/rootcheck.py) and the mark at each change of the mount table.
- A file system mounted below the root is not seen by the mark: start() reports
  each mount point as a watch_error and counts it as unwatched.
- Busy directories outside the root get a kernel ignore mark, so other writers'
  events stop reaching the process (fanotify_ignore).
"""

from __future__ import annotations

import os
import select
import time
from typing import Callable

from mirrord.exclude import excluded_entry
from mirrord.watch import fanotify_sys as S
from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_files import FileEvents
from mirrord.watch.fanotify_ignore import OutsideIgnores
from mirrord.watch.fanotify_late import LateReports
from mirrord.watch.fanotify_paths import DirPaths
from mirrord.watch.fanotify_probe import (  # noqa: F401
    MARK_MASK,
    fanotify_available,
    mounts_below,
    open_group,
)
from mirrord.watch.fanotify_quiet import QuietFiles
from mirrord.watch.fanotify_renames import RenameEvents
from mirrord.watch.read_lag import ReadLag
from mirrord.watch.rootcheck import RootIdentity
from mirrord.watch.fanotify_scan import NewDirectories, join, made_dirs_start_empty, tmpfile_name

READ_SIZE = 256 * 1024
MAX_READS = 64          # per read() call, so a flood elsewhere cannot hold the loop forever
# nor one call's work (a storm of directory exchanges held a call ~75 s: no heartbeat, no
# watchdog ping); what is left stays queued in the kernel for the next call
READ_BUDGET = 0.25      # seconds of handling per read() call, checked after each buffer
# the longest event we ask for (metadata, OLD_ and NEW_DFID_NAME, FID: two 128-byte handles
# and two 255-byte names, with headers) is under 1 KiB: a read that leaves this much of
# the buffer unused found the queue empty
MAX_EVENT_LEN = 4096


class FanotifyWatcher(FileEvents, NewDirectories, RenameEvents):
    """Watches everything below `root` through one filesystem mark; `read()` returns
    FsEvents with relative paths. Raises OSError from the constructor when no fanotify
    group can be opened and from start() when the mark or handles are refused
    (fanotify_available() says which beforehand)."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None = None, *,
                 move_window: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 quiet: float = 0.2, max_cached_dirs: int = 200_000,
                 unlimited_queue: bool = True, root_check: float = 1.0,
                 ignore_outside: bool = True, group: tuple[int, bool] | None = None):
        # the real path: handles resolve (readlink of /proc/self/fd) to it, never to a
        # path through a symlink, which would put every directory of the tree "outside"
        self.root = os.path.realpath(root)
        self.excluded = excluded or (lambda _p: False)
        self.move_window = move_window      # unused: FAN_RENAME needs no pairing window
        self.clock = clock
        self.quiet = quiet
        # group: (fd, unlimited) from fanotify_probe.probe_group, taken over (closed with
        # the watcher); otherwise a group of its own
        self.fd, self.unlimited = group or open_group(unlimited=unlimited_queue)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self.paths = DirPaths(self.root, self.excluded, max_entries=max_cached_dirs)
        self.late = LateReports(self.root, self.excluded)   # see fanotify_late
        self.quiet_files = QuietFiles()     # modified without a close (fanotify_quiet)
        self.modified = self.quiet_files.times  # rel -> clock() of last FAN_MODIFY
        self.pending_moves: dict = {}               # always empty: kept for API parity
        self.mounts: list[str] = []                 # mount points below the root (rel)
        self.overflows = 0
        self.watch_errors = 0
        self.leaves_skipped = 0
        self.dropped = 0            # events dropped as outside the root or excluded
        # (src, dst, is_dir, object FID) of the last move in the tree: a RENAME_EXCHANGE's
        # first half (fanotify_renames._moved)
        self._last_move: tuple[str, str, bool, bytes | None] | None = None
        self.identity = RootIdentity(root, clock, root_check)   # as given: a link swapped
        self.mark_sdevs: set[str] = set()   # the filesystem mark's superblock, learnt by start()
        self.ignore_outside = ignore_outside    # kernel ignore marks (fanotify_ignore)
        self.made_empty = False     # directories made start empty: set by start()
        self.ignores: OutsideIgnores | None = None
        self.read_lag = ReadLag(clock)      # how long the queue has not been found empty

    # ------------------------------------------------------------ life cycle
    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    @property
    def watched(self) -> int:
        return 1 if self.identity.known is not None and self.fd >= 0 else 0

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
        before = S.filesystem_marks(self.fd)   # a probe's group may hold one already
        S.fanotify_mark(self.fd, S.FAN_MARK_ADD | S.FAN_MARK_FILESYSTEM, MARK_MASK, self.root)
        self.mark_sdevs = (S.filesystem_marks(self.fd) - before) or S.filesystem_marks(self.fd)
        st = self.paths.learn_root()
        self.made_empty = made_dirs_start_empty(self.root)
        if self.ignore_outside:
            self.ignores = OutsideIgnores(self.fd, self.root, st.st_dev)
        self.identity.learn(st)
        self.mounts = [os.path.relpath(p, self.root) for p in mounts_below(self.root)]
        self.watch_errors += len(self.mounts)
        return [FsEvent("watch_error", rel, detail="another file system or a bind "
                        "mount is mounted here; fanotify does not see below it (watcher = "
                        "inotify does)") for rel in self.mounts]

    def rewatch(self) -> list[FsEvent]:
        """Nothing to re-add after an overflow: the one mark stays in place."""
        return []

    def mounts_changed(self) -> list[FsEvent]:
        """The mount table changed (mirrord.daemon_mounts): "lost" when the filesystem mark
        is gone (mark_alive), else learn the mount points below the root again; a
        watch_error for each new one, as start() reports them."""
        out: list[FsEvent] = []
        if self.identity.known is not None and not self.identity.lost and not self.mark_alive():
            self.identity.report_lost("unmounted (its file system's mark is gone)", out)
            return out
        now = [os.path.relpath(p, self.root) for p in mounts_below(self.root)]
        new = [rel for rel in now if rel not in self.mounts]
        self.mounts = now
        self.watch_errors += len(new)
        return [FsEvent("watch_error", rel, detail="another file system or a bind mount is "
                        "mounted here; fanotify does not see below it (watcher = inotify "
                        "does)") for rel in new]

    def mark_alive(self) -> bool:
        """Whether the filesystem mark on the root's file system is still in place
        (fanotify_sys.filesystem_marked: the kernel drops it silently with an unmount)."""
        if self.mark_sdevs:   # the superblock the mark went on (fanotify_sys.filesystem_marks)
            return bool(self.mark_sdevs & S.filesystem_marks(self.fd))
        known = self.identity.known
        return S.filesystem_marked(self.fd, known[0] if known is not None else 0)

    # ------------------------------------------------------------ events
    def next_deadline(self) -> float | None:
        """When read() has work without any event (monotonic s): the oldest file modified
        without a close is due as a write, or the root's identity is due for a check."""
        due = [min(self.modified.values()) + self.quiet] if self.modified else []
        check = self.identity.next_deadline()
        if check is not None:
            due.append(check)
        return min(due) if due else None

    def _check_root(self, out: list[FsEvent]) -> None:
        self.identity.check("unmounted, mounted over or replaced", out)

    def read(self, timeout_ms: int = 0) -> list[FsEvent]:
        """Events read within `timeout_ms` milliseconds (0: only what is queued now)."""
        out: list[FsEvent] = []
        self.late.batch.clear()
        empty = True        # the queue was found empty at the last read (watch.read_lag)
        read_at_ns = time.time_ns()     # before the reads: read_lag.drained
        if self._poll.poll(timeout_ms):
            until = time.monotonic() + READ_BUDGET
            for _ in range(MAX_READS):
                try:
                    buf = os.read(self.fd, READ_SIZE)
                except BlockingIOError:     # drained: every rename queued before a lookup
                    self._close_window(None)    # has been handled by now
                    if self.ignores is not None:
                        self.ignores.drained()
                    empty = True
                    break
                # a short read found the queue empty (the kernel stops copying only then or
                # when the next event does not fit: fanotify_read(), fs/notify/fanotify/
                # fanotify_user.c): once this buffer is handled, so is every rename queued
                # before the lookups and reports made so far. On a busy file system the
                # queue is seldom found empty, and the window would never close.
                empty = len(buf) <= READ_SIZE - MAX_EVENT_LEN
                cut = self.late.advance() if empty else None
                if cut is not None and self.ignores is not None:
                    self.ignores.drained()  # before the marks this buffer's events place
                self.paths.gen = self.late.gen
                for ev in S.parse(buf):     # most, from outside the root, report nothing
                    mark = self.late.mark(out)
                    self._translate(ev, out)
                    self.late.note_since(out, mark)
                if cut is not None:     # no break: what a batch holds the journal keeps in
                    self._close_window(cut)     # order, so fewer splits are safer
                if time.monotonic() > until:
                    break
        if empty:
            self.read_lag.drained(read_at_ns)
        else:
            self.read_lag.left_unread()
        self._expire_modified(out, force=False)
        self._check_root(out)
        return out

    def _close_window(self, gen: int | None) -> None:
        self.paths.forget_resolved_upto(gen)
        self.late.close(gen)

    def settle(self) -> list[FsEvent]:
        """Every file still modified-without-close as a write (at shutdown)."""
        out: list[FsEvent] = []
        self._expire_modified(out, force=True)
        return out

    def _translate(self, ev: S.RawEvent, out: list[FsEvent]) -> None:
        mask = ev.mask
        if mask & S.FAN_Q_OVERFLOW:
            self.overflows += 1
            self.paths.clear()  # a lost directory rename would leave stale paths cached
            if self.ignores is not None:    # and may have brought a marked directory in
                self.ignores.flush()
            out.append(FsEvent("overflow", detail="fanotify event queue overflowed "
                               "(fs.fanotify.max_queued_events)"))
            return
        if mask & S.FAN_RENAME:
            self._renamed(ev, out)
            return
        parent = self.paths.rel(ev.dfid) if ev.dfid is not None else None
        if parent is None:
            if self.ignores is not None:
                self.ignores.seen(ev.dfid, mask)    # next time the kernel drops these
            if mask & S.FAN_DELETE and self.paths.vanished(ev.dfid):
                self.late.lost_departure = self.late.gen  # in a directory gone by now
            elif (mask & S.FAN_ATTRIB and mask & S.FAN_ONDIR and ev.name == b"."
                    and self.paths.vanished(ev.dfid)):
                out.extend(self.late.replaced())    # a directory renamed over (_renamed)
            if mask & S.FAN_ONDIR and ev.fid is not None:
                if mask & S.FAN_CREATE:
                    self.paths.remember(ev.fid, None)    # outside too: its events cost no lookup
                elif mask & S.FAN_DELETE and self.paths.is_root_or_above(ev.fid):
                    self.identity.report_lost("deleted", out)
            self.dropped += 1
            return
        if ev.name == b"." or not ev.name:   # an event on a directory itself: the record
            if mask & S.FAN_ATTRIB and mask & S.FAN_ONDIR:   # names it, not its parent
                out.append(FsEvent("attr", parent, is_dir=True))   # (fanotify(7)); the root
            return                                                 # too: "" (Change.is_dir)
        rel = join(parent, os.fsdecode(ev.name))
        if ev.name[:1] == b"#" and tmpfile_name(self.root, rel):
            return
        if excluded_entry(self.excluded, rel, bool(mask & S.FAN_ONDIR)):
            self.dropped += 1
            return
        if mask & S.FAN_ONDIR:
            if mask & S.FAN_CREATE:
                self._made_dir(rel, ev.fid, out)
            if mask & S.FAN_DELETE:
                self.paths.forget(ev.fid)
                out.append(FsEvent("rmtree", rel, is_dir=True))
            return
        self._file_event(mask, rel, ev.dfid, out)
