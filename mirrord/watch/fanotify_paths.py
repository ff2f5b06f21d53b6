"""Directory file handle -> path below the source root, cached: the fanotify watcher's map.

A filesystem mark reports every change on the file system, each naming its
directory by file handle. `DirPaths.rel()` answers "which directory below the
root is this, or is it outside?" with one dict lookup for a handle seen
before; a new handle costs open_by_handle_at(2) and a readlink of
/proc/self/fd/N (about 15-20 us). Handles of directories outside the root, of
excluded directories and of deleted ones are cached as None, so their events
are dropped as cheaply as those of the tree's own.

Invalidation: a directory renamed anywhere that touches the tree changes the
path of every cached directory below it (or whether it is inside at all), so
the owner calls clear(); entries are re-learned on their next event. The root
and the directories above it keep their entries: renaming one of them is
"lost", not a path change (`is_root_or_above`).
"""

from __future__ import annotations

import logging
import errno
import os
from typing import Callable

from mirrord.exclude import excluded_entry
from mirrord.watch import fanotify_sys as S

log = logging.getLogger("mirrord.watch")
_MISS = object()


class DirPaths:
    """The cache for one root. Build with the root's absolute path and its excluded()
    predicate, then call learn_root() once the root exists; raises OSError from
    learn_root() when the root's file handle cannot be had."""

    def __init__(self, root: str, excluded: Callable[[str], bool], *, max_entries: int):
        self.root = root
        self.excluded = excluded
        self.max_entries = max_entries
        self._prefix = root.rstrip("/") + "/"
        self.dirs: dict[bytes, str | None] = {}     # handle -> rel path; None: outside
        self.chain: dict[bytes, str] = {}           # the root's and its ancestors' handles
        self.dev: int | None = None
        self.root_ino: int | None = None
        self.lookups = 0        # resolutions through open_by_handle_at (cache misses)
        self.gone: set[bytes] = set()   # handles of directories that no longer existed
        # paths learned by lookup (today's, not the event's) -> the owner's read
        # generation `gen` at the time; the owner forgets them once every event queued
        # before that lookup has been read (forget_resolved_upto)
        self.resolved: dict[str, int] = {}
        self.gen = 0
        self.clears = 0

    def learn_root(self) -> os.stat_result:
        """Record the handles of the root and of every directory above it on the same
        file system (another file system's handle could equal one of ours); returns
        the root's stat."""
        self.chain = {S.name_to_handle(self.root): self.root}
        st = os.stat(self.root)
        self.dev, path = st.st_dev, self.root
        self.root_ino = st.st_ino
        while path != "/":
            path = os.path.dirname(path)
            try:
                if os.stat(path).st_dev == self.dev:
                    self.chain[S.name_to_handle(path)] = path
            except OSError:
                pass
        self.clear()
        self.clears = 0
        return st

    def is_root_or_above(self, handle: bytes | None) -> bool:
        return handle in self.chain

    def rel(self, handle: bytes) -> str | None:
        """The directory's path relative to the root ("" for the root), or None when it
        is outside the root, excluded or gone."""
        rel = self.dirs.get(handle, _MISS)
        if rel is not _MISS:
            return rel  # type: ignore[return-value]
        self.lookups += 1
        try:
            path = self._resolve(handle)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                log.warning("cannot resolve a directory handle: %s", exc.strerror)
                return None
            path = self._climb(handle)   # deeper than PATH_MAX: d_path cannot name it
        if path is None:
            self.gone.add(handle)   # deleted, or replaced by a rename over it, before this read
        rel = self._relative(path)
        if rel is not None:
            self.resolved[rel] = self.gen
        self.remember(handle, rel)
        return rel

    def resolved_at_or_below(self, top: str) -> bool:
        """True when a lookup of the open window gave `top` or a path below it."""
        return any(p == top or p.startswith(top + "/") for p in self.resolved)

    def forget_resolved_upto(self, gen: int | None) -> None:
        """Forget lookups made in generations up to `gen` (None: all of them)."""
        self.resolved = {} if gen is None else {
            p: g for p, g in self.resolved.items() if g > gen}

    def remember(self, handle: bytes, rel: str | None) -> None:
        if len(self.dirs) >= self.max_entries:
            self.clear()
        self.dirs[handle] = rel

    def vanished(self, handle: bytes | None) -> bool:
        """True when `handle` named a directory that was gone when it was looked up: its
        path is unknown, and it may have been below the root."""
        return handle in self.gone

    def forget(self, handle: bytes | None) -> None:
        self.dirs.pop(handle, None)  # type: ignore[arg-type]

    def forget_inside(self) -> None:
        """Drop every cached path below the root, keep what is known to be outside: for a
        directory that left a place that is gone by now (it may have been in the tree)
        for another place outside it, where its cached descendants cannot follow."""
        self.dirs = {h: p for h, p in self.dirs.items() if p is None}
        self.dirs.update({h: ("" if p == self.root else None) for h, p in self.chain.items()})
        self.gone = set()

    def clear(self) -> None:
        self.clears += 1
        self.gone = set()
        self.dirs = {h: ("" if p == self.root else None) for h, p in self.chain.items()}

    def _resolve(self, handle: bytes) -> str | None:
        """Through an fd on the root opened for this lookup only: an fd held open would
        keep the source's file system from being unmounted (EBUSY)."""
        try:
            mount_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:  # a handle means something only on its own file system (root unmounted: another)
            if os.fstat(mount_fd).st_dev != self.dev:
                return None
            return S.handle_path(mount_fd, handle)
        finally:
            os.close(mount_fd)

    def _climb(self, handle: bytes) -> str | None:
        """The absolute path of the directory `handle` names, built by climbing from it
        through '..' and finding each name in its parent (by inode), for a directory
        whose path is longer than PATH_MAX (4,096 bytes): readlink of /proc/self/fd
        fails there with ENAMETOOLONG, and every event below it was dropped as outside
        the root, status in_sync (a breaker; inotify names such a directory from its
        parents' names). None when it is gone, outside the root, or cannot be climbed."""
        try:
            mount_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        names: list[str] = []
        cur = -1
        try:
            cur = S.open_by_handle(mount_fd, handle, os.O_RDONLY | os.O_DIRECTORY)
            while True:
                st = os.fstat(cur)
                if (st.st_dev, st.st_ino) == (self.dev, self.root_ino):
                    return os.path.join(self.root, *reversed(names)) if names else self.root
                parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur)
                os.close(cur)
                cur = parent
                if os.fstat(cur).st_ino == st.st_ino:   # the file system's root: outside
                    return None
                with os.scandir(cur) as entries:
                    name = next((e.name for e in entries if e.inode() == st.st_ino), None)
                if name is None:   # unlinked meanwhile
                    return None
                names.append(name)
        except OSError:
            return None
        finally:
            if cur >= 0:
                os.close(cur)
            os.close(mount_fd)

    def _relative(self, path: str | None) -> str | None:
        if path is None:
            return None
        if path == self.root:
            return ""
        if not path.startswith(self._prefix):
            return None
        rel = path[len(self._prefix):]
        return None if excluded_entry(self.excluded, rel, True) else rel   # directories only
