"""Looking at a source path the way a worker must before shipping it.

`observe` opens the path beneath the source root without following any
symlink and reports what stands there now (a file with its size, exact mtime
and mode, a directory, or nothing), refusing a file still open for writing.
`SourceGuard` tells when a source root is missing, replaced or unmounted, so
that an 'absent' is not believed. Split out of mirrord.shipper, which imports
both from here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat as stat_mod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mirrord import appends, mountid
from mirrord.errors import RetryableError, SourceBusy
from mirrord.fsutil import BeneathOpener, open_file_beneath

if TYPE_CHECKING:
    from mirrord.submounts import SubMounts

_F_SETSIG = getattr(fcntl, "F_SETSIG", 10)   # Linux: the signal sent when a lease breaks
# Nothing of ours there: gone, a symlink on the way, or what open(2) refuses that is no
# regular file: a UNIX socket (ENXIO, open(2)) or a device with no driver (ENXIO,
# ENODEV). Those are not mirrored, as a FIFO (opened O_NONBLOCK, then fstat'ed) is not:
# raised, a file replaced by a socket failed its delete for good, with a traceback at
# each retry, and the stale file stayed on every target (a trial).
_ABSENT_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.ENODEV}


class SourceGuard:
    """Refuses deletes when a source root is missing, replaced or unmounted.

    The root's device and inode are remembered at start; if either changes
    (an NFS mount went away and the empty mount point shows), every 'absent'
    would be a lie, so deletes wait until the root is back. So is the unique ID of the
    mount it is on (mirrord.mountid): an empty tmpfs mounted at once in place of the
    root's shows the same device and inode. A mount ID that changed while the device
    and inode did not is taken again by relearn_mount(), called by the daemon's main
    loop once it has handled the mount table change (mirrord.daemon_mounts: an empty
    root is held lost first); until then every delete waits.
    """

    def __init__(self, root: str, *, missing_ok: bool = False):
        """`root`: the source root's path. OSError when it cannot be stat'ed, unless
        `missing_ok` (a daemon started while one root is away, mirrord.daemon_roots):
        then the guard is unhealthy until reset() finds the root back."""
        self.root = root
        self.identity: tuple[int, int] | None = None
        self.mount: int | None = None   # mountid.mount_id of the root; None: not known
        # set while the daemon holds the root lost (mirrord.daemon_roots): a file system
        # mounted again can show the same st_dev and st_ino (tmpfs reuses both)
        self.lost = False
        # set while the daemon compares the root with what was shipped before it believes
        # an absence (the start's catch-up: mirrord.daemon_roots.Roots.await_start): what
        # is the comparison, for the refusal's text; None: none awaited
        self.comparing: str | None = None
        try:
            self.reset()
        except OSError:
            if not missing_ok:
                raise

    def reset(self) -> None:
        """Take the root's identity now (it is back: renamed back, remounted, restored).
        OSError when it cannot be stat'ed (the old identity is kept then)."""
        mount = mountid.mount_id(self.root)
        st = os.stat(self.root)
        self.identity, self.mount = (st.st_dev, st.st_ino), mount

    def relearn_mount(self) -> None:
        """Take the root's mount ID again when its device and inode are still the ones
        learnt: the same file system mounted anew (an NFS export remounted). Called by the
        main loop after a mount table change, once an empty root was held lost. Nothing
        when lost, or when the root cannot be stat'ed or shows another directory."""
        if self.identity is None or self.lost:
            return
        now = mountid.dir_identity(self.root)
        if now is not None and now[:2] == self.identity:
            self.mount = now[2]

    def refusal(self, rel: str) -> str | None:
        """Why an absence of `rel` (a relative path) must not become a delete now: the
        root missing, replaced or unmounted, or its comparison still awaited; None when a
        delete may go."""
        if not self.healthy():
            return (f"source root {self.root} is missing, replaced or unmounted: "
                    f"not deleting {rel!r} until it is back")
        if self.comparing is not None:
            return (f"deletes from source root {self.root} wait for {self.comparing}: "
                    f"not deleting {rel!r} yet")
        return None

    def healthy(self) -> bool:
        """True when the root path shows the directory learnt: same device, inode and
        mount ID (when known). False when lost, missing, or another directory or mount."""
        if self.identity is None or self.lost:
            return False
        now = mountid.dir_identity(self.root)   # one statx(2)
        return (now is not None and now[:2] == self.identity
                and (self.mount is None or now[2] == self.mount))


@dataclass
class Observed:
    """What the source holds at a path right now."""

    kind: str              # file | dir | absent
    size: int = 0
    mtime: float = 0.0
    mtime_ns: int = 0
    fd: int | None = None
    mode: int | None = None   # permission bits (stat.S_IMODE of the fstat); None when absent
    ctime_ns: int = 0         # inode change time (any write, truncate, chmod moves it)
    sample: bytes = b""       # a file's mirrord.appends.sample of its size (when asked)
    prefix_sample: bytes = b""   # ... of its first `prefix` bytes (asked, and it is longer)


