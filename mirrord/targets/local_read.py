"""Looking at a local target's mirror without changing it: list, stat, read, checksum.

Every look starts from the root as resolved at open() and reaches its path by
descriptor, following no symlink (mirrord.targets.local_parents; treewalk.walk's
`below`), so a symlink planted in the mirror never shows what lies outside the root:
a symlink at a path or at a parent reads as nothing there. The root's `.mirrord/`
(mirrord's own area) is never listed. OSError is classified (targets.failures).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mirrord import filekinds
from mirrord.errors import PermanentError
from mirrord.targets import local_parents as beneath
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import Entry
from mirrord.targets.paths import META_DIR, check_relpath
from mirrord.treewalk import WalkErrors, file_digest, walk

if TYPE_CHECKING:
    from mirrord.targets.local import LocalTarget


def entry_of(path: str, st: os.stat_result) -> Entry | None:
    """The Entry for `path` from its stat (mode, ns mtime); None for what is neither a
    directory nor a regular file."""
    mode = stat_mod.S_IMODE(st.st_mode)
    if stat_mod.S_ISDIR(st.st_mode):
        return Entry(path, 0, st.st_mtime, is_dir=True, mtime_ns=st.st_mtime_ns, mode=mode)
    if stat_mod.S_ISREG(st.st_mode):
        return Entry(path, st.st_size, st.st_mtime, mtime_ns=st.st_mtime_ns, mode=mode)
    return None


def list_entries(t: LocalTarget, prefix: str = "") -> Iterator[Entry]:
    """Target.list; below `prefix` the walk starts from the root and reaches the prefix
    without following a symlink (treewalk.walk's `below`): by path, one swapped in at
    the prefix after its stat listed what lay outside the root. PermanentError when a
    directory cannot be read."""
    prefix = prefix.strip("/")
    if prefix:
        st = t.stat(prefix)
        if st is None:
            return
        if not st.is_dir:
            yield st
            return
        yield st
    errors = WalkErrors([])
    # the walk's entries carry mode and mtime_ns from the lstat it makes anyway
    # symlinks, FIFOs and the like too (Entry.other): planted there, a reconcile removes them
    yield from walk(t._real_root, below=prefix, excluded=_own, errors=errors, others=True)
    if errors:
        where, why = errors.unreadable[0]
        if where == prefix and t.stat(prefix) is None:
            return   # the prefix went (or is a symlink now) since its stat: nothing there
        raise PermanentError(f"{t.describe()}: cannot list {where!r}: {why}")


def _own(relpath: str) -> bool:
    """Only mirrord's area at the root is not listed; every other name is a user's."""
    return relpath == META_DIR


def stat_entry(real_root: str, path: str) -> Entry | None:
    """Target.stat below `real_root`: None when absent (or a symlink on the way)."""
    try:
        st = beneath.lstat_at(real_root, check_relpath(path))
    except OSError as exc:
        raise classify_oserror(exc, path) from None
    return None if st is None else entry_of(path, st)


def read_file(real_root: str, rel: str, limit: int | None = None) -> bytes | None:
    """The bytes of the regular file at `rel`, or None (absent, not a regular file, a
    symlink at it or at a parent: never followed; local_parents.open_file). OSError
    classified; PermanentError when it holds more than `limit` bytes (None: no limit)."""
    try:
        fd = beneath.open_file(real_root, rel)
        if fd is None:
            return None
        with open(fd, "rb") as fh:
            data = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise PermanentError(f"{rel!r} holds more than {limit} bytes: not read")
        return data
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise classify_oserror(exc, rel) from None


def kind_below(real_root: str, rel: str) -> tuple[str, str] | None:
    """Target.meta_kind for `rel` below `real_root`: (where, what) for the first component
    that is no directory on the way, or `rel` itself when it is no regular file; None
    when `rel` is a regular file or absent. lstat only, one component at a time from the
    root (local_parents.lstat_at): no symlink is followed, nothing is opened (a FIFO never
    blocks). A symlink is named with where it points (readlink, not followed). OSError
    classified."""
    parts = rel.split("/")
    try:
        for i in range(len(parts)):
            where = "/".join(parts[:i + 1])
            st = beneath.lstat_at(real_root, where)
            if st is None:
                return None
            expected = stat_mod.S_ISREG if i == len(parts) - 1 else stat_mod.S_ISDIR
            if not expected(st.st_mode):
                return where, _kind_words(real_root, where, st.st_mode)
    except OSError as exc:
        raise classify_oserror(exc, rel) from None
    return None


def _kind_words(real_root: str, where: str, mode: int) -> str:
    """`where`'s kind in words; a symlink with where it points (at most 200 characters)."""
    what = filekinds.kind(mode)
    if not stat_mod.S_ISLNK(mode):
        return what
    head, _, name = where.rpartition("/")
    parent = beneath.find_dir(real_root, head)
    if parent is None:
        return what
    try:
        to = os.fsdecode(os.readlink(os.fsencode(name), dir_fd=parent))
    except OSError:   # replaced meanwhile: its kind is what was seen
        return what
    finally:
        os.close(parent)
    return f"{what} to {to[:200]!r}"


def checksum(real_root: str, path: str) -> str | None:
    """Target.checksum: the file's digest (treewalk.file_digest), None when absent."""
    try:
        fd = beneath.open_file(real_root, check_relpath(path))
        return None if fd is None else file_digest(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise classify_oserror(exc, path) from None
