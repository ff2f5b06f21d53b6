"""Listing the local target's trash: what is kept below `.mirrord/trash/<stamp>.<why>/`,
reached by descriptor from the resolved root so that no symlink planted there (at the
trash itself, at an entry, at a prefix) is followed (mirrord.targets.local_trash keeps,
purges and restores; this module only reads)."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Iterator

from mirrord.fsutil import open_dir_beneath
from mirrord.targets.failures import classify_oserror
from mirrord.targets.paths import check_relpath
from mirrord.trash.model import OVERWRITTEN, TRASH, Kept, parse_entry_dir, since_stamp


def list_kept(root: str, real_root: str, prefix: str = "", *,
              since: float | None = None) -> Iterator[Kept]:
    """One Kept per kept file (or symlink) in the local target's trash below `root` (its
    resolved path `real_root`) whose original path is `prefix` or below it; a directory
    prefix matches everything below it. `since` (seconds since the epoch, None: no bound):
    a '<stamp>.<why>' directory stamped earlier (trash.model.since_stamp) is skipped by
    its name, nothing below it opened. Streams; any order. PermanentError for a bad
    prefix; OSError classified as the target's; ValueError as since_stamp."""
    prefix = prefix.strip("/")
    bound = since_stamp(since)
    if prefix:
        check_relpath(prefix)
    base = os.path.join(os.fsencode(root), os.fsencode(TRASH))
    try:   # by descriptor: a symlink planted at .mirrord/trash lists nothing
        fd = open_dir_beneath(real_root, TRASH)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return
        raise classify_oserror(exc) from None
    try:
        with os.scandir(fd) as it:
            entries = sorted(os.fsencode(e.name) for e in it
                             if e.is_dir(follow_symlinks=False))
    except OSError as exc:
        raise classify_oserror(exc) from None
    finally:
        os.close(fd)
    for entry in entries:
        parsed = parse_entry_dir(os.fsdecode(entry))
        if parsed is not None and (bound is None or parsed[0] >= bound):
            yield from _list_entry(real_root, base, entry, parsed, prefix)

def _list_entry(real_root: str, base: bytes, entry: bytes, parsed: tuple[str, str],
                prefix: str) -> Iterator[Kept]:
    stamp, why = parsed
    head, _, name = prefix.rpartition("/")
    top = os.path.join(base, entry)
    try:   # reach the prefix without following a symlink (the entry's own included)
        fd = open_dir_beneath(real_root,
                              "/".join(filter(None, (TRASH, os.fsdecode(entry), head))))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return
        raise classify_oserror(exc) from None
    try:
        st = os.lstat(os.fsencode(name), dir_fd=fd) if name else os.fstat(fd)
    except FileNotFoundError:
        return
    finally:
        os.close(fd)
    where = os.fsencode(prefix)
    found = (files_below(os.path.join(top, where) if prefix else top, where)
             if stat_mod.S_ISDIR(st.st_mode) else [(where, st)])
    for rel, fst in found:
        path = os.fsdecode(rel)
        mode = stat_mod.S_IMODE(fst.st_mode)
        yield Kept(path, stamp, why, fst.st_size, fst.st_mtime_ns,
                   f"{TRASH}/{os.fsdecode(entry)}/{path}", mode)


def files_below(top: bytes, rel: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path, lstat) of every non-directory below `top`, `rel` prefixed; symlinked
    directories are not entered."""
    with os.scandir(top) as it:
        entries = list(it)
    for e in entries:
        sub = rel + b"/" + e.name if rel else e.name
        if e.is_dir(follow_symlinks=False):
            yield from files_below(e.path, sub)
        else:
            yield sub, e.stat(follow_symlinks=False)


def kept_inode(real_root: str, path: str, st: os.stat_result) -> bool:
    """Whether the inode `st` (an lstat of the mirror's file at `path`) already has a name
    at `path` in some '<stamp>.overwritten' entry of the trash: kept by an earlier try of
    an overwrite whose put did not happen (kill -9 between keep and put), which a restart
    must not keep again under a new stamp. Asked only of a file with more than one link,
    since such a file's other link may as well be an operator's (a `cp -al` or rsnapshot
    `--link-dest` snapshot of the mirror: a review, helper-155), which says nothing of the
    trash. One lstat per overwritten entry; an unreadable trash answers False (keep)."""
    try:
        fd = open_dir_beneath(real_root, TRASH)
    except OSError:
        return False
    try:
        with os.scandir(fd) as it:
            entries = [e.name for e in it if e.name.endswith("." + OVERWRITTEN)
                       and e.is_dir(follow_symlinks=False)]
        for entry in entries:
            try:
                kept = os.lstat(f"{entry}/{path}", dir_fd=fd)
            except OSError:
                continue
            if (kept.st_dev, kept.st_ino) == (st.st_dev, st.st_ino):
                return True
        return False
    except OSError:
        return False
    finally:
        os.close(fd)
