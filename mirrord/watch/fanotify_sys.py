"""The fanotify binding: system calls through ctypes, and parsing of event records.

Nothing here knows about source trees: it opens a notification group, places
marks, turns the bytes read from the group into `RawEvent`s, and opens file
handles. Layouts and constants are those of linux/fanotify.h and
fanotify(7) / fanotify_init(2) / fanotify_mark(2) / open_by_handle_at(2).

Why our own layer and not pyfanotify (0.3.0): pyfanotify runs the reader in a
separate process and sends every event over a socket; it opens every file
handle it sees (no cache) and resolves names through /proc/self/fd; with
FAN_RENAME it resolves both names against the same (last) directory handle,
so a rename across directories reports the wrong old path; it does not know
FAN_REPORT_TARGET_FID (a child FID record after DFID_NAME replaces the
directory) and stops parsing at any unknown record type.

A record's `struct file_handle` (handle_bytes, handle_type, f_handle) is kept
as the raw bytes it arrives in: that is a dict key for the path cache and,
unchanged, the argument open_by_handle_at(2) wants.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import NamedTuple

# fanotify_init(2) flags
FAN_CLOEXEC = 0x01
FAN_NONBLOCK = 0x02
FAN_CLASS_NOTIF = 0x00
FAN_UNLIMITED_QUEUE = 0x10
FAN_REPORT_FID = 0x200
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_REPORT_TARGET_FID = 0x1000
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME
# fanotify_mark(2) flags
FAN_MARK_ADD = 0x01
FAN_MARK_REMOVE = 0x02
FAN_MARK_DONT_FOLLOW = 0x04
FAN_MARK_ONLYDIR = 0x08
FAN_MARK_IGNORED_SURV_MODIFY = 0x40
FAN_MARK_FLUSH = 0x80
FAN_MARK_FILESYSTEM = 0x100
FAN_MARK_EVICTABLE = 0x200      # Linux 5.19: the inode mark does not pin the inode
FAN_MARK_IGNORE = 0x400         # Linux 6.0: ignore mask with FAN_ONDIR/FAN_EVENT_ON_CHILD
# event bits
FAN_MODIFY = 0x2
FAN_ATTRIB = 0x4
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_DELETE_SELF = 0x400
FAN_MOVE_SELF = 0x800
FAN_Q_OVERFLOW = 0x4000
FAN_FS_ERROR = 0x8000
FAN_RENAME = 0x10000000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_ONDIR = 0x40000000
# info record types
FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FAN_EVENT_INFO_TYPE_PIDFD = 4
FAN_EVENT_INFO_TYPE_ERROR = 5
FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10
FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12
FANOTIFY_METADATA_VERSION = 3
FAN_NOFD = -1
AT_FDCWD = -100
O_PATH = getattr(os, "O_PATH", 0o10000000)

# struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16,
# mask u64 (aligned), fd s32, pid s32 = 24 bytes
_META = struct.Struct("=IBBHQii")
# struct fanotify_event_info_header: info_type u8, pad u8, len u16
_INFO = struct.Struct("=BBH")
# struct file_handle's head: handle_bytes u32 (then handle_type s32 and f_handle)
_FH_HEAD = struct.Struct("=I")
_ERROR = struct.Struct("=iI")


class RawEvent(NamedTuple):
    """One fanotify event with its info records folded in.

    mask: FAN_* bits. dfid/name: the directory handle and entry name of DFID_NAME
    or (for FAN_RENAME) NEW_DFID_NAME; old_dfid/old_name: OLD_DFID_NAME. fid: the
    object itself (FID: FAN_REPORT_TARGET_FID's child, or a self event). Handles
    are raw `struct file_handle` bytes, names raw bytes; absent ones are None.
    error: the errno of a FAN_FS_ERROR record, else 0.
    """

    mask: int
    pid: int
    dfid: bytes | None = None
    name: bytes | None = None
    old_dfid: bytes | None = None
    old_name: bytes | None = None
    fid: bytes | None = None
    error: int = 0


class ParseError(ValueError):
    """The bytes read do not follow the fanotify(7) layout (a kernel/ABI mismatch)."""


def parse(buf: bytes) -> list[RawEvent]:
    """Every event in `buf` (the bytes of one read(2) on a fanotify fd), in order.

    Raises ParseError on a metadata version other than 3 or on lengths that do not
    fit (the FAN_EVENT_OK rule of fanotify(7)). Unknown record types are skipped by
    their `len`, so a newer kernel's extra records do not break parsing."""
    out: list[RawEvent] = []
    off, end = 0, len(buf)
    meta = _META.unpack_from
    while off + 24 <= end:
        event_len, vers, _r, meta_len, mask, _fd, pid = meta(buf, off)
        if vers != FANOTIFY_METADATA_VERSION:
            raise ParseError(f"fanotify metadata version {vers}, expected "
                             f"{FANOTIFY_METADATA_VERSION}")
        if event_len < meta_len or meta_len < 24 or off + event_len > end:
            raise ParseError(f"bad event length {event_len} at offset {off}")
        out.append(_records(buf, off + meta_len, off + event_len, mask, pid))
        off += event_len
    if off != end:
        raise ParseError(f"{end - off} trailing bytes after the last event")
    return out


def _records(buf: bytes, off: int, end: int, mask: int, pid: int) -> RawEvent:
    # hot path (every event on the file system passes here): locals, one unpack per record
    dfid = name = old_dfid = old_name = fid = None
    error = 0
    info, rec = _INFO.unpack_from, _REC.unpack_from
    while off + 4 <= end:
        info_type, _pad, rec_len = info(buf, off)
        if rec_len < 4 or off + rec_len > end:
            raise ParseError(f"bad info record length {rec_len} (type {info_type})")
        if info_type in _FID_TYPES:
            if rec_len < _REC.size:
                raise ParseError(f"fid record of {rec_len} bytes is too short")
            hbytes = rec(buf, off)[0]
            h_end = off + 20 + hbytes           # header 4 + fsid 8 + handle_bytes/type 8
            if h_end > off + rec_len:
                raise ParseError(f"file handle of {hbytes} bytes overruns its record")
            handle = buf[off + 12:h_end]
            if info_type == 1:                  # FAN_EVENT_INFO_TYPE_FID
                fid = handle
            else:
                nm = None
                if info_type != 3:              # DFID has no name
                    nul = buf.find(b"\0", h_end, off + rec_len)
                    nm = buf[h_end:nul if nul >= 0 else off + rec_len]
                if info_type == 10:             # OLD_DFID_NAME
                    old_dfid, old_name = handle, nm
                else:                           # DFID_NAME, NEW_DFID_NAME, DFID
                    dfid, name = handle, nm
        elif info_type == FAN_EVENT_INFO_TYPE_ERROR:
            error = _ERROR.unpack_from(buf, off + 4)[0]
        off += rec_len
    return _new_event(RawEvent, (mask, pid, dfid, name, old_dfid, old_name, fid, error))


_new_event = tuple.__new__      # skips NamedTuple's Python-level __new__: a third of the cost
# info header, fsid skipped, handle_bytes: one unpack for a whole fid record's head
_REC = struct.Struct("=4x8xI")


_FID_TYPES = frozenset({FAN_EVENT_INFO_TYPE_FID, FAN_EVENT_INFO_TYPE_DFID_NAME,
                        FAN_EVENT_INFO_TYPE_DFID, FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
                        FAN_EVENT_INFO_TYPE_NEW_DFID_NAME})

# ------------------------------------------------------------------ system calls
# dlopen(NULL): the symbols of the running process, which has libc loaded. Not
# ctypes.util.find_library("c"): on Linux that runs `ldconfig -p` in a child process,
# a fork and an exec before the first watch (issue 18: time to watching).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_init.restype = ctypes.c_int
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                                ctypes.c_char_p]
_libc.fanotify_mark.restype = ctypes.c_int
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
_libc.open_by_handle_at.restype = ctypes.c_int
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_libc.name_to_handle_at.restype = ctypes.c_int
MAX_HANDLE_SZ = 128
AT_SYMLINK_FOLLOW = 0x400


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def fanotify_init(flags: int, event_f_flags: int = os.O_RDONLY) -> int:
    """A new notification group's fd. Raises OSError: EPERM without CAP_SYS_ADMIN
    for FAN_UNLIMITED_QUEUE or filesystem marks, EINVAL for flags this kernel lacks
    (FAN_REPORT_TARGET_FID: Linux 5.17), ENOSYS when fanotify is not built in."""
    return _check(_libc.fanotify_init(flags, event_f_flags), "fanotify_init")


