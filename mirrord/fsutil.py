"""Durable, confined file-system operations.

atomic_write: temp file in the same directory, fsync, rename, fsync the
directory, so a crash leaves the old file or the new one, never a mix.
open_file_beneath / BeneathOpener: open a relative path without following a
symlink anywhere on the way, so a file name (or a parent replaced by a symlink)
can never make mirrord read or write outside the tree it was given.
counts_subdirs_in_nlink: whether a directory's link count can be trusted to
say "no subdirectories" (lets a watcher skip listing leaf directories).
remove_tree: rmtree that does not stop at an entry taken away under it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile

from mirrord.errors import SourceBusy

# File systems whose directories have st_nlink == 2 + number of subdirectories. The
# same list GNU find's leaf optimisation trusts, minus what it excludes (NFS, CIFS,
# AFS, proc: their counts can be wrong). btrfs always says 1, so it never matches 2.
_NLINK_COUNTS_SUBDIRS = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs", "f2fs", "jfs"})

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(path: str | bytes) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: str | bytes, *, dir_fd: int | None = None) -> None:
    """Remove the directory tree `path` (a directory, not a symlink to one; relative to the
    directory descriptor `dir_fd` when given, which may be O_PATH), going on past entries
    that are gone by the time it gets to them; `path` absent is no error.

    CPython 3.11's shutil.rmtree raises at the first FileNotFoundError and leaves what it
    had not reached yet: a local target's tree removal that lost an entry to another
    worker's delete stopped there, and the caller, taking FileNotFoundError for "already
    gone", reported a directory still on the mirror as removed (churn test).
    Raises OSError for anything else (EACCES, EROFS, EIO...)."""
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_skip_gone, dir_fd=dir_fd)
    else:
        shutil.rmtree(path, onerror=_skip_gone, dir_fd=dir_fd)


def _skip_gone(_func, _path, exc) -> None:
    err = exc[1] if isinstance(exc, tuple) else exc   # onerror: exc_info; onexc: the exception
    if not isinstance(err, FileNotFoundError):
        raise err


def atomic_write(path: str | os.PathLike[str] | bytes, data: bytes, *, mode: int = 0o644,
                 fsync: bool = True, temp_dir: str | bytes | None = None) -> None:
    """Replace `path` with `data` atomically (and durably when fsync).

    The temp file is made in `temp_dir` (default: beside `path`), which must be on the
    same file system: os.replace(2) cannot cross one."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    prefix = b".mirrord-tmp-" if isinstance(path, bytes) else ".mirrord-tmp-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory if temp_dir is None else temp_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            # fchmod, not chmod(tmp): the name could be swapped for a symlink meanwhile in a
            # directory another user may write, and chmod follows it
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(directory)


