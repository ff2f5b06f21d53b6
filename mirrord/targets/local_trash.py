"""keep_deleted on a local target: keeping by rename or hard link in `<root>/.mirrord/trash/`.

The trash is on the root's own file system, so nothing is ever copied to keep it:
a file about to be overwritten gets a second name there (link(2); the put then
renames a new inode over the original, leaving the kept inode alone), a file or a
whole directory about to be deleted is moved there (one rename(2), however many files
a directory holds). A link or a rename keeps the inode, so the kept mtime (ns) and
mode are the file's own. Layout and names: mirrord.trash.model.

Every path is reached through directory descriptors opened without following a
symlink (mirrord.fsutil), so neither a symlink planted in the mirror nor one swapped
in meanwhile can make keep() move, or restore/fetch read, anything outside the root.
A symlink standing at the kept path itself is kept as the symlink (never followed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
from typing import Iterator, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.fsutil import open_dir_beneath, open_file_beneath
from mirrord.targets.failures import classify_oserror
from mirrord.targets.local_dirs import DirCache
from mirrord.targets.local_stage import copy_to_end, holds_bytes_of
from mirrord.targets.local_trash_list import files_below, kept_inode, list_kept
from mirrord.targets.model import Entry
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.paths import check_relpath
from mirrord.trash.model import (
    DELETED,
    DIR_REMOVED,
    OVERWRITTEN,
    TRASH,
    Kept,
    entry_dir,
    parse_trash_rel,
)

COMINGS = ("file", "dir", "absent")


class LocalTrash:
    """The Target trash methods for LocalTarget (which provides root, fsync, stat, put,
    describe). Contract: mirrord.targets.base.Target.keep and the trash_* methods."""

    root: str
    # The root as resolved at open(): the descriptor walks below (open_dir_beneath) refuse a
    # symlink at every step, the root's own last component included, so a root configured
    # through a symlink (/srv/mirror -> /data/mirror) walked from `root` met ELOOP, which a
    # keep took for "nothing there": the file was then overwritten or removed unkept.
    _real_root: str
    fsync: bool

    def trash_mode(self) -> str:
        return "rename"

    # ------------------------------------------------------------ keep
    def keep(self, path: str, *, stamp: str, coming: str) -> int:
        """Link ('overwritten') or rename ('deleted', 'dir-removed') `path` into
        TRASH/<stamp>.<why>/<path>; returns the bytes kept, 0 when nothing is there, when a
        directory stays a directory, or when that place already holds a kept entry (a retry).
        PermanentError for a bad path or `coming`; OSError classified as put's (naming
        `path`, never the trash place)."""
        check_relpath(path)
        if coming not in COMINGS:
            raise PermanentError(f"keep {path!r}: coming must be one of {COMINGS}, not {coming!r}")
        head, _, name = path.rpartition("/")
        try:
            src = open_dir_beneath(self._real_root, head)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return 0   # no directory there, or a symlink in the way: nothing of the mirror's
            raise classify_oserror(exc, path) from None
        try:
            return self._keep_at(src, head, os.fsencode(name), stamp, coming)
        except OSError as exc:
            if exc.errno == errno.EXDEV:   # link(2) and rename(2) cannot cross a mount
                raise PermanentError(f"{self.describe()}: cannot keep {path!r}: it is on another "
                                     f"mount than {TRASH}/ (keep_deleted keeps by rename "
                                     "or link, never by copy)") from None
            raise classify_oserror(exc, path) from None
        finally:
            os.close(src)

    def keep_many(self, requests: Sequence[tuple[str, str, str]]) -> list[Exception | None]:
        """Target.keep_many. The parents the keeper asks first (coming 'dir') are looked at
        through one descriptor per directory (DirCache): a directory or nothing there costs one
        lstat, not a keep() walk from the root (issue 17). Anything else goes to keep(), and
        the descriptors are dropped first (a keep may move a directory into the trash)."""
        out: list[Exception | None] = []
        dirs: DirCache | None = DirCache(self._real_root)
        try:
            for path, stamp, coming in requests:
                try:
                    check_relpath(path)
                    if coming != "dir" or dirs is None or not dirs.dir_or_nothing(path):
                        if dirs is not None:
                            dirs.close()
                            dirs = None
                        self.keep(path, stamp=stamp, coming=coming)
                    out.append(None)
                except (PermanentError, NotFound, RetryableError) as exc:
                    out.append(exc)
                except OSError as exc:
                    out.append(classify_oserror(exc, path))
        finally:
            if dirs is not None:
                dirs.close()
        return out

    def _keep_in_put(self, path: str, parent: int, stamp: str, staged: bytes,
                     staged_dir: int | None, new: os.stat_result) -> None:
        """A put's own keep (Features.keep_by_condition), called by Staging.install once the
        temp file `staged` (in `staged_dir`; None: a path) holds what will be installed
        (`new`: its fstat), before the rename: one lstat of `path` in its directory
        `parent` (a descriptor from the put's parent walk), and keep(path, coming='file')
        unless the bytes there are the ones the put installs: a regular file of the same
        size and bytes as the staged file, whatever its mtime or mode (the put sets the
        new ones; nothing is destroyed). Size and mtime alone are no proof: a file
        rewritten in place with its length kept and its mtime put back (ransomware, a
        script restoring timestamps, `reconcile --checksum` repairing such a change)
        replaced the only good copy and kept nothing (a review, helper-155). Nor is the
        mtime needed: coreutils `touch` seen live (its open for writing reads as a write)
        sent the same bytes under a new mtime, and a duplicate of them was kept (a trial,
        helper-161). The staged bytes, not the source's: a source rewritten between a
        comparison and the copy would pass for the bytes there (helper-159). Bytes are
        read only when the sizes match, up to the first difference. A file where a parent
        goes was kept as a parent 'dir' by the walk first."""
        name = os.fsencode(path.rpartition("/")[2])
        try:
            st = os.lstat(name, dir_fd=parent)
        except (FileNotFoundError, NotADirectoryError):
            return
        if not (stat_mod.S_ISREG(st.st_mode) and st.st_size == new.st_size
                and holds_bytes_of(name, parent, staged, staged_dir)):
            self.keep(path, stamp=stamp, coming="file")

    def _keep_at(self, src: int, head: str, name: bytes, stamp: str, coming: str) -> int:
        try:
            st = os.lstat(name, dir_fd=src)
        except FileNotFoundError:
            return 0
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        if is_dir and coming == "dir":
            return 0
        if not is_dir and not stat_mod.S_ISREG(st.st_mode):
            return 0   # a symlink or FIFO planted in the mirror is no version of a file (as rsync's)
        why = DIR_REMOVED if is_dir else OVERWRITTEN if coming == "file" else DELETED
        if (why == OVERWRITTEN and stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1
                and kept_inode(self._real_root, _joined(head, name), st)):
            # already linked into the trash by an earlier try of this overwrite whose put did
            # not happen (a put replaces the inode): kept, under whatever stamp that try
            # had. A kill -9 between keep and put, then a restart whose catch-up records
            # the change again with a new time, would otherwise keep it twice. A second link
            # elsewhere (an operator's snapshot of the mirror) is no such proof: kept.
            return 0
        dst = self._trash_parent(stamp, why, head)
        try:
            return self._move_in(src, dst, name, st, why)
        except OSError:
            self._prune(entry_dir(stamp, why), head)   # leave no empty place behind
            raise
        finally:
            os.close(dst)

    def _move_in(self, src: int, dst: int, name: bytes, st: os.stat_result, why: str) -> int:
        """Link or rename `name` from directory `src` into `dst`; the bytes newly kept."""
        if why == OVERWRITTEN:
            try:   # linkat without AT_SYMLINK_FOLLOW: a symlink is linked as itself
                os.link(name, name, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
            except FileExistsError:
                return 0   # kept by an earlier try of this change: never replaced
        else:
            # rename(2) would replace an existing file or empty directory: check first (one
            # worker per path, its ancestors and what is below it at a time: the journal's
            # barriers.InFlight, so nothing races this); the delete that follows
            # removes the original, whose bytes are kept already
            if _exists(name, dst):
                return 0
            os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)
        if self.fsync:
            os.fsync(dst)
            if why != OVERWRITTEN:
                os.fsync(src)
        if not stat_mod.S_ISDIR(st.st_mode):
            return st.st_size
        return sum(s.st_size for _, s in files_below(_fd_path(dst) + b"/" + name, b""))

    def _trash_parent(self, stamp: str, why: str, head: str) -> int:
        """A descriptor of TRASH/<stamp>.<why>/<head>, created where missing."""
        rel = f"{TRASH}/{entry_dir(stamp, why)}" + (f"/{head}" if head else "")
        # made one component at a time, never through a symlink (one planted at .mirrord/trash
        # had the keeps made outside the root): ELOOP/ENOTDIR then, and nothing is kept
        return open_dir_beneath(self._real_root, rel, create=True)

    # ------------------------------------------------------------ list
    def trash_list(self, prefix: str = "", *, since: float | None = None) -> Iterator[Kept]:
        """One Kept per kept file (or symlink) whose original path is `prefix` or below it;
        a directory prefix matches everything below it; none stamped before `since`
        (Target.trash_list). Streams; any order (local_trash_list.list_kept)."""
        return list_kept(self.root, self._real_root, prefix, since=since)

    # ------------------------------------------------------------ purge
    def trash_purge(self, kept: Sequence[Kept]) -> None:
        """Unlink each kept file, then every directory it leaves empty up to and including
        its '<stamp>.<why>' directory. Absent ones are skipped. OSError classified."""
        for k in kept:
            entry, path = _split_key(k)
            head, _, name = path.rpartition("/")
            try:
                fd = open_dir_beneath(self._real_root, f"{TRASH}/{entry}/{head}".rstrip("/"))
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue
                raise classify_oserror(exc, k.key) from None
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.fsencode(name), dir_fd=fd)
            except OSError as exc:
                raise classify_oserror(exc, k.key) from None
            finally:
                os.close(fd)
            self._prune(entry, head)

    def _prune(self, entry: str, head: str) -> None:
        """rmdir TRASH/<entry>/<head> and its parents up to TRASH/<entry>, while empty."""
        parts = [entry] + (head.split("/") if head else [])
        while parts:   # each rmdir in its parent, reached by descriptor (no symlink followed)
            try:
                fd = open_dir_beneath(self._real_root, "/".join([TRASH] + parts[:-1]))
                try:
                    os.rmdir(os.fsencode(parts[-1]), dir_fd=fd)
                finally:
                    os.close(fd)
            except OSError:
                return   # not empty (other kept files), or already gone
            parts.pop()

    # ------------------------------------------------------------ restore, fetch
    def trash_restore(self, kept: Kept, path: str) -> Entry:
        """Stage a copy of the kept file in .mirrord/tmp and rename it onto `path` (put), with
        the kept mtime (ns) and mode; the kept file stays. NotFound when it is no longer
        kept; PermanentError when it is not a regular file or a directory stands at `path`."""
        check_relpath(path)
        fd, st = self._open_kept(kept)
        try:
            here = self.stat(path)
            if here is not None and here.is_dir:
                raise PermanentError(f"{self.describe()}: cannot restore {kept.path!r} onto "
                                     f"the directory {path!r}")
            ns = kept.mtime_ns or st.st_mtime_ns
            mode = stat_mod.S_IMODE(st.st_mode) if kept.mode is None else kept.mode
            return self.put(path, f"/proc/self/fd/{fd}", size=st.st_size,
                            mtime=ns_to_float(ns), mtime_ns=ns, mode=mode)
        finally:
            os.close(fd)

    def trash_fetch(self, kept: Kept, local: str) -> None:
        """Copy the kept bytes into `local` (created or truncated, mode 0666 less the
        umask, as open(2) makes it). NotFound / PermanentError as trash_restore; OSError
        writing `local` is raised as it is (a local file), EIO for a write(2) that takes
        nothing (local_stage.copy_to_end: the put's own loop, never asked again for ever)."""
        fd, _ = self._open_kept(kept)
        try:
            out = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                copy_to_end(fd, out)
            finally:
                os.close(out)
        finally:
            os.close(fd)

    def _open_kept(self, kept: Kept) -> tuple[int, os.stat_result]:
        """(descriptor, fstat) of the regular file `kept` names, opened beneath the root."""
        entry, path = _split_key(kept)
        try:
            fd = open_file_beneath(self._real_root, f"{TRASH}/{entry}/{path}")
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound(f"{kept.key!r} is not kept on {self.describe()}") from None
            if exc.errno == errno.ELOOP:
                raise PermanentError(f"{kept.key!r} is a symlink, not a kept file") from None
            raise classify_oserror(exc, kept.key) from None
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            raise PermanentError(f"{kept.key!r} on {self.describe()} is not a regular file")
        return fd, st


def _split_key(kept: Kept) -> tuple[str, str]:
    """('<stamp>.<why>', path) of a Kept's key; PermanentError when it is not a trash key."""
    rel = kept.key[len(TRASH) + 1:] if kept.key.startswith(TRASH + "/") else ""
    parsed = parse_trash_rel(rel)
    if parsed is None or any(p in ("", ".", "..") for p in parsed[2].split("/")):
        raise PermanentError(f"{kept.key!r} is not a place in the trash ({TRASH}/)")
    return rel.partition("/")[0], parsed[2]


def _exists(name: bytes, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _fd_path(fd: int) -> bytes:
    """The path the kernel has for an open directory (it follows renames)."""
    return os.fsencode(os.readlink(f"/proc/self/fd/{fd}"))


def _joined(head: str, name: bytes) -> str:
    return f"{head}/{os.fsdecode(name)}" if head else os.fsdecode(name)
