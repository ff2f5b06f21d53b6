"""The local target's walks from its root by directory descriptor: to the directory a put,
mkdir or move writes in (open_parent), and to what stat, read, checksum, delete and a
move's source look at or remove (find_dir, lstat_at, open_file, remove_at).

Each component is opened from its parent's descriptor (openat(2) with O_NOFOLLOW and
O_DIRECTORY), so no symlink on the way is ever followed: one planted in the mirror, or
swapped in at any moment during or after the walk, cannot make the write that follows
(relative to the descriptor: renameat, unlinkat) land outside the root, and no realpath
check is needed afterwards. A missing directory is made (mkdirat); a file or a symlink in
the way is replaced by a directory, kept first when the caller asks
(Features.keeps_parents_in_put: `rm d; mkdir d; echo > d/z` at the source).

Why descriptors: the walk by path lstat()ed every component, realpath() lstat()ed them
all again, and every later call by path resolved them once more (12% of the daemon's CPU
in a 5,000-file local burst, py-spy); and a component swapped for a symlink after the
realpath check still redirected the rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
from collections.abc import Callable

from mirrord.fsutil import open_dir_beneath, remove_tree

# O_PATH: only search permission is needed on each directory, as for the calls by path it
# replaces (a mirrored directory of mode 0311 stays writable to a non-root daemon); every
# later call (openat, mkdirat, renameat, unlinkat, fstat) accepts such a descriptor. With
# O_NOFOLLOW|O_DIRECTORY, open(2) answers a symlink with ENOTDIR (ELOOP without O_PATH).
WALK_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IN_THE_WAY = (errno.ENOTDIR, errno.ELOOP)


def open_parent(root: str | bytes, reldir: str,
                keep: Callable[[str], object] | None = None) -> int:
    """An O_PATH descriptor of the directory root/reldir ('' : the root itself), made where
    missing. `root` is opened as it is (symlinks in it followed: the configured root,
    resolved, is the caller's); each component of `reldir` is opened from its parent's
    descriptor without following a symlink. A missing one is made (mkdirat, 0777 before
    the umask, as mkdir(2)); a non-directory in the way (a file, a symlink: never
    followed) is unlinked and made a directory, given to `keep(relpath)` first when
    `keep` is set (what keep raises, propagates: nothing was removed then). The caller
    closes the descriptor.

    Raises PermissionError for an empty, '.' or '..' component; OSError as the file
    system says otherwise (ENOENT: a directory on the way removed by a racing tree
    removal; ENOTDIR: a file put in the way again right after it was cleared)."""
    fd = os.open(root, WALK_FLAGS)
    try:
        parts = reldir.split("/") if reldir else []
        for i, part in enumerate(parts):
            if part in ("", ".", ".."):
                raise PermissionError(f"unsafe component {part!r} in {reldir!r}")
            nfd = _step(fd, parts, i, keep)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def find_dir(root: str | bytes, reldir: str) -> int | None:
    """An O_PATH descriptor of the existing directory root/reldir ('': the root), walked as
    open_parent walks but making and replacing nothing; None when a component is missing
    or is not a directory (a file, a symlink: never followed), so nothing of the mirror's
    can be there. For the calls that read or remove (stat, read, checksum, delete, a move's
    source): by path, a symlink planted at a parent (`a -> /etc`) made delete('a/passwd')
    unlink /etc/passwd. The caller closes it. PermissionError for an unsafe component;
    OSError as the file system says otherwise (EACCES...)."""
    try:
        return open_dir_beneath(root, reldir, search_only=True)
    except OSError as exc:
        if exc.errno in _IN_THE_WAY or exc.errno == errno.ENOENT:
            return None
        raise


def lstat_at(root: str | bytes, path: str) -> os.stat_result | None:
    """lstat of root/path reached by find_dir; None when absent or when a symlink or a file
    stands at a parent. OSError as the file system says otherwise."""
    head, _, name = path.rpartition("/")
    parent = find_dir(root, head)
    if parent is None:
        return None
    try:
        return os.lstat(os.fsencode(name), dir_fd=parent)
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)


def open_file(root: str | bytes, path: str) -> int | None:
    """A read-only descriptor of the regular file root/path, reached by find_dir and
    opened with O_NOFOLLOW|O_NONBLOCK; None when a symlink stands at a parent or at `path`,
    or when `path` is no regular file (a FIFO planted in the mirror made read() and the
    heartbeat's read_meta wait for a writer for good; O_NONBLOCK: the open itself does not
    wait). The caller closes it. FileNotFoundError when absent; OSError as the file
    system says otherwise."""
    head, _, name = path.rpartition("/")
    parent = find_dir(root, head)
    if parent is None:
        return None
    try:
        fd = os.open(os.fsencode(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:   # a symlink at `path`
            return None
        raise
    finally:
        os.close(parent)
    if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def remove_at(fd: int, name: bytes, *, tree: bool) -> None:
    """Remove `name` in directory `fd`, never following a symlink: a file or symlink is
    unlinked; a directory is removed with everything below it when `tree`, else only when
    empty (rmdir; not empty: left, its files have their own rows). Absent: nothing to do.
    OSError as the file system says (EACCES, EROFS, EIO...)."""
    try:
        st = os.lstat(name, dir_fd=fd)
    except FileNotFoundError:
        return
    if not stat_mod.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
    elif tree:
        remove_tree(name, dir_fd=fd)
    else:
        with contextlib.suppress(OSError):   # not empty, or gone meanwhile
            os.rmdir(name, dir_fd=fd)


def _step(fd: int, parts: list[str], i: int, keep: Callable[[str], object] | None) -> int:
    """The descriptor of the directory parts[i] in directory `fd` (parts[:i]), made (and
    cleared) as needed."""
    name = os.fsencode(parts[i])
    try:
        return os.open(name, WALK_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in _IN_THE_WAY:
            raise
        _clear(fd, name, "/".join(parts[:i + 1]), keep)
    with contextlib.suppress(FileExistsError):   # a racing worker made it
        os.mkdir(name, dir_fd=fd)
    return os.open(name, WALK_FLAGS, dir_fd=fd)


def _clear(fd: int, name: bytes, rel: str, keep: Callable[[str], object] | None) -> None:
    """Unlink the file or symlink `name` in `fd` (kept first with `keep`)."""
    if keep is not None:
        keep(rel)
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:   # kept: moved into the trash
        pass
    except IsADirectoryError:   # a racing worker (a mkdir of it, a put below it) made it a
        pass                    # directory meanwhile: what we need


def fsync_at(fd: int) -> None:
    """fsync(2) the directory an O_PATH descriptor `fd` refers to (an O_PATH descriptor
    itself cannot be synced: EBADF), through a read-only descriptor of '.' opened from it.
    A directory the process may not read (mode 0311, a drop box, for a daemon not running
    as root) cannot be opened so and is not synced: the rename in it has happened, and
    reporting it as failed gave the row up for good. OSError as the file system says
    otherwise."""
    try:
        rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except PermissionError:
        return
    try:
        os.fsync(rfd)
    finally:
        os.close(rfd)
