"""File systems mounted below a source root ("sub-mounts"), remembered so that one that
went away is never taken for the user deleting the files it held.

An NFS export or a tmpfs mounted at /srv/uploads/site42 below the source root
/srv/uploads looks, once unmounted, like a user who emptied site42: the mount point
shows as the empty directory beneath it. The root has its own guard
(mirrord.observe.SourceGuard, the catch-up's empty-root rule); this is the same
protection one level down. `SubMounts` remembers each mount point below one root with
the st_dev it had (kept in the state database, so a mount that went away while the
daemon was stopped is still known at start), and answers for a path being deleted
whether it lies below a mount point that is lost: its directory's st_dev is no
longer the one remembered and it holds nothing. Such a delete is refused (retried)
until the mount is back; then the files are there again and the delete finds them.

A remembered mount point is forgotten when its directory is gone (the operator
retired the mount and removed the mount point) or, no longer mounted, holds entries
(the data moved in place); deletes below it then go ahead. A point that is mounted
again with another file system (a new st_dev) and holds entries is remembered with
its new st_dev. A remembered point mounted anew empty (a new mount ID, mirrord.mountid:
a tmpfs mounted again shows the st_dev it had) is held lost until it holds entries: the
changes queued before it came must not go out as deletes. Only deletes and tree removals pay for the check, and only for a
source with remembered mount points (a dict lookup otherwise).

`MountTable` tells cheaply when the kernel's mount table changed: /proc/self/mounts
is pollable, POLLPRI after any mount or unmount (proc(5)).
"""

from __future__ import annotations

import os
import select
import stat as stat_mod
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mirrord import mountid
from mirrord.watch.fanotify_probe import mounts_below as mount_paths_below

MOUNTINFO = "/proc/self/mountinfo"
if TYPE_CHECKING:
    from mirrord.config import SourceConfig

STATE_PREFIX = "submounts:"   # + source name: the journal state row of remembered points


def mounts_below(root: str, mountinfo: str = MOUNTINFO) -> dict[str, int]:
    """Mount points strictly below `root` as {relative path: st_dev of what is mounted
    there}, from proc(5)'s mountinfo; a point that cannot be stat'ed is left out (a
    hung NFS server answers EIO later, not here). Never raises."""
    real = os.path.realpath(root)
    out: dict[str, int] = {}
    for point in mount_paths_below(real, mountinfo):
        try:
            out[os.path.relpath(point, real)] = os.stat(point).st_dev
        except OSError:
            continue
    return out


class MountTable:
    """A pollable descriptor on /proc/self/mounts: `changed()` is True once after each
    mount or unmount in this mount namespace (the kernel re-arms it at each poll)."""

    def __init__(self, path: str = "/proc/self/mounts"):
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI | select.POLLERR)

    def changed(self) -> bool:
        """Whether the mount table changed since the last call (or the open). One poll(2)
        with no wait; never raises."""
        try:
            return bool(self._poll.poll(0))
        except OSError:
            return True

    def close(self) -> None:
        os.close(self._fd)


