"""Where each watched directory stands: the watch tree kept equal to the real tree.

One job: put every directory below the root under an inotify watch and keep the node
of each watch at the place the kernel says it stands. inotify_add_watch(2) returns the
existing wd when the inode is already watched (inotify(7)), so every add_watch result
is an oracle: that node moves there, and whatever the tree had at that place before
is set aside (detached, its events reported nowhere) until the kernel names its place
or, after the move window, its watches are removed. A directory not found under the
name its event gave is looked for again once the rename that explains it is handled.
Directories inotify refuses (watch limit, EACCES) are state: retried and rescanned
(watch/unwatched.py). Nothing is followed through a symlink (IN_DONT_FOLLOW, lstat).

At start-up a watched directory whose link count says "no subdirectories" (ext4, xfs,
tmpfs) is not listed; the count is read after the watch is in place, so a
subdirectory made later still arrives as an event.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from typing import Callable

from inotify_simple import flags as F

from mirrord.exclude import excluded_entry
from mirrord.fsutil import counts_subdirs_in_nlink
from mirrord.watch.events import FsEvent
from mirrord.watch.longpaths import reachable
from mirrord.watch.tree import Node, WatchTree
from mirrord.watch.unwatched import Unwatched

WATCH_MASK = (F.CLOSE_WRITE | F.MODIFY | F.ATTRIB | F.CREATE | F.DELETE | F.MOVED_FROM
              | F.MOVED_TO | F.DELETE_SELF | F.MOVE_SELF | F.DONT_FOLLOW | F.ONLYDIR
              | F.EXCL_UNLINK)
GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)   # moved on or vanished: not a failure
MISSED_FOR = 60.0   # seconds a directory not found under its event's name is looked for


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class WatchPlaces:
    """The watches of one root: `tree` (by wd), set-aside nodes, unwatched directories.

    root: the directory watched; excluded(rel) -> True for paths never watched;
    inotify: an inotify_simple.INotify-like object; failed: the Unwatched state;
    move_window: seconds a set-aside node waits for its place before it is forgotten."""

    def __init__(self, root: str, excluded: Callable[[str], bool] | None, inotify,
                 failed: Unwatched, move_window: float):
        self.root = os.path.abspath(root)
        self.excluded = excluded or (lambda _p: False)
        self.inotify = inotify
        self.failed = failed
        self.move_window = move_window
        self.tree = WatchTree()
        self.limbo: dict[Node, float] = {}                # set aside, place unknown -> since
        self.missed: dict[tuple[Node, str], float] = {}   # add_watch said ENOENT -> since
        self.recheck: dict[tuple[Node, str], None] = {}   # to rescan after this batch
        self.watch_errors = 0
        self.leaves_skipped = 0
        self._now = 0.0
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

    @property
    def watched(self) -> int:
        return len(self.tree)

    @property
    def path_wd(self) -> dict[str, int]:
        """{relative path: wd} of every watched directory in place (O(watches))."""
        return self.tree.paths()

    @property
    def unwatched(self) -> int:
        """How many directories (tops of unwatched subtrees) are waiting for a watch."""
        return len(self.failed)

    def unwatched_paths(self, limit: int = 20) -> list[str]:
        """Up to `limit` relative paths of directories that are not watched."""
        out = []
        for parent, name in list(self.failed.entries):
            prel = self.tree.path(parent)
            if prel is not None:
                out.append(join(prel, name))
                if len(out) >= limit:
                    break
        return out

    def rewatch(self) -> list[FsEvent]:
        """Add any watch that is missing (after an overflow) and re-check every node's
        place; inotify returns the existing wd for a watched inode, so this is cheap."""
        out: list[FsEvent] = []
        try:
            wd = self.inotify.add_watch(os.fsencode(self.root), WATCH_MASK)
        except OSError as exc:
            self.watch_errors += 1
            out.append(FsEvent("watch_error", "", detail=self._why(exc)))
            return out
        self._walk(self.tree.set_root(wd), "", scan=False, out=out)
        return out

    def _full(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _is_dir(self, rel: str) -> bool:
        """A directory, not a symlink, stands at `rel` (lstat; deeper than PATH_MAX too)."""
        try:
            with reachable(self.root, rel) as path:
                return stat_mod.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False

    @staticmethod
    def _why(exc: OSError) -> str:
        if exc.errno == errno.ENOSPC:
            return "inotify watch limit reached (fs.inotify.max_user_watches)"
        return exc.strerror or str(exc)

    def _place(self, parent: Node, name: str, rel: str, out: list[FsEvent]) -> Node | None:
        """add_watch parent/name and put the node the kernel names at that place."""
        try:
            with reachable(self.root, rel) as path:   # deeper than PATH_MAX too
                wd = self.inotify.add_watch(os.fsencode(path), WATCH_MASK)
        except OSError as exc:
            if exc.errno in GONE:
                self.failed.discard((parent, name))
                self.missed.setdefault((parent, name), self._now)
            elif self.failed.add((parent, name)):
                self.watch_errors += 1
                out.append(FsEvent("watch_error", rel, detail=self._why(exc)))
            return None
        if self.failed.entries:
            self.failed.discard((parent, name))
        if self.missed:
            self.missed.pop((parent, name), None)
        node = self.tree.add(wd, name)
        if node is self.tree.root:
            return None               # the root below itself: a bind mount loop, never followed
        if node.parent is parent and node.name == name:
            return node
        left = (node.parent, node.name) if node.parent is not None else None
        self._claim(node)
        stale = self.tree.attach(node, parent, name)
        if stale is not None:
            self.limbo[stale] = self._now
        if left is not None:          # the kernel moved it before its events say so
            self.recheck[left] = None
        if left is not None or stale is not None:
            self.recheck[(parent, name)] = None
        return node if node.parent is parent else None

    def _flush_rechecks(self, out: list[FsEvent]) -> None:
        """Places where add_watch contradicted the order of events (a node moved before
        its events said so, one name reused within the batch, renameat2 RENAME_EXCHANGE):
        what the events reported there may be out of date, so each gets a rescan once
        the whole batch is handled."""
        paths: dict[str, tuple[Node, str]] = {}
        for parent, name in self.recheck:
            prel = self.tree.path(parent)
            if prel is not None:
                paths[join(prel, name)] = (parent, name)
        self.recheck.clear()
        for rel in sorted(paths):
            out.append(FsEvent("rescan", rel, is_dir=True))
            # a directory that arrived there unseen (its add_watch answered with another
            # node's wd, e.g. moved in and then exchanged in one batch) gets its watches
            # too, not only a rescan (found by tests/integration/test_watch_hypothesis.py)
            if self._is_dir(rel):
                node = self._place(*paths[rel], rel, out)
                if node is not None:
                    self._walk(node, rel, scan=False, out=out)

    def _claim(self, node: Node) -> None:
        """`node` was found by add_watch: whatever waited for its place stops waiting."""
        self.limbo.pop(node, None)

    def _walk(self, top: Node, rel: str, *, scan: bool, out: list[FsEvent]) -> None:
        """List `top` and below: subdirectories get watched, nodes that are no longer
        there are set aside, and with scan every file and directory found is reported
        (they may predate the watch)."""
        stack = [(top, rel)]
        while stack:
            node, cur = stack.pop()
            try:
                with reachable(self.root, cur) as full:   # deeper than PATH_MAX too
                    if not scan and self._is_leaf(full):  # checked after the watch: module doc
                        self.leaves_skipped += 1
                        for child in list(node.children.values()):
                            self._set_aside(child)
                        continue
                    with os.scandir(os.fsencode(full)) as it:
                        entries = list(it)
            except OSError as exc:
                if exc.errno not in GONE:
                    out.append(FsEvent("watch_error", cur, detail=f"cannot list: {exc.strerror}"))
                continue
            seen: set[str] | None = set() if node.children else None
            for entry in entries:
                try:  # d_type from the directory listing: no stat per file (start-up on big trees)
                    is_dir = entry.is_dir(follow_symlinks=False)
                    is_file = not is_dir and scan and entry.is_file(follow_symlinks=False)
                except OSError:
                    continue
                if not (is_dir or is_file):
                    continue
                name = os.fsdecode(entry.name)
                child = join(cur, name)
                if excluded_entry(self.excluded, child, is_dir):
                    continue
                if not is_dir:
                    out.append(FsEvent("write", child))
                    continue
                if seen is not None:
                    seen.add(name)
                sub = self._place(node, name, child, out)
                if sub is not None:
                    sub.touched = False
                    if scan:
                        out.append(FsEvent("mkdir", child, is_dir=True))
                    stack.append((sub, child))
            if seen is not None:
                for name, child in list(node.children.items()):
                    if name not in seen:
                        self._set_aside(child)

    def _set_aside(self, node: Node) -> None:
        """The tree had `node` somewhere it is not: detach it until the kernel names its
        place (a later add_watch returns its wd) or, after move_window, forget it."""
        self.tree.detach(node)
        self.limbo[node] = self._now

    def _forget(self, node: Node) -> None:
        for wd in self.tree.drop(node):
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass  # already gone (EINVAL): the kernel removed it first

    def _new_dir(self, parent: Node, name: str, rel: str, out: list[FsEvent]) -> None:
        """A directory arrived at rel: watch it, report it and everything inside."""
        node = self._place(parent, name, rel, out)
        if node is not None:
            self._scan_new(node, rel, out)

    def _scan_new(self, node: Node, rel: str, out: list[FsEvent]) -> None:
        node.touched = False
        out.append(FsEvent("mkdir", rel, is_dir=True))
        self._walk(node, rel, scan=True, out=out)

    def _find_missed(self, out: list[FsEvent]) -> None:
        """Directories whose add_watch found nothing at the path their CREATE or MOVED_TO
        gave. Something that happened before the add_watch explains each: a delete or
        rename of the directory itself (its event at the same parent drops the entry) or
        a rename of an ancestor (once handled, the directory is found at its new path).
        The events are already queued, so an entry is kept at most MISSED_FOR seconds."""
        for key, since in list(self.missed.items()):
            parent, name = key
            if self.tree.by_wd.get(parent.wd) is not parent or self._now - since > MISSED_FOR:
                del self.missed[key]
                continue
            prel = self.tree.path(parent)
            if prel is not None:
                node = self._place(parent, name, join(prel, name), out)
                if node is not None:
                    self._scan_new(node, join(prel, name), out)

    def _retry(self, out: list[FsEvent]) -> None:
        """Unwatched directories: retry those due (a success is watched, scanned and
        followed by a rescan of it) and, every rescan interval, ask to rescan the rest."""
        if not self.failed.entries:
            return
        for key in self.failed.due():
            parent, name = key
            if self.tree.by_wd.get(parent.wd) is not parent:   # its parent is gone
                self.failed.discard(key)
                continue
            prel = self.tree.path(parent)
            if prel is None:          # parent held or set aside: wait for its place
                continue
            rel = join(prel, name)
            node = self._place(parent, name, rel, out)
            if node is not None:
                out.append(FsEvent("mkdir", rel, is_dir=True))
                self._walk(node, rel, scan=True, out=out)
                out.append(FsEvent("rescan", rel, is_dir=True))
        if self.failed.rescan_due():
            for paths in self.unwatched_paths(limit=len(self.failed)):
                out.append(FsEvent("rescan", paths, is_dir=True))
