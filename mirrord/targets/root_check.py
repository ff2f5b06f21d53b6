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
import secrets
import stat as stat_mod

from mirrord import mountid
from mirrord.errors import RetryableError
from mirrord.logsetup import kv
from mirrord.targets.paths import META_DIR

log = logging.getLogger("mirrord.targets")

HEARTBEAT = "heartbeat.json"   # mirrord.heartbeat.NAME (not imported: targets come first)
WITNESS = "open-"              # an open's witness in .mirrord/ (RootIdentity.leave_witness)
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
        self.witness: str | None = None    # this open's file in .mirrord/ (leave_witness)

    def leave_witness(self) -> None:
        """Write this open's witness, `.mirrord/open-<random token>` (the open made
        `.mirrord/` real; drop_witness takes it back from a root that may be a bare mount
        point): a root in the learnt
        root's place is taken only when it holds this very file (check), not any
        `.mirrord/`. An earlier open left one in a bare mount point (the mount failed at
        boot, a reconcile ran there), and it opened the way for good (a breaker). Raises
        OSError."""
        name = WITNESS + secrets.token_hex(8)
        fd = os.open(os.path.join(str(self.path), META_DIR, name),
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
        self.witness = name

    def drop_witness(self) -> None:
        """Remove this open's witness (await_content: the open found the root empty while
        paths shipped to it are recorded, so it may be a bare mount point)."""
        if self.witness is not None:
            try:
                os.unlink(os.path.join(str(self.path), META_DIR, self.witness))
            except OSError:
                pass
            self.witness = None

    def sweep_witnesses(self) -> None:
        """Remove the witnesses of earlier opens (under the target's open lock: no other
        process has it open)."""
        meta = os.path.join(str(self.path), META_DIR)
        with os.scandir(meta) as entries:
            old = [e.name for e in entries if e.name.startswith(WITNESS) and e.name != self.witness]
        for name in old:
            try:
                os.unlink(os.path.join(meta, name))
            except FileNotFoundError:
                pass

    def learn(self, path: str) -> None:
        """Take `path`'s identity now (after open made the root and `.mirrord/`)."""
        self.path, self.seen, self.witness = path, mountid.dir_identity(path), None

    def check(self) -> None:
        """Nothing when the root is the directory learnt, or another that holds this open's
        witness in `.mirrord/` (the same mirror mounted again: taken as the root from now on,
        one INFO line). Raises RetryableError otherwise (the root gone, or a directory
        without it in its place): nothing may be written there until the mirror is back.
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
            ours = self.witness is not None and stat_mod.S_ISDIR(os.lstat(meta).st_mode) \
                and stat_mod.S_ISREG(os.lstat(os.path.join(meta, self.witness)).st_mode)
        except OSError:
            ours = False
        if now is not None and ours:
            self.seen = now
            log.info(kv(msg="target root mounted again; writing there", target=self.describe,
                        path=self.path))
            return
        raise RetryableError(f"{self.describe}: the target root {self.path} is no longer the "
                             f"directory opened (its file system unmounted, or another "
                             f"mounted over it?): nothing is written there until it is back")

    def await_content(self, why: str) -> None:
        """From now on check() raises RetryableError(`why`) while the root holds nothing
        (holds_nothing: one listing of the root per change, only while waiting); once it
        holds something (its file system mounted, a reconcile with the daemon stopped
        filled it) the root is taken as it stands, one INFO line."""
        self.awaiting = why
        self.drop_witness()   # the root found empty may be a bare mount point: no witness there
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
