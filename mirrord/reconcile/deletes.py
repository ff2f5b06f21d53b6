"""Which extra target entries a reconcile pass may delete, and when it must delete none.

Learned from the mass-delete bugs of lsyncd, mc mirror and rclone: a pass
proposes deletes only when the whole pass is trustworthy. Nothing is deleted
when the merge did not complete (stopped, a listing failed), a source
directory could not be read, the source root is missing or was replaced during
the pass, or it holds no file while the target holds files below it (an
unmounted mount point looks empty; a fresh file system mounted by mistake holds
`lost+found/`, a boot script may re-create the tree's empty directories: the
same rule as the catch-up's), or an extra lies below a file system mounted below the
root that is gone (lost_mount_refusal, mirrord.submounts), or there are
more extras than `[reconcile] max_delete` (a count, or a percentage of the
target's entries) allows, or a mass-change alarm holds the source's deletes
(held_refusal). Right before a delete is proposed the source path
is looked at again (lstat, `wanted_at_source`): a file created meanwhile is kept;
a symlink, FIFO or device there is not (never mirrored), nor a directory where
the target holds a file (S3, which has no directories, keeps both `b` and
`b/x`: the stale object `b` was never deleted, in every pass).

The session (mirrord.reconcile.session) adds the last rule: deletes go out only
after every repair of the pass succeeded.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mirrord import journal, mountid, submounts
from mirrord.config import SourceConfig
from mirrord.errors import MirrordError
from mirrord.journal import Change
from mirrord.journal.holds import hold_reasons
from mirrord.journal.read import read_state

CHUNK = 500   # changes per emit() call


def root_identity(root: str) -> tuple[int, int, int | None] | None:
    """(st_dev, st_ino, mount ID) of the source root, None when it is missing or not a
    directory (mountid.dir_identity). The mount ID tells a tmpfs mounted anew, which shows
    the old st_dev and inode, from the one the pass began on."""
    return mountid.dir_identity(root)


def over_cap(total: int, entries: int, *, max_delete: int, max_delete_percent: float | None,
             where: str, advice: str = "check the source, then raise max_delete or use "
                                       "--no-delete") -> str | None:
    """Why deleting `total` of `entries` entries on `where` in one pass is refused by
    [reconcile] max_delete (a count, or a percentage of `entries` when
    `max_delete_percent` is set), or None. Shared by reconcile and the daemon's catch-up
    after a start or a root's return (mirrord.catchup)."""
    if max_delete_percent is not None:
        allowed = int(max_delete_percent / 100 * entries)
        if total > allowed:
            share = 100 * total / max(1, entries)
            return (f"refusing to delete {total} of {entries} entries "
                    f"({share:.1f}%) on {where}: more than [reconcile] max_delete = "
                    f"{max_delete_percent:g}%; nothing deleted this pass ({advice})")
        return None
    if total > max_delete:
        return (f"refusing to delete {total} entries on {where}: more than [reconcile] "
                f"max_delete = {max_delete}; nothing deleted this pass ({advice})")
    return None


def held_refusal(db_path: Path, source: str, where: str, total: int) -> str | None:
    """Why no delete may be proposed while `source`'s deletes are held (a mass-change alarm,
    or the daemon's comparison over [reconcile] max_delete: the hold's reason says which)
    (the journal's `holds` table, mirrord.journal.holds; `where` names the target), or None.
    Proposed, they were parked in the journal, and the pass waited for them for ever (the
    command) or until its timeout (the daemon's passes). An unreadable database refuses too."""
    if not Path(db_path).exists():
        return None
    try:
        conn = journal.connect(Path(db_path), readonly=True)
        try:
            held = hold_reasons(conn)
        finally:
            conn.close()
    except (MirrordError, sqlite3.Error) as exc:
        return f"cannot tell whether deletes are held ({exc}): not deleting {total} extra " \
               f"entries on {where}"
    if source not in held:
        return None
    why = held[source] or "no reason recorded"   # an alarm, or a comparison over max_delete
    return (f"deletes of source {source!r} are held ({why}; mirrord resume-deletes lets "
            f"them go): not deleting {total} extra entries on {where}")


def lost_mount_refusal(db_path: Path, source: SourceConfig, paths: list[str],
                       where: str, total: int) -> str | None:
    """Why no delete may be proposed because one of `paths` (extras, relative to the
    source root) lies below a file system mounted below the root that is gone, or empty
    (mirrord.submounts: the mount points remembered in the state database and those
    mounted now), or None. The pass refuses all its deletes then, as for an unmounted or
    empty root: an unmounted sub-mount looks like a user who emptied it. An unreadable
    database knows no mount point but those mounted now."""
    row = None
    if Path(db_path).exists():
        try:
            conn = journal.connect(Path(db_path), readonly=True)
            try:
                row = read_state(conn, submounts.STATE_PREFIX + source.name)
            finally:
                conn.close()
        except (MirrordError, sqlite3.Error):
            row = None
    mounts = submounts.SubMounts(source.name, str(source.path), submounts.remembered(row),
                                 excluded=lambda rel: source.excluded(rel, is_dir=True))
    mounts.refresh()
    for path in paths:
        why = mounts.refusal(path, scan=True)
        if why is not None:
            return f"{why}: not deleting {total} extra entries on {where}"
    return None