def fanotify_mark(fd: int, flags: int, mask: int, path: str | bytes | None,
                  dirfd: int = AT_FDCWD) -> None:
    """Add or remove a mark (fanotify_mark(2)); path None marks what `dirfd` is open on
    (an O_PATH fd is refused: EBADF). Raises OSError (EXDEV: a file system or subvolume
    whose handles cannot be reported, ENODEV/EOPNOTSUPP: no file handles, EINVAL: a
    flag this kernel lacks)."""
    _check(_libc.fanotify_mark(fd, flags, mask, dirfd,
                               None if path is None else os.fsencode(path)), "fanotify_mark")


def name_to_handle(path: str | bytes) -> bytes:
    """The raw `struct file_handle` of `path` (symlinks not followed), in the form event
    records carry, so it can be compared with them. Raises OSError."""
    buf = ctypes.create_string_buffer(8 + MAX_HANDLE_SZ)
    _FH_HEAD.pack_into(buf, 0, MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    _check(_libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), buf, ctypes.byref(mount_id),
                                   0), "name_to_handle_at")
    (hbytes,) = _FH_HEAD.unpack_from(buf, 0)
    return buf.raw[:8 + hbytes]


def open_by_handle(mount_fd: int, handle: bytes, flags: int = O_PATH) -> int:
    """An fd for the object `handle` names. Needs CAP_DAC_READ_SEARCH (EPERM otherwise);
    ESTALE when the object is gone. Raises OSError."""
    return _check(_libc.open_by_handle_at(mount_fd, handle, flags | os.O_CLOEXEC),
                  "open_by_handle_at")


