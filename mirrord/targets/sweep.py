"""Whether a target's open() may sweep what an interrupted transfer left behind.

Every target removes at open() the debris of transfers a crash cut short: the
local target its staged files under `<root>/.mirrord/tmp/`, the rsync target
the partial files in `<root>/.mirrord/rsync-tmp/`, the S3 target the multipart
uploads left open under its prefix. That debris is only debris when no other
mirrord process on this host is transferring to the same target right now:
`mirrord reconcile` opens the targets while the daemon runs, and a sweep then
would abort the daemon's upload in flight.

So each open target holds a shared flock(2) on a lock file named after the
target's identity, and an opener sweeps only when it can first take that lock
exclusively (nobody else has the target open), then keeps it shared until
close(). flock locks die with their process, so a `kill -9` frees them and the
next start sweeps. The lock files of the s3 and rsync targets live in /dev/shm:
the daemon and the reconcile timer both run with PrivateTmp=yes, which gives
each its own /tmp, while PrivateDevices=yes bind-mounts the host's /dev/shm into
the private /dev (systemd's namespace setup), and ProtectSystem=strict leaves
/dev writable. The local target keeps its lock file in its own `.mirrord/`,
which also covers another host mounting the same path. Where no lock file can
be made (a read-only file system), nothing is swept.

The lock only sees this host, so a command that only reads a target never takes
it and never sweeps: it opens the target with open(readonly=True) (Target.open),
which writes nothing. On the mirror host no mirrord process holds the lock (the
daemon runs on the primary), and failover, health, trash or reconcile --dry-run
sweeping there aborted the primary's uploads in flight.

Targets written to by two primaries at once are not supported anyway; a
mirrord process on another host is not seen by this lock.

The rsync target's private directories in /tmp are swept by the same rule, each
with a lock file of its own (targets/rsync/private_dir.py; try_flock is shared).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from typing import Callable

from mirrord.logsetup import kv

log = logging.getLogger("mirrord.targets")

SHM = "/dev/shm"


def lock_path(identity: str, directory: str | bytes | None = None) -> bytes:
    """The lock file for a target `identity` (e.g. "s3:endpoint/bucket/prefix"), in
    `directory` (default /dev/shm, else the temp directory when there is none)."""
    if directory is None:
        directory = SHM if os.path.isdir(SHM) else tempfile.gettempdir()
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(os.fsencode(directory), b"mirrord-target-%s.lock" % digest.encode())


class OpenLock:
    """Held (shared) from a target's open() to its close(); one per target instance."""

    def __init__(self, identity: str, directory: str | bytes | None = None):
        self.identity = identity
        self.directory = directory
        self._fd = -1
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def hold(self, sweep: Callable[[], None]) -> bool:
        """Take the lock; when no other process holds it, call `sweep()` first (under the
        exclusive lock), then keep it shared. Returns whether `sweep` ran. Holding it
        already (open() called again) does nothing and returns False, and so does a lock
        file that cannot be made (a read-only file system: whether others have the target
        open cannot be known, so nothing is swept). Whatever `sweep` raises propagates,
        with the lock released."""
        with self._mutex:
            if self._fd >= 0:
                return False
            try:
                fd = os.open(lock_path(self.identity, self.directory),
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning(kv(msg="cannot take the target's open lock; not removing what "
                                   "interrupted transfers left", target=self.identity,
                               error=f"{exc.strerror}: {exc.filename}"))
                return False
            try:
                alone = try_flock(fd, fcntl.LOCK_EX)
                if alone:
                    sweep()
                # converting EX -> SH is not atomic (flock(2)): another opener may take EX
                # in between and sweep, which is harmless: we have not started anything yet
                if not try_flock(fd, fcntl.LOCK_SH):
                    _share_later(fd, self.identity)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return alone

    def release(self) -> None:
        """Let go (close()); safe to call twice."""
        with self._mutex:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def try_flock(fd: int, how: int) -> bool:
    """flock(2) `fd` with `how` (fcntl.LOCK_EX or LOCK_SH) without waiting: whether it was
    taken; False when another open file description holds a conflicting lock. Other
    OSErrors (a bad fd, ENOLCK) propagate. Also what the rsync target's private-directory
    sweep asks of a lock file (targets/rsync/private_dir.py)."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _share_later(fd: int, identity: str) -> None:
    """Another opener is sweeping right now (it holds the lock exclusively while it
    connects, which can take a connect timeout): never make this open() wait for it.
    Take the shared lock on a thread once the sweep is over; until then a third opener
    could sweep too, which costs at most a retried upload of ours, never data."""
    def wait() -> None:
        with contextlib.suppress(OSError):   # closed meanwhile (close() before the sweep ended)
            fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Thread(target=wait, name=f"open-lock {identity[:40]}", daemon=True).start()