def wanted_at_source(root: str, path: str, *, is_dir: bool) -> bool:
    """Whether what the source holds at `path` now (lstat) means an extra target entry
    there must be kept: a regular file where the entry is a file (created during the
    pass: its put replaces it), or a directory where the entry is a directory too.
    Not a file where the entry is a directory: removing the directory and what lies below
    it is a delete like any other, counted, capped and held as one (the file's put waits
    for it: mirrord.type_swaps; before, the pass counted it as "reappeared", deleted 0,
    and the put removed the tree unannounced). Not a directory where the entry is a file,
    nor a symlink, FIFO, socket or device (never mirrored: the shipper's look at the
    source, mirrord.observe, takes them for absent, so the delete it runs is what the live
    stream would do)."""
    try:
        mode = os.lstat(os.path.join(root, path)).st_mode
    except OSError:   # gone, or a parent is no longer a directory
        return False
    if stat.S_ISREG(mode):
        return not is_dir
    return stat.S_ISDIR(mode) and is_dir


@dataclass
class Extra:
    path: str
    is_dir: bool
    count: int = 1   # entries it stands for (a directory: itself and everything below)


class DeletePlan:
    """The extras one pass found, and the rules that decide whether they go.

    `delete` off: extras are only counted (`kept_extra`). `max_delete` (entries) or
    `max_delete_percent` (of the target's entries, when set) caps a pass."""

    def __init__(self, *, delete: bool, max_delete: int, max_delete_percent: float | None):
        self.delete = delete
        self.max_delete, self.max_delete_percent = max_delete, max_delete_percent
        self.extras: list[Extra] = []
        self.total = 0
        self.files = 0   # extra entries that are files (a directory's count includes them)
        self._dir: bytes | None = None

    def add(self, key: bytes, path: str, is_dir: bool) -> None:
        """One extra target entry, in listing order (`key`: mirrord.treewalk.entry_key)."""
        self.total += 1
        self.files += not is_dir
        if self._dir is not None and key.startswith(self._dir):
            if self.extras:
                self.extras[-1].count += 1  # removed with its extra parent directory
            return
        self._dir = key if is_dir else None
        if self.max_delete_percent is None and self.total > self.max_delete:
            return  # over the cap: the deletes will be refused; stop remembering them
        self.extras.append(Extra(path, is_dir))

    def refusal(self, *, where: str, complete: bool, unreadable: list[tuple[str, str]],
                root: str, identity: tuple[int, int, int | None] | None, source_files: int,
                target_entries: int) -> str | None:
        """Why nothing may be deleted on this pass (one sentence naming `where`), or None.
        `source_files`: regular files the source walk found (directories do not count: an
        unmounted root may still hold some)."""
        total = self.total
        if not complete:
            return f"the pass did not complete: not deleting {total} extra entries on {where}"
        if unreadable:
            first, why = unreadable[0]
            return (f"{len(unreadable)} source directories could not be read (first: "
                    f"{first!r}: {why}): not deleting {total} extra entries on {where} this pass")
        if identity is None or root_identity(root) != identity:
            return (f"source root {root} changed during the pass (unmounted or replaced?): "
                    f"not deleting {total} extra entries on {where}")
        if source_files == 0 and self.files:
            return (f"source root {root} is empty (unmounted?): no file, while {where} holds "
                    f"{total} extra entries: not deleting anything")
        return self._over_cap(where, target_entries)

    def _over_cap(self, where: str, target_entries: int) -> str | None:
        return over_cap(self.total, target_entries, max_delete=self.max_delete,
                        max_delete_percent=self.max_delete_percent, where=where)

    def described(self) -> list[str]:
        """The extras remembered (up to the cap: see add), as a plan prints them: the path,
        '/' after a directory (which stands for everything below it)."""
        return [e.path + ("/" if e.is_dir else "") for e in self.extras]

    def propose(self, *, source: str, target: str, root: str,
                emit: Callable[[list[Change]], None]) -> tuple[int, int]:
        """Emit the deletes (CHUNK at a time), skipping paths the source holds again
        (wanted_at_source); returns (entries deleted, entries that reappeared)."""
        deleted = reappeared = 0
        changes = []
        for extra in self.extras:
            if wanted_at_source(root, extra.path, is_dir=extra.is_dir):
                reappeared += extra.count   # created at the source during the pass: keep
                continue
            deleted += extra.count
            changes.append(Change(source, extra.path, "delete", tree=extra.is_dir,
                                  time=time.time(), targets=(target,), repair=True))
        for i in range(0, len(changes), CHUNK):
            emit(changes[i:i + CHUNK])
        return deleted, reappeared
