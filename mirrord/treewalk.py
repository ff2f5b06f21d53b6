"""Walking a source tree in the one order every listing uses.

Every listing mirrord merges (source walk, state database, target listings)
is sorted by the bytes of the relative path. A depth-first walk produces that
order when siblings are sorted by name, with directories keyed as name + '/'.
Walks never follow symlinks: a symlink is not a file to mirror.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_mod
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Iterator

from mirrord.exclude import excluded_entry
from mirrord.targets.model import Entry


def path_key(path: str) -> bytes:
    """Sort key of a relative path: its bytes (so SQLite BLOB order and S3 key order agree)."""
    return os.fsencode(path)


def entry_key(entry: Entry) -> bytes:
    """Sort key of a listing entry: a directory sorts as 'name/', just before its contents."""
    key = os.fsencode(entry.path)
    return key + b"/" if entry.is_dir else key


@dataclass
class WalkErrors:
    """Directories a walk could not read: a reason to never delete on this pass."""

    unreadable: list[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.unreadable)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def walk(root: str, *, prefix: str = "", include_dirs: bool = True,
         excluded: Callable[[str], bool] | None = None,
         errors: WalkErrors | None = None, below: str = "",
         links: Callable[[str, os.stat_result], None] | None = None,
         others: bool = False) -> Iterator[Entry]:
    """Yield files (and directories) below `root` in path_key order, streaming.

    `prefix` is prepended to every yielded path (a relative sub-path). `below`
    (a relative directory path) walks only root/below, reached without following
    a symlink in any component, yielding paths that start with `below/`; the
    directory itself is not yielded, and its absence is an unreadable `below`. Entries
    for which `excluded(relpath)` is true are skipped with everything below.
    Unreadable directories are recorded in `errors` (and skipped), never raised,
    so the caller can decide that this pass must not delete anything.
    Each Entry carries the exact `mtime_ns` and the permission bits `mode`
    (stat.S_IMODE) of the lstat the walk makes anyway: no extra system call.
    `links(relpath, st)` is called for each regular file with more than one link
    (mirrord.hardlinks.LinkIndex.learn), before it is yielded. `others`: also yield
    every entry that is neither a file nor a directory (symlinks, FIFOs, sockets,
    devices; never followed), its kind in Entry.other: a target's listing, so a
    reconcile removes what was planted in a mirror (a source walk never mirrors one).

    Each directory is opened once and its entries are stat'ed relative to it
    (fstatat), not by full path: start-up and reconcile stat every file, and a
    path lookup per component was a third of the walk. One loop with a stack
    of open levels, not recursive generators, so an entry is yielded once, not
    passed up through every level above it. At most one descriptor per level.
    """
    stack: list[tuple[int, str, Iterator[tuple[bytes, os.DirEntry]]]] = []
    try:
        level = _open_start(os.fsencode(root), below, prefix, errors)
        if level is None:
            return
        stack.append(level)
        while stack:
            fd, rel, children = stack[-1]
            for key, entry in children:
                relpath = f"{rel}/{entry.name}" if rel else entry.name
                if excluded is not None and excluded_entry(excluded, relpath, key[-1:] == b"/"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished between listing and stat
                if stat_mod.S_ISDIR(st.st_mode):
                    if include_dirs:
                        yield Entry(relpath, 0, st.st_mtime, is_dir=True, mtime_ns=st.st_mtime_ns,
                                    mode=stat_mod.S_IMODE(st.st_mode))
                    level = _open_level(entry.name, fd, relpath, errors)
                    if level is not None:
                        stack.append(level)
                        break  # descend; this level's iterator resumes afterwards
                elif stat_mod.S_ISREG(st.st_mode):
                    if links is not None and st.st_nlink > 1:
                        links(relpath, st)
                    yield Entry(relpath, st.st_size, st.st_mtime, mtime_ns=st.st_mtime_ns,
                                mode=stat_mod.S_IMODE(st.st_mode), ctime_ns=st.st_ctime_ns)
                elif others:
                    yield Entry(relpath, 0, st.st_mtime, mtime_ns=st.st_mtime_ns,
                                mode=stat_mod.S_IMODE(st.st_mode), other=other_kind(st.st_mode))
            else:
                os.close(fd)
                stack.pop()
    finally:
        for fd, _rel, _children in stack:
            os.close(fd)


def _open_start(root: bytes, below: str, prefix: str,
                errors: WalkErrors | None) -> tuple[int, str, Iterator[tuple[bytes, os.DirEntry]]] | None:
    """The first level of a walk: root itself, or root/below reached component by component
    with O_NOFOLLOW (a symlink planted in the path must not take the walk elsewhere)."""
    if not below:
        return _open_level(root, None, prefix, errors)
    rel = f"{prefix}/{below}" if prefix else below
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        _unreadable(errors, rel, exc)
        return None
    try:
        for part in below.split("/"):
            if part in ("", ".", ".."):   # never climb out of root
                raise OSError(errno.EINVAL, f"unsafe component {part!r}")
            nfd = os.open(os.fsencode(part), _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return _open_level(".", fd, rel, errors)
    except OSError as exc:
        _unreadable(errors, rel, exc)
        return None
    finally:
        os.close(fd)


def _open_level(name: str | bytes, parent_fd: int | None, rel: str,
                errors: WalkErrors | None) -> tuple[int, str, Iterator[tuple[bytes, os.DirEntry]]] | None:
    """Open a directory (never through a symlink below the root) and list it sorted."""
    try:
        if parent_fd is None:
            fd = os.open(name, _DIR_FLAGS)
        else:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        _unreadable(errors, rel, exc)
        return None
    try:
        with os.scandir(fd) as it:   # names are str (surrogateescape), stat is fstatat(fd)
            children = [(_child_key(e), e) for e in it]
    except OSError as exc:
        os.close(fd)
        _unreadable(errors, rel, exc)
        return None
    children.sort(key=itemgetter(0))
    return fd, rel, iter(children)


def _unreadable(errors: WalkErrors | None, rel: str, exc: OSError) -> None:
    if errors is not None:
        errors.unreadable.append((rel or ".", exc.strerror or str(exc)))


_OTHER_KINDS = ((stat_mod.S_ISLNK, "symlink"), (stat_mod.S_ISFIFO, "fifo"),
                (stat_mod.S_ISSOCK, "socket"), (stat_mod.S_ISCHR, "character device"),
                (stat_mod.S_ISBLK, "block device"))


def other_kind(mode: int) -> str:
    """What an entry that is neither a file nor a directory is (st_mode), for Entry.other."""
    return next((name for test, name in _OTHER_KINDS if test(mode)), "special file")


def _child_key(entry: os.DirEntry) -> bytes:
    name = os.fsencode(entry.name)
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_dir = False
    return name + b"/" if is_dir else name


def file_digest(path: str | bytes | int, chunk: int = 1 << 20) -> str:
    """SHA-256 of a local file (a path, or an open descriptor, which is closed), hex; the
    digest every target's checksum() is compared with."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