class SubMounts:
    """The remembered mount points below one source root, and the delete rule.

    `remembered`: {relative mount point: st_dev} from the state database (None: none).
    `excluded(rel)`: True for a mount point the source's excludes leave out (a tmpfs
    cache nobody mirrors): not remembered, so its unmount degrades nothing.
    Thread-safe: workers call refusal(), the main thread refresh() and snapshot()."""

    def __init__(self, source: str, root: str, remembered: dict[str, int] | None = None, *,
                 mountinfo: str = MOUNTINFO, excluded: Callable[[str], bool] | None = None):
        self.source = source
        self.root = root              # as given: a symlink switched is followed (mounts_below resolves)
        self.mountinfo = mountinfo
        self.excluded = excluded or (lambda rel: False)
        self._known: dict[str, int] = {rel: dev for rel, dev in (remembered or {}).items()
                                       if not self.excluded(rel)}
        self._mounted: set[str] = set()   # the points in the mount table at the last refresh
        self._mount_ids: dict[str, int | None] = {}   # their mountid.mount_id then
        self._held: set[str] = set()      # remembered points mounted anew empty (refresh)
        self._refreshed = False           # whether _mounted was read (status alone never does)
        self.reported: set[str] = set()   # lost points already logged (mirrord.daemon_mounts)
        self.owed: set[str] = set()       # points whose scan deletes were refused as empty
        self._lock = threading.Lock()

    def refresh(self) -> list[str]:
        """Merge the mount table's points below the root into what is remembered; returns
        the points mounted since the last refresh (new, back, or another file system: a
        tmpfs mounted again may get the st_dev it had, the kernel reuses anonymous device
        numbers), sorted, whose contents must be watched and compared again. Forgets
        retired points (module doc). Never raises."""
        now = {rel: dev for rel, dev in mounts_below(self.root, self.mountinfo).items()
               if not self.excluded(rel)}
        ids = {rel: _mount_id(os.path.join(self.root, rel)) for rel in now}
        with self._lock:
            changed = sorted(rel for rel, dev in now.items()
                             if rel not in self._mounted or self._known.get(rel) != dev
                             or self._mount_ids.get(rel, ids[rel]) != ids[rel])
            for rel in changed:   # remembered, and mounted again empty: held until it holds files
                if rel in self._known and _empty(os.path.join(self.root, rel)) is not False:
                    self._held.add(rel)
            self._mounted, self._mount_ids = set(now), ids
            self._refreshed = True
            self._known.update(now)
            for rel in [r for r in self._known if r not in now]:
                if self._state(rel, self._known[rel]) == "retired":
                    del self._known[rel]
        return changed

    def mounted(self) -> set[str]:
        """The points in the mount table at the last refresh (relative paths)."""
        with self._lock:
            return set(self._mounted)

    def snapshot(self) -> dict[str, int]:
        """What is remembered now, for the state database."""
        with self._lock:
            return dict(self._known)

    def lost(self) -> list[str]:
        """Remembered points that are lost now (sorted relative paths)."""
        with self._lock:
            return sorted(r for r, dev in self._known.items() if self._state(r, dev) == "lost")

    def refusal(self, rel: str, *, scan: bool = False) -> str | None:
        """Why a delete of `rel` (relative to the root) must wait, or None when it may go.
        Refused when `rel` is a remembered mount point or below one that is lost. `scan`
        (a catch-up or reconcile proposing deletes from a walk): also while the point holds
        nothing at all, whatever is mounted there (the root's rule one level down: a fresh
        file system mounted by mistake, or a tmpfs mounted again, which may get the
        st_dev it had, since the kernel reuses anonymous device numbers). The live
        stream's deletes are not held by that: the user emptying a mounted site is
        shipped."""
        if not self._known:   # the common case: no sub-mount, no cost
            return None
        with self._lock:
            for point, dev in list(self._known.items()):
                if rel != point and not rel.startswith(point + "/"):
                    continue
                state = self._state(point, dev)
                full = os.path.join(self.root, point)
                if state == "lost":
                    return (f"source {self.source}: {full} is a mount point below the source "
                            f"root whose file system is not mounted, or is mounted anew "
                            f"empty (mounted by mistake?): "
                            f"not deleting {rel!r} until it is back")
                if state == "retired":
                    del self._known[point]
                elif scan and _empty(full) is not False:
                    self.owed.add(point)   # compared again once it holds something
                    return (f"source {self.source}: the file system mounted at {full} below "
                            f"the source root is empty (mounted by mistake?): not deleting "
                            f"{rel!r} by a scan")
        return None

    def take_owed(self) -> list[str]:
        """The points whose scan deletes were refused because they held nothing, that hold
        something now: each must be compared again (sorted relative paths; forgotten once
        returned). A file system mounted empty over a directory of shipped files, then
        written to, was compared only while empty: the hidden files stayed on every
        target under inotify, status in_sync (a breaker)."""
        with self._lock:
            ready = sorted(p for p in self.owed
                           if _empty(os.path.join(self.root, p)) is False)
            self.owed.difference_update(ready)
        return ready

    def _state(self, rel: str, dev: int) -> str:
        """mounted | lost | retired for the point `rel` remembered with `dev` (lock held)."""
        full = os.path.join(self.root, rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return "retired"          # the operator removed the mount point
        except OSError:
            return "lost"             # cannot tell (EIO from a hung NFS): never a delete
        if not stat_mod.S_ISDIR(st.st_mode):
            return "retired"
        if rel in self._held:   # mounted anew empty: as lost until something is written there
            if _empty(full) is not False:
                return "lost"
            self._held.discard(rel)
        # a bind mount of the root's own file system keeps its st_dev once unmounted: the
        # mount table tells then (once it was read: refresh). A tmpfs unmounted and another
        # mounted at once shows the same st_dev: the mount ID tells then (mirrord.mountid)
        if st.st_dev == dev and (rel in self._mounted or not self._refreshed):
            learnt = self._mount_ids.get(rel)
            if learnt is None or _mount_id(full) == learnt:
                return "mounted"
        empty = _empty(full)
        if empty is None or empty:
            return "lost"
        if _is_mount(full, st):       # mounted again with another file system, not empty
            self._known[rel] = st.st_dev
            return "mounted"
        return "retired"              # data moved in place of the mount


def _empty(full: str) -> bool | None:
    """Whether the directory `full` holds no entry; None when it cannot be read."""
    try:
        with os.scandir(full) as it:
            return not any(True for _ in it)
    except OSError:
        return None


def _mount_id(full: str) -> int | None:
    """mountid.mount_id of `full`; None when it cannot be told (or looked up)."""
    try:
        return mountid.mount_id(full)
    except OSError:
        return None


def _is_mount(full: str, st: os.stat_result) -> bool:
    """Whether `full` is a mount point: its st_dev differs from its parent's (the rule
    os.path.ismount uses; a bind mount of the same file system is not seen)."""
    try:
        return os.lstat(os.path.dirname(full)).st_dev != st.st_dev
    except OSError:
        return False


def load(journal, source: SourceConfig) -> SubMounts:
    """The SubMounts of `source` from the journal's state row (journal None: nothing
    remembered), merged with the mount table now. Raises what Journal.get_state raises
    (sqlite3.Error)."""
    row = journal.get_state(STATE_PREFIX + source.name) if journal is not None else None
    mounts = SubMounts(source.name, str(source.path), remembered(row),
                       excluded=lambda rel: source.excluded(rel, is_dir=True))
    mounts.refresh()
    return mounts


def remembered(row: object) -> dict[str, int]:
    """A state row's {relative mount point: st_dev} (anything else: none)."""
    if not isinstance(row, dict):
        return {}
    return {str(k): int(v) for k, v in row.items() if isinstance(v, int)}


def save(journal, mounts: SubMounts) -> None:
    """Store what `mounts` remembers in the journal's state row (main thread only)."""
    journal.set_state(STATE_PREFIX + mounts.source, mounts.snapshot())
