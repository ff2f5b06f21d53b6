"""Where the local target writes a file before it is renamed into place, and the sweep
of what an interrupted write left.

A put copies the source into a temp file under the target's own area
`<root>/.mirrord/tmp/` (same file system as the root, so rename(2) is atomic and
no user file name can ever collide with a temp name), gives it its mode and mtime
through its descriptor, fsyncs it and renames it over the destination, relative to
the descriptor of the destination's directory (mirrord.targets.local_parents), so no
symlink swapped in on the way can redirect it. rename(2) cannot cross
mounts (EXDEV): a destination on another mount below the root (or another mount
of the same file system, which has the same device number) gets its temp file
beside it instead, named `.mirrord-stage-<random>`, and a marker file naming it
(`.mirrord/tmp/beside-*`) is written and synced before that temp file exists.
So whatever a crash cuts short is found by sweep(): everything in
`.mirrord/tmp/` and each file a marker names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_mod
import tempfile
from typing import Callable

from mirrord.errors import PermanentError
from mirrord.fsutil import atomic_write, check_read_whole, remove_tree
from mirrord.targets.local_parents import open_parent
from mirrord.targets.mtime import put_ns
from mirrord.targets.paths import META_DIR, check_relpath

STAGE_DIR = META_DIR + "/tmp"        # temp files while they are written
BESIDE_PREFIX = ".mirrord-stage-"    # a temp file beside its destination (another mount)
MARKER_PREFIX = "beside-"            # in STAGE_DIR: names the beside temp file being written
# the put's keep, called with the finished temp file before its rename (install)
BeforeReplace = Callable[[bytes, "int | None", os.stat_result], None]
COPY_CHUNK = 1 << 20                 # bytes per read(2) while a file is copied in


class Staging:
    """Temp files of one local target rooted at `root` (absolute); `fsync` as configured."""

    def __init__(self, root: str, *, fsync: bool):
        self.root = os.fsencode(root)
        self.dir = os.path.join(self.root, STAGE_DIR.encode())
        self.fsync = fsync
        self._dev: int | None = None
        # Set once the target learnt its root's identity (LocalTarget.open): from then on the
        # root is never made again here. A write in flight while the mirror was removed
        # (`rm -rf mirror`) made it again, holding `.mirrord/`, which RootIdentity then took
        # for the mirror mounted again: a fresh heartbeat over an empty mirror (a breaker).
        self.root_known = False

    def prepare(self) -> None:
        """Create `.mirrord/tmp/` and note its device. OSError as the file system says."""
        self._own_area()
        self._dev = os.stat(self.dir).st_dev

    def _own_area(self) -> None:
        """Make `.mirrord/` and `.mirrord/tmp/` real directories, one component at a time
        from the resolved root, replacing a symlink or a file standing there: mirrord's own
        area is never a user's, and a symlink planted at either led the sweep (which empties
        `.mirrord/tmp/`), every temp file and the heartbeat outside the root. The root is
        made first when missing, as LocalTarget.open makes it: a target whose root could
        not be made at start (a file in its parent's place) recovers by the heartbeat's
        write once the outage ends (tests/e2e/test_daemon.py); not once `root_known`: then
        a root gone raises FileNotFoundError."""
        if not self.root_known:
            os.makedirs(self.root, exist_ok=True)
        os.close(open_parent(os.path.realpath(self.root), STAGE_DIR))

    # ------------------------------------------------------------ writing
    def install(self, local: str, parent: int, path: str, *, mtime: float, mtime_ns: int,
                mode: int | None, size: int,
                before_replace: BeforeReplace | None = None) -> os.stat_result:
        """Copy the file at `local` to a temp file and rename it onto `path` (relative to the
        root) in its directory `parent` (a descriptor: LocalTarget's parent walk), with
        `mode` (None: the local file's) and the mtime put_ns() picks; returns the new
        file's fstat. A directory at `path` is replaced. OSError on failure; no temp file is
        left; SourceBusy when the file is not `size` bytes or changed while it was copied
        (fsutil.check_read_whole): nothing is renamed into place then. `before_replace`
        (the put's keep) is called with (temp name, its directory descriptor or None for a
        path, its fstat) once the temp file holds exactly what will be installed, before
        the rename; what it raises fails the put, nothing renamed."""
        if self._dev is None:   # put() before open()
            self.prepare()
        beside = os.fstat(parent).st_dev != self._dev
        args = (local, parent, path, mtime, mtime_ns, mode, size, before_replace)
        try:
            return self._install(beside, *args)
        except OSError as exc:
            if exc.errno != errno.EXDEV or beside:
                raise
            # the same device number on another mount (a bind mount): rename(2) still refuses
            return self._install(True, *args)

    def _install(self, beside: bool, local: str, parent: int, path: str, mtime: float,
                 mtime_ns: int, mode: int | None, size: int,
                 before_replace: BeforeReplace | None) -> os.stat_result:
        marker = None
        if beside:   # the temp file by name in `parent`
            marker, fd, tmp = self._temp_beside(parent, path)
            tmp_dir: int | None = parent
        else:        # the temp file by its path in .mirrord/tmp/
            fd, tmp = self._temp()
            tmp_dir = None
        try:
            st = self._copy(fd, local, mtime, mtime_ns, mode, size)
            if before_replace is not None:
                before_replace(tmp, tmp_dir, st)
            _replace(tmp, tmp_dir, os.fsencode(path.rpartition("/")[2]), parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=tmp_dir)
            raise
        finally:
            if marker is not None:
                with contextlib.suppress(OSError):
                    os.unlink(marker)
        return st

    def write(self, dest: bytes, data: bytes, *, mode: int = 0o644) -> None:
        """Atomically replace `dest` (on the root's file system, e.g. `.mirrord/heartbeat.json`)
        with `data`, staged like a put. OSError on failure; no temp file is left."""
        self._own_area()      # recreated if someone removed it (or planted a symlink there)
        atomic_write(dest, data, mode=mode, fsync=self.fsync, temp_dir=self.dir)

    def _temp(self, prefix: str = "tmp") -> tuple[int, bytes]:
        """A new temp file in `.mirrord/tmp/` (recreated if someone removed it)."""
        try:
            return tempfile.mkstemp(prefix=prefix.encode(), dir=self.dir)
        except FileNotFoundError:
            self._own_area()
            return tempfile.mkstemp(prefix=prefix.encode(), dir=self.dir)

    def _temp_beside(self, parent: int, path: str) -> tuple[bytes, int, bytes]:
        """(marker, fd, temp name in `parent`) for a new temp file beside `path`, whose
        directory `parent` is; the marker, naming it relative to the root, is written (and
        synced) before the temp file exists."""
        head = path.rpartition("/")[0]
        while True:
            tmp = (BESIDE_PREFIX + secrets.token_hex(8)).encode()
            mfd, marker = self._temp(MARKER_PREFIX)
            try:
                with os.fdopen(mfd, "wb") as fh:
                    fh.write(os.fsencode(head) + b"/" + tmp if head else tmp)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                             dir_fd=parent)
            except FileExistsError:   # a user's file has this very name: pick another
                os.unlink(marker)
                continue
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(marker)
                raise
            return marker, fd, tmp

    def _copy(self, fd: int, local: str, mtime: float, mtime_ns: int, mode: int | None,
              size: int) -> os.stat_result:
        """Write `local`'s bytes into the open temp file `fd` (closed here), give it the
        mode and mtime the destination must have (fchmod, futimens: on the descriptor, no
        path resolved again) and return its fstat, which the destination will have.
        Descriptors, not file objects: a buffered open() of each side costs an fstat, an
        isatty ioctl and lseeks (8 more system calls for a small file, each a point where
        a worker gives up the GIL and waits to take it back)."""
        try:
            src = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(fd)
            raise
        try:
            st = os.fstat(src)
            check_read_whole(src, st, copy_to_end(src, fd), size)
            # the temp file was made 0600; exactly the source's bits, no umask
            os.chmod(fd, stat_mod.S_IMODE(st.st_mode) if mode is None else mode)
            ns = put_ns(mtime, mtime_ns, st)
            # before the close, and still safe on NFS: the client writes dirty pages to the
            # server before a SETATTR (fs/nfs/inode.c nfs_setattr), so no WRITE after it
            # (not even close-to-open's flush) can move the mtime again
            os.utime(fd, ns=(ns, ns))
            if self.fsync:   # after the chmod and utime: they are made durable too
                os.fsync(fd)
            return os.fstat(fd)
        finally:
            try:
                os.close(src)
            finally:   # a deferred write error (NFS: close(2) reports it) fails the put
                os.close(fd)

    # ------------------------------------------------------------ after a crash
    def sweep(self) -> int:
        """Remove every temp file an interrupted write left: all of `.mirrord/tmp/` and the
        temp file each marker there names. Only while no write runs on this target
        (LocalTarget.open makes sure). Returns how many entries of `.mirrord/tmp/` went."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return 0
        for name in names:
            full = os.path.join(self.dir, name)
            if name.startswith(MARKER_PREFIX.encode()):
                self._remove_beside(full)
            with contextlib.suppress(FileNotFoundError):
                if os.path.isdir(full) and not os.path.islink(full):
                    remove_tree(full)
                else:
                    os.unlink(full)
        return len(names)

    def _remove_beside(self, marker: bytes) -> None:
        """Unlink the temp file `marker` names if it is one of ours: a regular file with the
        reserved prefix, inside the root, no symlink among its parents."""
        try:
            with open(marker, "rb") as fh:
                rel = check_relpath(os.fsdecode(fh.read()))
            full = os.path.join(self.root, os.fsencode(rel))
            if not os.path.basename(full).startswith(BESIDE_PREFIX.encode()):
                return
            real_root = os.path.realpath(self.root)
            if not os.path.realpath(os.path.dirname(full)).startswith(real_root + b"/"):
                return
            if stat_mod.S_ISREG(os.lstat(full).st_mode):
                os.unlink(full)
        except (OSError, PermanentError, ValueError):
            return   # gone already, or not a path we could have written: leave it


def copy_to_end(src: int, dst: int) -> int:
    """Copy descriptor `src` from its offset to its end into `dst`, COPY_CHUNK bytes at a
    time; returns the bytes copied. write(2) may write less than asked: the rest is written
    again, so a full disk raises OSError (ENOSPC) here instead of leaving a short file.
    A small file is two read(2)s (the second finds the end) and one write(2). A write(2)
    that takes no byte of a non-empty buffer raises OSError(EIO) instead of being asked
    again for ever (a worker spinning on one put holds its whole batch): POSIX write()
    to a regular file transfers at least one byte or fails with -1 and an errno, so a 0
    is a file system breaking that contract (a FUSE daemon's or network client's bug)."""
    copied = 0
    while chunk := os.read(src, COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            written = os.write(dst, view)
            if not written:
                raise OSError(errno.EIO, "write(2) took no byte of the body")
            view = view[written:]
        copied += len(chunk)
    return copied


def _replace(tmp: bytes, tmp_dir: int | None, name: bytes, parent: int) -> None:
    """rename(2) the temp file `tmp` (relative to `tmp_dir`, None: a path) onto `name` in
    directory `parent`; a directory standing there (EISDIR, rename(2)) is removed first,
    found by the rename itself rather than by a look ahead of every put. What another
    worker removes below it meanwhile (a delete of its files in the same batch) does not
    stop the removal (fsutil.remove_tree)."""
    try:
        os.replace(tmp, name, src_dir_fd=tmp_dir, dst_dir_fd=parent)
    except IsADirectoryError:
        remove_tree(name, dir_fd=parent)
        os.replace(tmp, name, src_dir_fd=tmp_dir, dst_dir_fd=parent)


def holds_bytes_of(name: bytes, parent: int, staged: bytes, staged_dir: int | None) -> bool:
    """Whether the regular file `name` in directory `parent` (opened O_NOFOLLOW: never
    through a symlink) holds the bytes of the staged temp file `staged` (relative to
    `staged_dir`; None: a path), read with pread(2), COPY_CHUNK at a time, False at the
    first difference; False when either cannot be opened or read (the caller then keeps).
    The staged file, not the source: it holds exactly what the rename installs, so a
    source rewritten between a look and the copy cannot pass for the bytes already
    there (a review, helper-159). Not filecmp.cmp: it answers from a cache keyed on size
    and mtime, a signature that tells nothing about the bytes."""
    try:
        a = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return False
    try:
        b = os.open(staged, os.O_RDONLY | os.O_CLOEXEC, dir_fd=staged_dir)
    except OSError:
        os.close(a)
        return False
    try:
        at = 0
        while True:
            x, y = os.pread(a, COPY_CHUNK, at), os.pread(b, COPY_CHUNK, at)
            if x != y:
                return False
            if not x:
                return True
            at += len(x)
    except OSError:
        return False
    finally:
        os.close(a)
        os.close(b)
