"""Kernel-side ignore marks on directories outside the source root: how the fanotify
watcher stops other writers' events before they are queued.

A filesystem mark reports every change on the file system: a database, a log, an S3
server's volumes, mirrord's own state database. Dropped in this process, each still
costs a read and a parse (0.2 ms of CPU per file shipped on the S3 burst, where
SeaweedFS and the state database write to the source's file system). An inode mark
with an ignore mask on such a directory (fanotify_mark(2): FAN_MARK_IGNORE with
FAN_EVENT_ON_CHILD, Linux 6.0) makes the kernel drop its children's events instead.

Rules, each for a reason:
- Only what cannot concern the tree is ignored: a child's FAN_MODIFY, FAN_CLOSE_WRITE,
  FAN_ATTRIB, FAN_CREATE and FAN_DELETE. Never FAN_RENAME: an ignore mask on either
  end of a rename drops the whole event, and a file moved into the tree would be
  lost. Never FAN_ONDIR (directories made and removed: the root's own removal is one)
  nor the directory's own events (FAN_MARK_IGNORE leaves them alone without FAN_ONDIR).
- Never on the root, below it or above it: only a directory whose path, when it is
  looked up, lies outside the root.
- A marked directory can enter the tree by a rename (of itself or of a directory above
  it). Its children's events in between were dropped by the kernel, so the watcher
  calls `entered()` before it scans the newcomer: every marked directory now at or
  below the root loses its mark first, and the scan made after it sees what the
  dropped events would have said. One moved into an excluded part of the tree can
  become part of it by a rename inside the tree (`exclude = a/cache`, then root/a
  renamed): `moved_below()` takes its mark off when it arrives there.
- A queue overflow may have hidden such a rename: `flush()` takes every mark off.
- A directory is marked by `seen()` when one of the events a mark would stop reaches
  this process. Marks are FAN_MARK_EVICTABLE (Linux 5.19): they do not pin the
  directory's inode; when the kernel evicts one, its events come back and it is marked
  again. Directories above the root, below it (excluded ones) or gone are remembered as
  not to be marked.
- At most `max_marks` directories are marked: when full, the handles of directories
  gone are pruned, then the oldest quarter is unmarked.
- A kernel that refuses the flags (EINVAL: older than 6.0) turns this off for good;
  events are then dropped in this process, as before.
"""

from __future__ import annotations

import errno
import logging
import os
from collections import OrderedDict

from mirrord.watch import fanotify_sys as S

log = logging.getLogger("mirrord.watch")

IGNORE_MASK = (S.FAN_MODIFY | S.FAN_CLOSE_WRITE | S.FAN_ATTRIB | S.FAN_CREATE | S.FAN_DELETE
               | S.FAN_EVENT_ON_CHILD)
_ADD = S.FAN_MARK_ADD | S.FAN_MARK_IGNORE | S.FAN_MARK_IGNORED_SURV_MODIFY | S.FAN_MARK_EVICTABLE
_REMOVE = S.FAN_MARK_REMOVE | S.FAN_MARK_IGNORE | S.FAN_MARK_IGNORED_SURV_MODIFY
_IGNORABLE = IGNORE_MASK & ~S.FAN_EVENT_ON_CHILD


