"""Whether a directory target's root is the mirror: what an unmounted mount point looks like.

An NFS (or any) file system not mounted leaves its mount point, an empty directory, where
the mirror was. Two readers need to tell it from a mirror:

- `holds_nothing(root)`: the read-only open's `Target.root_empty` (failover, `/ready`,
  trash, undelete). Nothing counts but mirrord's own `.mirrord/` without a heartbeat
  (an earlier command may have made it in the mount point: a breaker's `undelete` did,
  and the old `/ready` left `.mirrord/tmp/` and a lock file) and `lost+found` (mkfs
  makes it: a new, empty file system mounted in place of the mirror's). A root that
  cannot be listed (mode 0711 to the user running failover) is not called empty: the
  heartbeat can still be read through it.
- `unmarked(root)`: the read-only open's `Target.root_unmarked`: a root holding entries
  but no `.mirrord/` at all, which every writable open makes. Operators leave a marker
  file (`NOT_MOUNTED`) in mount points; it made the bare mount point look like a mirror
  whose primary had gone silent, and failover went ahead onto it with a warning.
- `RootIdentity`: the daemon's writes (mirrord.targets.local): the root's device, inode
  and mount ID (mirrord.mountid), learnt at open and compared before every change, so
  that nothing is written into the mount point left when the target's file system goes
  away while the daemon runs (a breaker's daemon went on writing files and a fresh
  heartbeat there, and status said in_sync: failover on the mirror host then saw a
  current mirror holding 1 file of 101). The same from the start: a root found empty by
  the open while the journal records paths shipped to it (`await_content`) gets nothing
  until it holds something again.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod

from mirrord import mountid
from mirrord.errors import RetryableError
from mirrord.logsetup import kv
from mirrord.targets.paths import META_DIR

log = logging.getLogger("mirrord.targets")

HEARTBEAT = "heartbeat.json"   # mirrord.heartbeat.NAME (not imported: targets come first)
_NOT_CONTENT = {META_DIR, "lost+found"}


def holds_nothing(root: str | bytes) -> bool:
    """True when the directory `root` holds no entry but `lost+found` and a `.mirrord/`
    without a heartbeat in it; False when it holds anything else, or cannot be listed."""
    try:
        with os.scandir(root) as entries:
            names = [os.fsdecode(e.name) for e in entries]
    except OSError:
        return False   # cannot tell (EACCES on a 0711 root): the heartbeat read decides
    if any(name not in _NOT_CONTENT for name in names):
        return False
    if META_DIR in names:
        return not os.path.lexists(os.path.join(os.fsdecode(root), META_DIR, HEARTBEAT))
    return True


def unmarked(root: str | bytes) -> bool:
    """True when `root` has no `.mirrord/` directory (a symlink there does not count),
    which every writable open makes: mirrord never wrote there. With holds_nothing False
    that is a marker file (`NOT_MOUNTED`) in a bare mount point, not a mirror."""
    try:
        return not stat_mod.S_ISDIR(os.lstat(os.path.join(os.fsdecode(root), META_DIR)).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False   # cannot tell (EACCES): the heartbeat read decides


class RootIdentity:
    """The identity of a writable target's root (`path`, resolved), learnt by learn() at
    open and compared by check() before each change. Thread-safe enough: a worker that
    takes a new identity races only with another taking the same one."""

    def __init__(self, describe: str):
        self.describe = describe
        self.path: str | None = None
        self.seen: tuple[int, int, int | None] | None = None
        self.awaiting: str | None = None   # why nothing is written until the root holds content

    def learn(self, path: str) -> None:
        """Take `path`'s identity now (after open made the root and `.mirrord/`)."""
        self.path, self.seen = path, mountid.dir_identity(path)

    def check(self) -> None:
        """Nothing when the root is the directory learnt, or another that holds mirrord's
        `.mirrord/` (the same mirror mounted again: taken as the root from now on, one INFO
        line). Raises RetryableError otherwise (the root gone, or a directory without
        `.mirrord/` in its place): nothing may be written there until the mirror is back.
        Nothing before learn() (a target never opened for writing)."""
        if self.path is None or self.seen is None:
            return
        if self.awaiting is not None:
            self._await()
            return
        now = mountid.dir_identity(self.path)
        if now == self.seen:
            return
        meta = os.path.join(self.path, META_DIR)
        try:
            ours = stat_mod.S_ISDIR(os.lstat(meta).st_mode)
        except OSError:
            ours = False
        if now is not None and ours:
            self.seen = now
            log.info(kv(msg="target root mounted again; writing there", target=self.describe,
                        path=self.path))
            return
        raise RetryableError(f"{self.describe}: the target root {self.path} is no longer the "
                             f"directory opened and holds no {META_DIR}/ (its file system "
                             f"unmounted, or another mounted over it?): nothing is written "
                             f"there until it is back")

    def await_content(self, why: str) -> None:
        """From now on check() raises RetryableError(`why`) while the root holds nothing
        (holds_nothing: one listing of the root per change, only while waiting); once it
        holds something (its file system mounted, a reconcile with the daemon stopped
        filled it) the root is taken as it stands, one INFO line."""
        self.awaiting = why
        log.error(kv(msg="target root holds nothing while paths shipped to it are recorded; "
                         "nothing is written there until it holds the mirror again",
                     target=self.describe, path=self.path))

    def _await(self) -> None:
        if self.path is None or holds_nothing(self.path) or not os.path.isdir(self.path):
            raise RetryableError(str(self.awaiting))
        self.awaiting = None
        self.seen = mountid.dir_identity(self.path)
        log.info(kv(msg="target root holds the mirror again; writing there",
                    target=self.describe, path=self.path))
