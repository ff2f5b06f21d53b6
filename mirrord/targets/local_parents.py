"""The local target's walk from its root to the directory a put, mkdir or move writes in,
by directory descriptor.

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
from collections.abc import Callable

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
    OSError as the file system says."""
    rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        os.fsync(rfd)
    finally:
        os.close(rfd)