def observe(root: str, rel: str, *, keep_open: bool, opener: BeneathOpener | None = None,
            sample: bool = False, prefix: int = 0) -> Observed:
    """Look at root/rel without following symlinks; PermissionError propagates.
    `opener` (for root) reuses the directory a batch's previous path was in. `sample`:
    a regular file's Observed.sample is taken (mirrord.appends; empty when the read
    fails), and its prefix_sample too when it is longer than `prefix` (bytes, > 0)."""
    try:
        if not rel:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        elif opener is not None:
            fd = opener.open_file(rel)
        else:
            fd = open_file_beneath(root, rel)
    except OSError as exc:
        if exc.errno in _ABSENT_ERRNOS:
            return Observed("absent")
        raise
    st = os.fstat(fd)
    mode = stat_mod.S_IMODE(st.st_mode)
    if stat_mod.S_ISREG(st.st_mode):
        closed = _stat_closed(fd)
        if closed is None:
            os.close(fd)
            raise SourceBusy(f"{rel!r} is still open for writing at the source: "
                                 f"sent once it is closed, never half-written")
        st, mode = closed, stat_mod.S_IMODE(closed.st_mode)
        seen = Observed("file", st.st_size, st.st_mtime, st.st_mtime_ns, mode=mode,
                        ctime_ns=st.st_ctime_ns)
        if sample:
            _sample(seen, fd, prefix)
        if keep_open:
            seen.fd = fd
        else:
            os.close(fd)
        return seen
    os.close(fd)
    if stat_mod.S_ISDIR(st.st_mode):
        return Observed("dir", 0, st.st_mtime, st.st_mtime_ns, mode=mode)
    return Observed("absent")  # fifos, sockets, devices are not mirrored


def _sample(seen: Observed, fd: int, prefix: int) -> None:
    """Fill `seen`'s samples from `fd` (observe's `sample` and `prefix`)."""
    try:
        seen.sample = appends.sample(fd, seen.size)
        if 0 < prefix < seen.size:
            seen.prefix_sample = appends.sample(fd, prefix)
    except OSError:
        seen.sample = seen.prefix_sample = b""


def _stat_closed(fd: int) -> os.stat_result | None:
    """The file's fstat taken while a read lease is held, so it describes a closed version:
    None when some process holds the file open for writing (the kernel refuses a read
    lease then, fcntl(2) F_SETLEASE). A scan (catch-up, overflow rescan, reconcile) can
    find a file that is still being written; its close will queue it again. Cannot tell
    (EACCES: not our file, EINVAL: NFS): a plain fstat.

    The stat is taken under the lease, not before it: one taken before could see a
    rewrite in place between its O_TRUNC and its write (0 bytes) whose writer closed just
    before the lease, and a later truncation to 0 bytes then matched it in every check
    of the read (a 0-byte version the source never closed reached the local mirror:
    tests/e2e/test_rewrite_in_place.py, in CI). A writer opening the file while we hold
    the lease (microseconds) breaks it, and the kernel signals the holder: SIGIO by
    default, which kills the process. F_SETSIG makes it SIGWINCH, ignored by default."""
    try:
        fcntl.fcntl(fd, _F_SETSIG, signal.SIGWINCH)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return None if exc.errno == errno.EAGAIN else os.fstat(fd)
    try:
        return os.fstat(fd)
    finally:
        with contextlib.suppress(OSError):   # a lease broken meanwhile is gone already
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def changed_since(seen: Observed, root: str, rel: str) -> bool:
    """Whether the file `seen` describes is no longer what was observed: another size,
    mtime or ctime (fstat of the descriptor kept open, else lstat of root/rel), or gone.

    Asked after a target stored the file: the read lease is released once observe() has
    looked, so a writer may truncate and rewrite the file while the target reads it (a
    PHP script rewriting a file in place). Such a send is not recorded as shipped; it is
    retried as a wait (SourceBusy) and the writer's close sends the final version
    (found by trying it: the trash of keep_deleted held 0-byte versions the source never
    closed). Timestamps are as fine as the file system keeps them (ext4: the kernel's
    coarse clock), so two versions of one size written within one tick look alike."""
    try:
        st = os.fstat(seen.fd) if seen.fd is not None else os.lstat(os.path.join(root, rel))
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (seen.size, seen.mtime_ns,
                                                            seen.ctime_ns)


def observe_op(root: str, rel: str, *, keep_open: bool, opener: BeneathOpener,
               guard: SourceGuard | None, mounts: SubMounts | None,
               sample: bool = False, prefix: int = 0) -> Observed:
    """observe(), as a worker must before an op: an absence is believed only when the
    source root is itself (`guard`: SourceGuard.refusal) and no file system mounted below
    it is lost (`mounts`: SubMounts.refusal); else RetryableError (the op waits)."""
    seen = observe(root, rel, keep_open=keep_open, opener=opener, sample=sample, prefix=prefix)
    if seen.kind == "absent":
        refused = guard.refusal(rel) if guard is not None else None
        if refused is not None:
            raise RetryableError(refused)
        why = mounts.refusal(rel) if mounts is not None else None
        if why is not None:   # a file system gone below the root is no user's delete
            raise RetryableError(why)
    return seen