def open_dir_beneath(root: str | bytes, reldir: str, *, create: bool = False,
                     mode: int = 0o755, search_only: bool = False) -> int:
    """A descriptor of root/reldir, refusing a symlink in any component of `reldir`
    (O_NOFOLLOW at each step, openat(2)), so nothing a user of the tree planted can lead
    outside `root`. `root` itself is the caller's (a configured source or target root) and
    is followed when it is a symlink (/srv/uploads -> /data/uploads): refused, every path
    below it looked absent, which a shipper reads as "deleted" and a keep as "nothing to
    keep" (the local trash kept nothing behind a symlinked root). With
    `create`, missing components are made (mkdirat, `mode` before the umask). With
    `search_only` the descriptors are O_PATH: each directory needs search permission only
    (a mirrored 0311 directory), and the one returned serves *at calls, not reads. The
    caller closes it. Raises FileNotFoundError (absent, without create), OSError ELOOP/ENOTDIR (a
    symlink or a file on the way), PermissionError for a '.' or '..' component."""
    flags = (_DIR_FLAGS & ~os.O_RDONLY) | os.O_PATH if search_only else _DIR_FLAGS
    fd = os.open(root, flags & ~os.O_NOFOLLOW)
    try:
        for part in [p for p in reldir.split("/") if p]:
            if part in (".", ".."):
                raise PermissionError(f"unsafe component {part!r} in {reldir!r}")
            name = os.fsencode(part)
            if create:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass
            nfd = os.open(name, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
# (no effect on regular files; callers fstat and skip anything else)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_file_beneath(root: str | bytes, relpath: str) -> int:
    """Open root/relpath read-only, following no symlink; the caller closes the fd.

    Raises FileNotFoundError when absent, OSError(ELOOP/ENOTDIR) when a
    symlink stands anywhere on the way: callers treat that as 'absent'.
    """
    with BeneathOpener(root) as opener:
        return opener.open_file(relpath)


class BeneathOpener:
    """open_file_beneath for many paths in a row: keeps the last directory open.

    A batch of ops walks the same few directories thousands of times (a first sync
    lists them directory by directory); reopening every component of every path was
    a third of the shipper's CPU. The directory stays the one opened first: renamed
    meanwhile, later paths in it are read as if looked at just before the rename,
    which the rename's own event then repairs. Use for one batch, then close().
    """

    def __init__(self, root: str | bytes):
        self.root = root
        self._head: str | None = None
        self._fd = -1

    def open_file(self, relpath: str) -> int:
        head, _, name = relpath.rpartition("/")
        if head != self._head:
            self.close()
            self._fd = open_dir_beneath(self.root, head)
            self._head = head
        return os.open(os.fsencode(name), _FILE_FLAGS, dir_fd=self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._head = -1, None

    def __enter__(self) -> "BeneathOpener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def filesystem_type(path: str | bytes, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system holding `path` ("ext4", "nfs4", ...), or None if unknown.

    Matched by device number against the kernel's mount table, so bind mounts and
    mount points with odd names need no path parsing. Unknown (a btrfs subvolume's
    anonymous device, no /proc) is None: callers must then assume the worst.
    """
    try:
        dev = os.stat(path).st_dev
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(dev)}:{os.minor(dev)}"
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[2] == want and "-" in fields:
            rest = fields[fields.index("-") + 1:]
            if rest:
                return rest[0]
    return None


def mount_point(path: str | bytes, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The mount point of the mount `path` lies on (symlinks followed): the longest mount
    point in proc(5)'s mountinfo that is `path` or a parent of it; None if unknown. Stable
    across reboots and remounts of the same volume at the same place, unlike st_dev or
    the mount ID: a volume that failed to mount leaves its root on the parent's mount
    (a breaker's ext4 volume on an ext4 host, and a bind mount lost, both looked like
    their root back on the same file system type and device)."""
    try:
        real = os.path.realpath(path)
        if isinstance(real, bytes):
            real = os.fsdecode(real)
        found = _longest_mount(real, _mounts(mountinfo))
    except OSError:
        return None
    return None if found is None else found[0]


def type_by_name(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system `path` lies on by its name: `path` made absolute (not
    resolved: symlinks are not followed) against the mount points in proc(5)'s
    mountinfo, the longest that is `path` or a parent of it (the last listed of equal
    ones: a later mount at a point hides the earlier); None if unknown. Reads the mount
    table only, never `path` itself. Not the visible mount in every shape: one moved
    (mount --move) over another, or one on a parent that hides a deeper one, is named by
    the longest prefix all the same; callers use it where that costs speed at most
    (config.worker_defaults)."""
    want = "/" + os.path.normpath(os.path.abspath(path)).lstrip("/")   # POSIX keeps a leading //
    try:
        found = _longest_mount(want, [m for m in _mounts(mountinfo) if m[1]])
    except OSError:
        return None
    return None if found is None else found[1]


def _mounts(mountinfo: str) -> list[tuple[str, str | None]]:
    """(mount point, file system type, None when the line has none) of each line of proc(5)'s
    mountinfo, in its order. OSError as open(2) raises."""
    mounts: list[tuple[str, str | None]] = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 5:
                continue
            rest = fields[fields.index("-", 5) + 1:] if "-" in fields[5:] else []
            mounts.append((_unescape(fields[4]), rest[0] if rest else None))
    return mounts


def _longest_mount(path: str, mounts: list[tuple[str, str | None]]) -> tuple[str, str | None] | None:
    """Of `mounts` (_mounts), the one whose mount point is the longest that is `path` (absolute,
    normalised) or a parent of it, the last listed of equal ones (a later mount at a point
    hides the earlier); None when none is."""
    best = None
    for point, kind in mounts:
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, kind)
    return best


def _unescape(field: str) -> str:
    """A mountinfo path field: space, tab, newline and backslash are written as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


# File systems where changes made by another client (another NFS/SMB client, the FUSE
# daemon's own backend) produce no inotify event on this host: inotify(7) "Limitations
# and caveats" — events are generated by the local VFS only. Only reconcile sees those.
_NO_REMOTE_EVENTS_PREFIXES = ("nfs", "cifs", "smb", "fuse", "9p", "ceph", "glusterfs", "afs",
                              "lustre", "gfs2", "ocfs2", "virtiofs")


def remote_writes_unseen(fstype: str | None) -> bool:
    """True when writes by other clients of the file system `fstype` are invisible to
    inotify/fanotify on this host (network and FUSE file systems): mirrord then mirrors
    only what this host writes live, and reconcile repairs the rest."""
    return bool(fstype) and fstype.startswith(_NO_REMOTE_EVENTS_PREFIXES)


def counts_subdirs_in_nlink(path: str | bytes) -> bool:
    """True when directories below `path` (on the same device) report their
    subdirectories in st_nlink, so st_nlink == 2 proves a directory has none."""
    return filesystem_type(path) in _NLINK_COUNTS_SUBDIRS


def check_read_whole(fd: int, before: os.stat_result, read: int, size: int) -> None:
    """Raise SourceBusy (mirrord.errors) unless the file open at `fd` still is what
    `before` (its fstat when the read began) describes, all of it was read (`read`
    bytes) and it has the `size` (bytes) the caller was told it has (the shipper's
    observe(): a truncation between that look and the target's open shows here): the
    same size, mtime and ctime. A target calls this after reading a body and
    before making it visible (the local target's rename, S3's PutObject), so a file
    truncated and rewritten in place while it was read never reaches the mirror torn
    (found by trying it: 0-byte versions the source never closed). Timestamps are as fine
    as the file system keeps them."""
    after = os.fstat(fd)
    if read != before.st_size or read != size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            before.st_size, before.st_mtime_ns, before.st_ctime_ns):
        raise SourceBusy(f"the source file changed while it was read ({size} bytes when "
                         f"observed, {before.st_size} when the read began, {read} read, "
                         f"{after.st_size} now): sent again once it is quiet")


def read_up_to(fd: int, size: int) -> bytes:
    """The first `size` bytes (int) of the file open at `fd`, fewer only where it ends:
    read(2) again after a short read until `size` bytes or end of file. Asked for one byte
    more than its fstat's size, a regular file is two read(2)s (the second finds the end);
    a buffered file object's open() and read() make five more system calls (fstat twice, an
    isatty ioctl, lseek twice), each a point where a worker gives up the GIL and waits to
    take it back. Raises OSError from read(2)."""
    parts, left = [], size
    while left:
        part = os.read(fd, left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)   # one part: that very bytes object, not a copy
