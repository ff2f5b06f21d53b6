"""Which mount a path is on, by the kernel's unique mount ID (statx(2), STATX_MNT_ID_UNIQUE).

A file system unmounted and another mounted in its place can show the same (st_dev,
st_ino) at the mount point: tmpfs hands the freed anonymous device number to the next
tmpfs and numbers its root inode 1 (a breaker's empty tmpfs, mounted at once over the
source root's, passed the delete guard, and the changes queued before went out as
deletes). The unique mount ID is never reused while the system runs (statx(2), Linux
6.8+); the older STATX_MNT_ID (Linux 5.8+) is reused once freed, so only the unique one
is taken. Python 3.11 has no os.statx, hence the call through ctypes.

`mount_id(path)` is None where the kernel or the C library cannot say (an old kernel, no
statx in libc): callers then compare (st_dev, st_ino) only, as before. `dir_identity`
is the three together, for a directory.
"""

from __future__ import annotations

import ctypes
import os
import stat as stat_mod
import struct

AT_FDCWD = -100
STATX_MNT_ID_UNIQUE = 0x4000   # include/uapi/linux/stat.h (Linux 6.8)
# STATX_TYPE | STATX_MODE | STATX_INO: stx_mode (offset 28), stx_ino (32); stx_dev_major and
# stx_dev_minor (136, 140) are always filled (include/uapi/linux/stat.h)
_IDENTITY_MASK = 0x1 | 0x2 | 0x100 | STATX_MNT_ID_UNIQUE
# stx_mask, stx_mode, stx_ino, stx_dev_major, stx_dev_minor, stx_mnt_id (the __u64 at
# offset 144, after stx_dev_minor), in native order
_FIELDS = struct.Struct("=I24xH2xQ96xIIQ")
_STATX_SIZE = 256

# dlopen(NULL): the running process's symbols (glibc has had statx since 2.28)
_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)
if _statx is not None:
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                       ctypes.c_void_p]
    _statx.restype = ctypes.c_int


def mount_id(path: str) -> int | None:
    """The unique ID of the mount `path` (symlinks followed) is on, or None when this
    kernel or C library does not give one. Raises OSError (ENOENT, EACCES...) when `path`
    cannot be looked up."""
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(AT_FDCWD, os.fsencode(path), 0, STATX_MNT_ID_UNIQUE, buf) != 0:
        err = ctypes.get_errno()
        if err == 38:   # ENOSYS: no statx(2) in this kernel
            return None
        raise OSError(err, os.strerror(err), path)
    mask, *_, mount = _FIELDS.unpack_from(buf)
    if not mask & STATX_MNT_ID_UNIQUE:   # the kernel does not know the flag (before 6.8)
        return None
    return mount


def dir_identity(path: str) -> tuple[int, int, int | None] | None:
    """(st_dev, st_ino, mount_id) of the directory `path` (symlinks followed): what tells
    one mounted file system's root from another's at the same path. None when it is
    missing, cannot be looked up, or is not a directory. One statx(2) where the kernel
    gives the unique mount ID (this runs before every change a local target makes: one
    system call, not a stat and a statx); os.stat and no mount ID otherwise."""
    if _statx is not None:
        buf = ctypes.create_string_buffer(_STATX_SIZE)
        if _statx(AT_FDCWD, os.fsencode(path), 0, _IDENTITY_MASK, buf) != 0:
            return None
        mask, mode, ino, major, minor, mount = _FIELDS.unpack_from(buf)
        if mask & _IDENTITY_MASK == _IDENTITY_MASK:
            if not stat_mod.S_ISDIR(mode):
                return None
            return (os.makedev(major, minor), ino, mount)
    try:
        mount = mount_id(path)
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, mount) if stat_mod.S_ISDIR(st.st_mode) else None
