"""A directory target: local disk or an NFS mount.

Writes are atomic: the bytes go to a temp file in the target's own area
`<root>/.mirrord/tmp/`, are fsynced and renamed into place (then the directory
is fsynced), so no user file name can ever collide with a temp file and the
listing hides nothing but `.mirrord/` at the root. Nanosecond mtimes and
permission bits are kept (set_meta changes just those, on the same inode), and
nothing is ever written outside the root: paths are checked, and a put, mkdir or
move reaches its directory by descriptor from the root, following no symlink
(mirrord.targets.local_parents; a symlink or file in the way is replaced). List,
stat, read and checksum look without changing anything (mirrord.targets.local_read).
A full disk or a vanished mount is retryable; everything else permanent.

Staging (mirrord.targets.local_stage) is per file system: a destination on
another mount below the root gets its temp file beside it, recorded first by a
marker under `.mirrord/tmp/`. open() sweeps `.mirrord/tmp/` (and the files its
markers name) when no other mirrord process has this target open
(mirrord.targets.sweep), so a crash mid-copy leaves nothing behind.
open(readonly=True) (the commands that only look) makes, sweeps and locks nothing.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat as stat_mod
from typing import Iterator

from mirrord.config import TargetConfig
from mirrord.errors import MirrorRootMissing, NotFound, PermanentError
from mirrord.logsetup import kv
from mirrord.targets import local_parents as beneath
from mirrord.targets import local_read
from mirrord.targets.base import Target
from mirrord.targets.failures import classify_oserror
from mirrord.targets.local_read import entry_of
from mirrord.targets.local_stage import Staging
from mirrord.targets.local_trash import LocalTrash
from mirrord.targets.model import Entry, Features
from mirrord.targets.paths import META_DIR, META_LIMIT, check_relpath
from mirrord.targets.root_check import RootIdentity, holds_nothing, unmarked
from mirrord.targets.sweep import OpenLock


log = logging.getLogger("mirrord.targets")

class LocalTarget(LocalTrash, Target):   # keep / trash_*: mirrord.targets.local_trash
    type = "local"
    # utimensat keeps nanoseconds on ext4/xfs/tmpfs; the 1 us tolerance is for NFS mounts.
    # keep_by_condition: a put keeps what it replaces itself (put(keep_stamp=), issue 17),
    # and keeps_parents_in_put: the files in its parents' way too
    features = Features(server_side_move=True, directories=True, mtime_precision=1e-6,
                        batch_size=8, keeps_mode=True, cheap_stat=True, keep_by_condition=True,
                        keeps_parents_in_put=True, guards_root=True)

    def __init__(self, name: str, root: str | os.PathLike[str], *, fsync: bool = True):
        super().__init__(name)
        self.root = os.path.abspath(os.fspath(root))
        self._real_root = os.path.realpath(self.root)
        self.fsync = fsync
        self._staging = Staging(self.root, fsync=fsync)
        self._open_lock = OpenLock(f"local:{self._real_root}", os.path.join(self.root, META_DIR))
        self._root_id = RootIdentity(self.describe())   # learnt by a writable open()

    @classmethod
    def from_config(cls, cfg: TargetConfig) -> "LocalTarget":
        assert cfg.local is not None
        return cls(cfg.name, cfg.local.path, fsync=cfg.local.fsync)

    def describe(self) -> str:
        return f"local:{self.name}({self.root})"

    def open(self, *, readonly: bool = False) -> None:
        """Create the root (with a WARNING line: a mistyped path must not pass unseen) and
        `.mirrord/tmp/`; when no other mirrord process has this target open, remove what an
        interrupted put left there (sweep). `readonly` (Target.open): only check that the
        root is a directory; nothing is made, swept or locked. PermanentError when it
        does not exist (a mirror host whose mount is missing) or is no directory."""
        if readonly:
            self._open_readonly()
            return
        try:
            missing = not os.path.lexists(self.root)
            self.found_empty = missing or (os.path.isdir(self.root) and holds_nothing(self.root))
            if missing:   # a typo in the path makes a new tree: say so
                os.makedirs(self.root, exist_ok=True)
                log.warning(kv(msg="local target root did not exist: created it", target=self.name,
                               path=os.fsdecode(self.root)))
            if not os.path.isdir(self.root):
                raise PermanentError(f"{self.describe()}: root is not a directory")
            self._real_root = os.path.realpath(self.root)
        except OSError as exc:
            raise classify_oserror(exc) from None
        self._root_id.learn(self._real_root)   # every change checks it (root_check)
        self._staging.root_known = True          # ... and nothing makes the root again
        try:
            self._staging.prepare()
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise classify_oserror(exc) from None
            return   # read-only to us (failover reading the heartbeat): nothing to sweep
        try:
            self._root_id.leave_witness()   # dropped by expect_mirror in a bare mount point
            self._open_lock.hold(lambda: (self._staging.sweep(), self._root_id.sweep_witnesses()))
        except OSError as exc:
            raise classify_oserror(exc) from None

    def expect_mirror(self, why: str) -> None:
        """Target.expect_mirror: a root found missing or empty at open is written to only
        once it holds something (root_check.RootIdentity.await_content)."""
        if self.found_empty:
            self._root_id.await_content(why)

    def _open_readonly(self) -> None:
        try:
            st = os.stat(self.root)   # follows a root configured through a symlink
        except FileNotFoundError:
            raise MirrorRootMissing(f"{self.describe()}: the mirror root {os.fsdecode(self.root)} "
                                 f"does not exist (is its file system mounted?)") from None
        except OSError as exc:
            raise classify_oserror(exc) from None
        if not stat_mod.S_ISDIR(st.st_mode):   # a file where the mount point was: no mirror
            # MirrorRootMissing, as a missing root: failover refuses it unless forced; a
            # PermanentError was only a warning there, and /ready said 200 (a breaker)
            raise MirrorRootMissing(f"{self.describe()}: the mirror root "
                                    f"{os.fsdecode(self.root)} is not a directory")
        self.root_empty = holds_nothing(self.root)
        self.root_unmarked = not self.root_empty and unmarked(self.root)
        self._real_root = os.path.realpath(self.root)

    def close(self) -> None:
        self._open_lock.release()

    # ------------------------------------------------------------ helpers
    def _open_parent(self, path: str, keep_stamp: str | None = None) -> int:
        """An O_PATH descriptor of the directory that `path` (checked, relative) goes in,
        its components made where missing and a file or symlink in the way replaced, none
        ever followed (local_parents.open_parent), from the root as resolved at open(). With
        `keep_stamp` (a marked put: Features.keeps_parents_in_put) what is replaced is kept
        first, as keeper.keep_items would ask ('dir' coming: `rm d; mkdir d; echo > d/z`),
        where the walk finds it: no keep_many ahead of the batch. The caller closes it."""
        keep = None
        if keep_stamp is not None:
            def keep(rel: str) -> None:
                self.keep(rel, stamp=keep_stamp, coming="dir")
        return beneath.open_parent(self._real_root, path.rpartition("/")[0], keep)

    # ------------------------------------------------------------ looking (local_read.py)
    def list(self, prefix: str = "") -> Iterator[Entry]:
        return local_read.list_entries(self, prefix)

    def stat(self, path: str) -> Entry | None:
        return local_read.stat_entry(self._real_root, path)

    def read(self, path: str) -> bytes | None:
        return local_read.read_file(self._real_root, check_relpath(path))

    def checksum(self, path: str) -> str | None:
        return local_read.checksum(self._real_root, path)

    # ------------------------------------------------------------ changes
    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
        """Target.put; with `keep_stamp` (SyncItem.keep_stamp) what stands at `path` is kept
        first (LocalTrash._keep_in_put, once the new bytes are staged, before their rename);
        a keep that fails raises, nothing is overwritten.
        Everything after the parent walk is relative to its descriptor (fchmod, futimens,
        renameat), so a parent swapped for a symlink meanwhile redirects nothing; the Entry
        is the fstat of the file renamed into place."""
        check_relpath(path)
        self._root_id.check()
        try:
            parent = self._open_parent(path, keep_stamp)
            try:
                keep = None if keep_stamp is None else functools.partial(
                    self._keep_in_put, path, parent, keep_stamp)
                st = self._staging.install(local, parent, path, mtime=mtime, mtime_ns=mtime_ns,
                                           mode=mode, size=size, before_replace=keep)
                if self.fsync:
                    beneath.fsync_at(parent)
            finally:
                os.close(parent)
        except OSError as exc:
            if exc.filename == local:   # the source file: its name is no staging name
                raise classify_oserror(exc) from None
            raise classify_oserror(exc, path) from None
        return entry_of(path, st)

    def delete(self, path: str, *, tree: bool = False) -> None:
        """Target.delete, below a directory reached by descriptor (local_parents.find_dir):
        a symlink planted at a parent is never followed, so nothing outside the root is
        removed; a symlink or file on the way means nothing of the mirror's is there."""
        head, _, name = check_relpath(path).rpartition("/")
        self._root_id.check()
        try:
            parent = beneath.find_dir(self._real_root, head)
            if parent is None:
                return
            try:
                beneath.remove_at(parent, os.fsencode(name), tree=tree)
            finally:
                os.close(parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise classify_oserror(exc, path) from None

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        self._root_id.check()
        check_relpath(path)
        try:
            # made where missing, a file or symlink in its way replaced
            fd = beneath.open_parent(self._real_root, path)
            try:   # chmod through the descriptor: a symlink swapped in is not followed
                if mode is not None:   # (fchmod refuses an O_PATH descriptor: EBADF)
                    os.chmod(f"/proc/self/fd/{fd}", mode)
            finally:
                os.close(fd)
        except OSError as exc:
            raise classify_oserror(exc, path) from None

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """chmod and utimensat (ns) on the file itself, through an O_PATH|O_NOFOLLOW descriptor
        opened in its directory, reached by descriptor (local_parents.find_dir): a symlink at
        `path` or at a parent is never followed (NotFound, so the caller re-sends the file;
        by path, a parent symlinked to another directory of the mirror changed that file)."""
        head, _, name = check_relpath(path).rpartition("/")
        self._root_id.check()
        try:
            parent = beneath.find_dir(self._real_root, head)
            if parent is None:
                raise NotFound(f"{path!r} is not on {self.describe()}")
            try:
                fd = os.open(os.fsencode(name), os.O_PATH | os.O_NOFOLLOW, dir_fd=parent)
            finally:
                os.close(parent)
        except FileNotFoundError:
            raise NotFound(f"{path!r} is not on {self.describe()}") from None
        except OSError as exc:
            raise classify_oserror(exc, path) from None
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):   # a symlink, a directory...
                raise NotFound(f"{path!r} is not a file on {self.describe()}")
            via = f"/proc/self/fd/{fd}"   # the inode we checked, whatever the path points at now
            if mode is not None:
                os.chmod(via, mode)
            os.utime(via, ns=(mtime_ns, mtime_ns))
            return entry_of(path, os.fstat(fd))
        except OSError as exc:
            raise classify_oserror(exc, path) from None
        finally:
            os.close(fd)

    def move(self, src: str, dst: str) -> None:
        """Target.move: rename(2) from the source's directory to the destination's, both
        reached by descriptor (the destination's made as a put makes it); what stands at
        `dst` is removed first, a directory with everything below it. NotFound when nothing
        of the mirror's is at `src`."""
        shead, _, sname = check_relpath(src).rpartition("/")
        dname = os.fsencode(check_relpath(dst).rpartition("/")[2])
        self._root_id.check()
        try:
            sdir = beneath.find_dir(self._real_root, shead)
            if sdir is None:
                raise NotFound(f"{src!r} is not on {self.describe()}")
            try:
                os.lstat(os.fsencode(sname), dir_fd=sdir)   # FileNotFoundError: NotFound below
                parent = self._open_parent(dst)
                try:
                    beneath.remove_at(parent, dname, tree=True)
                    os.rename(os.fsencode(sname), dname, src_dir_fd=sdir, dst_dir_fd=parent)
                    if self.fsync:
                        beneath.fsync_at(parent)
                finally:
                    os.close(parent)
            finally:
                os.close(sdir)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise NotFound(f"{src!r} is not on {self.describe()}") from None
            if exc.errno == errno.EXDEV:   # dst on another mount below the root: rename(2) cannot
                raise NotFound(f"{dst!r} is on another mount than {src!r}: sent instead") from None
            raise classify_oserror(exc, src, dst) from None

    # ------------------------------------------------------------ meta
    def write_meta(self, name: str, data: bytes) -> None:
        """Atomically replace `.mirrord/<name>`, staged in .mirrord/tmp like every put."""
        self._root_id.check()
        meta = os.path.join(os.fsencode(self._real_root), META_DIR.encode())
        try:   # write() makes .mirrord/ a real directory first (Staging._own_area)
            self._staging.write(os.path.join(meta, os.fsencode(name)), data)
        except OSError as exc:
            raise classify_oserror(exc, f"{META_DIR}/{name}") from None

    def read_meta(self, name: str) -> bytes | None:
        """The bytes of `.mirrord/<name>`, or None (absent; a symlink: never followed)."""
        return local_read.read_file(self._real_root, f"{META_DIR}/{name}", META_LIMIT)

    def meta_kind(self, name: str) -> tuple[str, str] | None:
        return local_read.kind_below(self._real_root, f"{META_DIR}/{name}")