def handle_path(mount_fd: int, handle: bytes) -> str | None:
    """The absolute path of the directory `handle` names right now (as the kernel's
    d_path sees it), or None when it is gone (ESTALE, ENOENT, an unlinked directory).
    Three system calls: open_by_handle_at, readlink of /proc/self/fd/N, close."""
    try:
        fd = open_by_handle(mount_fd, handle)
    except OSError as exc:
        if exc.errno in (errno.ESTALE, errno.ENOENT):
            return None
        raise
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
        # d_path appends " (deleted)" to an unlinked directory's path, but a name may end
        # so too (`Photos (deleted)`): every event below such a directory was dropped as
        # gone (a breaker). An unlinked directory has no links left (rmdir(2))
        if path.endswith(" (deleted)") and os.fstat(fd).st_nlink == 0:
            return None
    finally:
        os.close(fd)
    if not path.startswith("/"):
        return None
    return path


def filesystem_marks(fd: int, *, fdinfo: str | None = None) -> set[str]:
    """The kernel dev_t (hex, as fdinfo prints it) of every filesystem mark the group `fd`
    holds, from /proc/self/fdinfo/FD (proc(5): "fanotify sdev:%x ..."); an empty set when
    it cannot be read. Learnt right after the mark is placed, it names the superblock
    the mark is on, whatever stat(2) says of the root: on btrfs the root's st_dev is its
    subvolume's anonymous device, not the superblock's, and a check against st_dev said
    the mark was gone at every change of the mount table, the source root "lost" and the
    whole tree walked again (a breaker). `fdinfo`: another file to read (tests)."""
    marks: set[str] = set()
    try:
        with open(fdinfo or f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("fanotify sdev:"):
                    marks.add(line.split()[1][len("sdev:"):])
    except OSError:
        pass
    return marks


def filesystem_marked(fd: int, dev: int) -> bool:
    """Whether the group `fd` holds a filesystem mark on the file system of `dev` (an
    st_dev). The kernel drops such a mark with the superblock when the file system is
    unmounted, and reports nothing; one mounted in its place at once can show the same
    st_dev and root inode (a tmpfs: the device number is reused, its root is inode 1), so
    a check of the root's identity misses it. proc(5): /proc/PID/fdinfo/FD of a fanotify
    fd lists its marks, a filesystem mark as "fanotify sdev:%x ..." with the kernel's
    dev_t (major << 20 | minor, not stat's encoding). True when it cannot be read."""
    want = f"fanotify sdev:{(os.major(dev) << 20) | os.minor(dev):x} "
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
            return any(line.startswith(want) for line in fh)
    except OSError:
        return True