class OutsideIgnores:
    """The ignore marks of fanotify group `group_fd`, whose filesystem mark covers
    `root` (an absolute path; `dev` its st_dev). Handles are raw `struct file_handle`
    bytes as event records carry them. No method raises: a mark the kernel refuses is
    left off, and the events stay (dropped in this process)."""

    def __init__(self, group_fd: int, root: str, dev: int, *, max_marks: int = 4096):
        self.fd = group_fd
        self.root = root
        self.dev = dev
        self._prefix = root.rstrip("/") + "/"
        self.max_marks = max_marks
        self.enabled = True
        # handle -> `epoch` when marked, oldest first. Events queued before a mark was placed
        # still arrive; once the queue has been found empty since (drained()), one more
        # from that directory means the kernel evicted the mark.
        self.marked: OrderedDict[bytes, int] = OrderedDict()
        self.epoch = 0
        self.unmarkable: set[bytes] = set()     # above the root, in it, gone: not tried again
        self.marks_added = 0
        self.marks_removed = 0

    def seen(self, handle: bytes | None, mask: int) -> None:
        """An event from a directory that is not in the tree reached us (outside the root,
        above it, excluded or gone). When it is one an ignore mark stops, mark that
        directory, or mark it again (the kernel evicted our mark); directories that
        cannot be marked are remembered and not tried again."""
        if (not self.enabled or handle is None or not mask & _IGNORABLE
                or mask & (S.FAN_ONDIR | S.FAN_RENAME) or handle in self.unmarkable):
            return
        # marked before: evicted, or queued between the read that placed the mark and the
        # mark (drained() since): the kernel mark may still be on
        was_marked = handle in self.marked
        if was_marked and self.marked[handle] == self.epoch:
            return          # queued before the mark was placed
        opened = self._open_at(handle)
        if opened is None:
            self.marked.pop(handle, None)
            self._cannot(handle)
            return
        fd, path = opened
        try:
            if not self._outside(path):
                if was_marked:  # moved in (its rename not read yet): the mark comes off
                    self._unmark(handle, fd)    # here, entered() will not know of it
                self._cannot(handle)
                return
            if len(self.marked) >= self.max_marks:
                self._make_room()
            # moved into the tree after the readlink: that rename is read after this
            # event, and entered() then finds the handle here and takes the mark off
            S.fanotify_mark(self.fd, _ADD, IGNORE_MASK, None, dirfd=fd)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                self.enabled = False
                log.info("fanotify: this kernel has no FAN_MARK_IGNORE (Linux 6.0): events "
                         "from outside the source are dropped by mirrord, not by the kernel")
            else:
                if was_marked:
                    self._unmark(handle, fd)
                self._cannot(handle)
            return
        finally:
            os.close(fd)
        self.marks_added += 1
        self.marked.pop(handle, None)   # newest last: _make_room unmarks the oldest
        self.marked[handle] = self.epoch

    def drained(self) -> None:
        """The watcher found its queue empty: every event queued before the marks placed
        so far has been read."""
        self.epoch += 1

    def entered(self) -> None:
        """A directory came into the tree from outside: take the mark off every marked
        directory that is now at or below the root (or gone), before the caller scans."""
        for handle in list(self.marked):
            opened = self._open_at(handle)
            if opened is None:
                del self.marked[handle]
                continue
            fd, path = opened
            try:
                if not self._outside(path):
                    self._unmark(handle, fd)
            finally:
                os.close(fd)

    def moved_below(self, dfid: bytes | None) -> None:
        """A directory from outside was renamed into `dfid`, a directory not in the tree:
        when that one is at or below the root (an excluded part of the tree), the newcomer
        is in the root now and may become part of the tree by a rename inside it (a path-
        dependent exclude such as `a/cache`: root/a renamed to root/b), which never calls
        entered(): take the marks of what is now below the root off here."""
        if not self.marked or dfid is None:
            return
        opened = self._open_at(dfid)
        if opened is None:
            return
        os.close(opened[0])
        if opened[1] == self.root or opened[1].startswith(self._prefix):
            self.entered()

    def flush(self) -> None:
        """Take every ignore mark off (after an overflow: a rename into the tree may be
        among the events lost)."""
        if self.marked:
            try:
                S.fanotify_mark(self.fd, S.FAN_MARK_FLUSH, 0, None)   # inode marks only
            except OSError as exc:
                log.warning("fanotify: cannot remove the ignore marks: %s", exc.strerror)
                self.enabled = False    # cannot tell what is marked: mark nothing more
            self.marks_removed += len(self.marked)
            self.marked.clear()

    # ------------------------------------------------------------ helpers
    def _outside(self, path: str) -> bool:
        """True for a directory path neither at, below nor above the root."""
        if not path.startswith("/") or path.endswith(" (deleted)"):
            return False
        return not (path == self.root or path.startswith(self._prefix)
                    or self.root.startswith(path.rstrip("/") + "/"))

    def _open(self, handle: bytes) -> int | None:
        """An fd on the directory (O_RDONLY: fanotify_mark refuses O_PATH), or None when it
        is gone or the root's file system is not the one the handle belongs to."""
        try:
            mount_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if os.fstat(mount_fd).st_dev != self.dev:
                return None
            return S.open_by_handle(mount_fd, handle, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        finally:
            os.close(mount_fd)

    def _open_at(self, handle: bytes) -> tuple[int, str] | None:
        """_open(), with where the directory is now (its /proc/self/fd link: "" when it
        cannot be read, which no path check takes for outside or below the root)."""
        fd = self._open(handle)
        if fd is None:
            return None
        try:
            return fd, os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fd, ""

    def _cannot(self, handle: bytes) -> None:
        if len(self.unmarkable) >= 4 * self.max_marks:
            self.unmarkable.clear()
        self.unmarkable.add(handle)

    def _unmark(self, handle: bytes, fd: int) -> None:
        self.marked.pop(handle, None)
        try:
            S.fanotify_mark(self.fd, _REMOVE, IGNORE_MASK, None, dirfd=fd)
            self.marks_removed += 1
        except OSError as exc:
            if exc.errno != errno.ENOENT:   # evicted meanwhile: nothing to remove
                log.warning("fanotify: cannot remove an ignore mark: %s", exc.strerror)

    def _make_room(self) -> None:
        for handle in list(self.marked):    # directories gone: their marks went with them
            fd = self._open(handle)
            if fd is None:
                del self.marked[handle]
            else:
                os.close(fd)
        if len(self.marked) < self.max_marks:
            return
        for handle in list(self.marked)[:len(self.marked) - self.max_marks * 3 // 4]:
            fd = self._open(handle)
            if fd is None:
                del self.marked[handle]
                continue
            try:
                self._unmark(handle, fd)
            finally:
                os.close(fd)
