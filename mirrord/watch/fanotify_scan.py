"""What the fanotify watcher reports by looking at the tree itself, not at an event, and
when a new directory must be looked at (NewDirectories).

fanotify names a directory by handle, and the handle is turned into a path when
the event is read, not when it happened; a directory moved in arrives with no
events for what it already holds. These helpers say what stands on disk now, as
FsEvents, for the cases where that is the only truth to be had.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Callable

from mirrord.exclude import excluded_entry
from mirrord.fsutil import filesystem_type
from mirrord.watch.events import FsEvent

# File systems where a directory comes into being empty (mkdir(2)) or by a rename, never
# filled in one step: a directory made there needs no scan, what is made in it has events
# of its own. Elsewhere it may: a btrfs snapshot (btrfs_mksubvol() in fs/btrfs/ioctl.c
# ends with one fsnotify_mkdir(): one FAN_CREATE, nothing for what it holds; a review,
# helper-141), bcachefs's the same, and an unknown type (a btrfs subvolume's anonymous
# device: fsutil.filesystem_type says None) is assumed to.
MADE_EMPTY = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs", "f2fs", "jfs"})


def made_dirs_start_empty(root: str) -> bool:
    """Whether every directory made on `root`'s file system starts empty (MADE_EMPTY)."""
    return filesystem_type(root) in MADE_EMPTY


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def tmpfile_name(root: str, rel: str) -> bool:
    """True for the name the kernel gives an open(O_TMPFILE) file's dentry ("#" and its
    inode number: d_tmpfile() in fs/dcache.c) when nothing stands at it. The file's
    writes and close are reported under that name, even after linkat(2) gave it a real
    one, so an event for it ships nothing."""
    name = rel.rsplit("/", 1)[-1]
    return (name[:1] == "#" and name[1:].isdigit()
            and not os.path.lexists(os.path.join(root, rel)))


def as_it_stands(root: str, rel: str, is_dir: bool) -> FsEvent:
    """The event that ships `rel` as it is on disk now: a directory is rescanned (compared
    with what was shipped), anything else written, a name with nothing at it deleted
    (`is_dir`: what stood there was a directory, so its tree goes)."""
    try:
        st = os.lstat(os.path.join(root, rel))
    except OSError:
        return FsEvent("rmtree", rel, is_dir=True) if is_dir else FsEvent("delete", rel)
    if stat_mod.S_ISDIR(st.st_mode):
        return FsEvent("rescan", rel, is_dir=True)
    return FsEvent("write", rel)


def dir_events(root: str, excluded: Callable[[str], bool], rel: str) -> list[FsEvent]:
    """A mkdir for the directory `rel` and for every directory below it, a write for every
    regular file (symlinks, devices and excluded paths left out, never followed): what a
    directory moved in, or filled before its FAN_CREATE was read, already holds."""
    out: list[FsEvent] = []
    stack = [rel]
    while stack:
        cur = stack.pop()
        out.append(FsEvent("mkdir", cur, is_dir=True))
        try:
            with os.scandir(os.fsencode(os.path.join(root, cur))) as it:
                entries = list(it)
        except OSError:
            continue    # gone again, or replaced by a file: its own events follow
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            child = join(cur, os.fsdecode(entry.name))
            if not (is_dir or is_file) or excluded_entry(excluded, child, is_dir):
                continue
            if is_dir:
                stack.append(child)
            else:
                out.append(FsEvent("write", child))
    return out


class NewDirectories:
    """`_made_dir` and `_new_dir` for FanotifyWatcher, which owns `root`, `excluded`,
    `paths` (fanotify_paths.DirPaths) and `made_empty` (made_dirs_start_empty)."""

    def _made_dir(self, rel: str, fid: bytes | None, out: list[FsEvent]) -> None:
        """A directory made in the tree (FAN_CREATE): a mkdir alone where directories
        start empty (`made_empty`: MADE_EMPTY); a scan there reported each file of a `cp -r` two
        or three times, 15% of the daemon's CPU on the S3 burst. Scanned elsewhere."""
        if not self.made_empty:
            self._new_dir(rel, fid, out)
            return
        if fid is not None:
            self.paths.remember(fid, rel)
        out.append(FsEvent("mkdir", rel, is_dir=True))

    def _new_dir(self, rel: str, fid: bytes | None, out: list[FsEvent]) -> None:
        """Report a directory that entered the tree by a rename and everything already in
        it: what it holds had its events elsewhere, or none reached this process."""
        if fid is not None:
            self.paths.remember(fid, rel)
        out.extend(dir_events(self.root, self.excluded, rel))
