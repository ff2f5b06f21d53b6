"""The other names of a hard-linked file, so a write through one name reaches them all.

inotify(7) and fanotify(7) name only the link a writer used: `echo x >> a` where `a`
and `b` are one inode reports `a` alone, and every target kept the old bytes at `b`
until a reconcile found its mtime different. Targets hold no links (each name is a
copy), so each name must be sent again.

`LinkIndex` remembers the names (source, path) seen for each inode with more than one
link (st_nlink > 1), across every source of the daemon (a link between two sources'
roots reaches both): from every catch-up walk (the one at start sees links made while
the daemon was stopped) and from every write or attribute change the live stream
records (`ln a b` reports `b`; a later write through `a` then finds `b`; the name `a`,
one link until then and never remembered, is found by one walk of the sources that a
change finding more links than names asks for: take_walk). Only such
files are kept, so memory follows the number of multi-link files, not the tree; past
MAX_NAMES it stops learning (one warning) and those writes wait for a reconcile as
before. A name is a hint, checked before it is used: `others` returns only names
that still are the same inode (lstat), and forgets the rest (deleted, renamed, reused).
Thread-safe: catch-up walks learn on the scanner's thread, the main loop reads.
Not covered (README): a write through an excluded name, or through a name outside
every source's root (its events never reach the daemon); `elsewhere()` counts the files
whose link count is more than the names seen, which the daemon says once its start
walks are done.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import threading

log = logging.getLogger("mirrord.hardlinks")

MAX_NAMES = 1_000_000   # names remembered in all (~200 bytes each)


Name = tuple[str, str]   # (source name, path relative to its root)


class LinkIndex:
    """Names of multi-link regular files below the sources' roots (`roots`: source name
    -> root path)."""

    def __init__(self, roots: dict[str, str], *, max_names: int = MAX_NAMES):
        self.roots = dict(roots)
        self.max_names = max_names
        self._names: dict[tuple[int, int], set[Name]] = {}
        self._nlink: dict[tuple[int, int], int] = {}   # st_nlink when last learnt
        self._count = 0
        self._full_logged = False
        self._lock = threading.Lock()
        # inode -> st_nlink when a walk was asked for its unseen names (want_walk): asked
        # again only when its link count changes, so a name outside every root (never
        # found) costs one walk, not one per write
        self._asked: dict[tuple[int, int], int] = {}
        self._walk_wanted = False

    def learn(self, source: str, rel: str, st: os.stat_result) -> None:
        """Remember `rel` (a path relative to `source`'s root) as a name of the inode `st`
        describes, when it is a regular file with more than one link."""
        if st.st_nlink < 2 or not stat_mod.S_ISREG(st.st_mode):
            return
        with self._lock:
            names = self._names.setdefault((st.st_dev, st.st_ino), set())
            self._nlink[(st.st_dev, st.st_ino)] = st.st_nlink
            if (source, rel) in names:
                return
            if self._count >= self.max_names:
                if not self._full_logged:
                    self._full_logged = True
                    log.warning("more than %d hard-linked names: a write through one name "
                                "of the others reaches the rest by reconcile only",
                                self.max_names)
                return
            names.add((source, rel))
            self._count += 1

    def _stat(self, name: Name) -> os.stat_result | None:
        root = self.roots.get(name[0])
        if root is None:
            return None
        try:
            return os.lstat(os.path.join(root, name[1]))
        except OSError:
            return None

    def others(self, source: str, rel: str) -> list[Name]:
        """The other names (source, path) of the file at `rel` of `source` (a write or
        attribute change was just read there), each checked to be the same inode now;
        learns `rel` too. [] when it is not a multi-link regular file (or is gone): the
        common case, one lstat."""
        st = self._stat((source, rel))
        if st is None or st.st_nlink < 2 or not stat_mod.S_ISREG(st.st_mode):
            return []
        self.learn(source, rel, st)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            names = sorted(self._names.get(key, ()))
        out, stale = [], []
        for name in names:
            if name == (source, rel):
                continue
            other = self._stat(name)
            if other is not None and (other.st_dev, other.st_ino) == key:
                out.append(name)
            else:
                stale.append(name)
        with self._lock:
            if stale:
                kept = self._names.get(key)
                for name in stale:
                    if kept is not None and name in kept:
                        kept.discard(name)
                        self._count -= 1
            if len(out) + 1 < st.st_nlink and self._asked.get(key) != st.st_nlink:
                # a name not seen yet: `ln a b` reports b alone, and a (one link until
                # then) was never remembered, so a write through b never reached a (a
                # breaker: every target stale, status in_sync). Only a walk finds it.
                self._asked[key] = st.st_nlink
                self._walk_wanted = True
        return out

    def learn_path(self, source: str, rel: str) -> None:
        """Learn `rel` of `source` from one lstat (a file renamed into place: `ln a .b.part;
        mv .b.part b`, as dedup tools link, had its create read after the rename, when
        .b.part was gone, so b was never remembered)."""
        st = self._stat((source, rel))
        if st is not None:
            self.learn(source, rel, st)

    def take_walk(self) -> bool:
        """Whether a change read since the last call found a file with more links than
        names seen (others): the caller walks the sources once, which finds them, and sends
        what changed through them (the walk compares size, mtime and mode). Resets."""
        with self._lock:
            wanted, self._walk_wanted = self._walk_wanted, False
        return wanted

    def moved(self, source: str, src: str, dst: str) -> None:
        """A rename read by the watcher in `source`: names at or below `src` are at `dst`
        now (a file renamed, or a directory holding a linked name: without this the name
        was checked, found gone and forgotten, and a write through another name never
        reached the moved one). One pass over the remembered names; nothing to do without
        any (the common case)."""
        if not self._count:
            return
        below = src + "/"
        with self._lock:
            for names in self._names.values():
                hit = [n for n in names if n[0] == source and (n[1] == src or n[1].startswith(below))]
                for name in hit:
                    names.discard(name)
                    names.add((source, dst + name[1][len(src):]))

    def elsewhere(self, limit: int = 3) -> tuple[int, list[str]]:
        """How many remembered files have more links than names seen below the roots (the
        rest are outside every source's root, or excluded: a write through them reaches no
        target until a reconcile), and up to `limit` of their names, "source:path"."""
        with self._lock:
            short = sorted(min(names) for key, names in self._names.items()
                           if names and len(names) < self._nlink.get(key, 0))
        return len(short), [f"{s}:{p}" for s, p in short[:limit]]

    def __len__(self) -> int:
        return self._count
