"""The rsync-over-SSH target: a mirror host reached through one persistent SSH connection.

This module is the Target itself: single operations (stat, put, set_meta,
delete, mkdir, move) as remote commands, and open()/close(). Its parts live beside
it: reads.py (read, checksum, the heartbeat in `.mirrord/`), connection.py (the ssh
master and its sessions), remote.py (the shell run on the host and the parsing
of what it prints), listing.py (the streamed listing), plan.py, batch.py and transfer.py
(sync(): one rsync per group of items), trash.py (keep_deleted). open() also
removes, in the same remote command, what interrupted transfers left in
`.mirrord/rsync-tmp`, when no other mirrord process here has this target open
(mirrord.targets.sweep); open(readonly=True) makes and removes nothing on the host.

The remote side needs a POSIX login shell and GNU find/sort/mv/xargs (Debian).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from typing import Iterator, Sequence

from mirrord.config import RsyncOptions, TargetConfig
from mirrord.errors import MirrorRootMissing, NotFound, PermanentError
from mirrord.targets.base import Target
from mirrord.targets.model import Entry, Features, SyncItem, SyncResult
from mirrord.targets.paths import check_relpath
from mirrord.targets.rsync import listing
from mirrord.targets.rsync.batch import BatchRunner
from mirrord.targets.rsync.connection import SHORT_TIMEOUT, SshConnection
from mirrord.targets.rsync.remote import (EXIT_ABSENT, EXIT_NO_ROOT, EXIT_NOT_DIR, LONG_TIMEOUT,
                                          MKDIRS, NOLINK, PRINTF, ROOT_EMPTY, ROOT_UNMARKED, RSYNC_TMP,
                                          classify_stderr, q, readonly_script, record_entry, tail)
from mirrord.targets.rsync.reads import RemoteReads
from mirrord.targets.rsync.root_guard import RootGuard, prepare_script, witness
from mirrord.targets.rsync.trash import RsyncTrash
from mirrord.targets.sweep import OpenLock
from mirrord.trash.model import Kept


class RsyncTarget(RemoteReads, Target):
    type = "rsync"

    def __init__(self, name: str, opts: RsyncOptions):
        super().__init__(name)
        self.opts = opts
        self.root = os.fsencode(opts.path.rstrip("/") or "/")
        self.features = self._features(1e-6)
        self.rsync_runs = 0                       # rsync processes started (tests, status)
        self.conn = SshConnection(opts, self.describe())
        self._count_lock = threading.Lock()
        self._open_lock = OpenLock(f"rsync:{opts.user}@{opts.host}:{opts.port}:{opts.path}")
        # the sources' dest directories made real since open() (BatchRunner._dest_made)
        self.dests_made: set[bytes] = set()
        # what a writable open() learnt of the root on the host: every remote command and
        # rsync run checks it first (root_guard.py)
        self.guard = RootGuard(self.root)
        self._unopened = False   # a writable open() failed: made before the next command
        self._reopen_lock = threading.Lock()
        self._expected = False   # expect_mirror() was told (the daemon's journal)
        # [target] keep_deleted is on (from_config): rsync runs without --force
        # (transfer.run_rsync), so a directory is never removed by a run, unkept
        self.keeps_deleted = False

    def _features(self, precision: float) -> Features:
        # rsync reads the source tree itself (source_root/source_rel): no open fds needed;
        # keep_deleted: a put keeps what it overwrites, and its parents, inside its rsync run
        # (--rsync-path, inrun.py): no keep round trip per batch (issue 17)
        return Features(server_side_move=True, directories=True, mtime_precision=precision,
                        batch_size=self.opts.batch_size, needs_local_file=False,
                        keep_by_condition=True, keeps_parents_in_put=True)

    @classmethod
    def from_config(cls, cfg: TargetConfig) -> "RsyncTarget":
        assert cfg.rsync is not None
        target = cls(cfg.name, cfg.rsync)
        target.keeps_deleted = cfg.keep_deleted > 0
        return target

    def describe(self) -> str:
        o = self.opts
        user = f"{o.user}@" if o.user else ""
        return f"rsync:{self.name}({user}{o.host}:{o.port}:{o.path})"

    # ------------------------------------------------------------ lifecycle
    def open(self, *, readonly: bool = False) -> None:
        """Create the root and `.mirrord/rsync-tmp` on the host and check its rsync; when no
        other mirrord process here has this target open, the same remote command removes
        what interrupted transfers left in `.mirrord/rsync-tmp` (mirrord.targets.sweep).
        `readonly` (Target.open): the remote command only checks that the root is a
        directory and reads rsync's version; nothing is made or swept on the host and no
        lock file here. PermanentError when the root does not exist or is no directory.
        (The ssh connection's private directory in this host's /tmp is made either way:
        connection.py.)"""
        self.dests_made.clear()
        self.guard.forget()
        self._unopened = not readonly   # until _prepare succeeds (_ensure_open)
        if readonly:
            self._prepare_readonly()
        else:
            self._open_writable()

    def _prepare_readonly(self) -> None:
        proc = self._run(readonly_script(self.root, os.fsencode(self.opts.rsync_path)))
        if proc.returncode == EXIT_ABSENT:
            raise MirrorRootMissing(f"{self.describe()}: the mirror root {self.opts.path} does not "
                                 f"exist on {self.opts.host}")
        if proc.returncode == EXIT_NOT_DIR:   # a file where the mount point was: no mirror
            raise MirrorRootMissing(f"{self.describe()}: the mirror root {self.opts.path} on "
                                    f"{self.opts.host} is not a directory")
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.describe()}: cannot look at the target "
                                               f"root (not a directory?)")
        self.root_empty = ROOT_EMPTY in proc.stdout.splitlines()
        self.root_unmarked = ROOT_UNMARKED in proc.stdout.splitlines()
        self._note_version(proc.stdout, readonly=True)

    def _prepare(self, *, sweep: bool) -> None:
        script = prepare_script(self.root, os.fsencode(self.opts.rsync_path), sweep=sweep,
                                token=self.guard.token)
        proc = self._run(script)
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.describe()}: cannot prepare the target root")
        self._note_version(proc.stdout, stderr=proc.stderr)
        self.guard.learn(proc.stdout, target=self.name)
        self.found_empty = self.guard.found_empty
        self._unopened = False
        self.guard.awaiting = self.found_empty and self._expected

    def _open_writable(self) -> None:
        if not self._open_lock.hold(lambda: self._prepare(sweep=True)):
            self._prepare(sweep=False)

    def _ensure_open(self) -> None:
        """A writable open that failed (the host unreachable at the daemon's start) is made
        before the next command: else the target shipped with no look at its root and no
        check of it (a breaker: a mount failed at boot with the host down at start, then
        unmounted while running, took every change into the bare mount point). Raises
        what open() raises."""
        if self._unopened:
            with self._reopen_lock:
                if self._unopened:
                    self._open_writable()

    def expect_mirror(self, why: str) -> None:
        """Target.expect_mirror: a root found missing or holding nothing at open is written
        to only once it holds something (root_guard.py; `why` is the daemon's text, the
        host's refusal says the same). Kept for an open made later (_ensure_open)."""
        self._expected = True
        if self.guard.found_empty:
            self.guard.awaiting = True

    def _note_version(self, stdout: bytes, *, stderr: bytes = b"", readonly: bool = False) -> None:
        """The mtime precision from rsync's version line; no rsync is a PermanentError
        unless `readonly` (looking needs no rsync: find, cat)."""
        m = re.search(rb"protocol version (\d+)", stdout)
        if m is None:
            if readonly:
                return
            raise PermanentError(f"{self.describe()}: no rsync on the mirror host: {tail(stderr)}")
        if int(m.group(1)) < 31:   # rsync < 3.1 keeps whole seconds only
            self.features = self._features(1.0)

    def close(self) -> None:
        self.conn.close()
        self._open_lock.release()

    def count_rsync_run(self) -> None:
        with self._count_lock:
            self.rsync_runs += 1

    # ------------------------------------------------------------ remote commands
    def _run(self, script: bytes, data: bytes = b"", timeout: float = SHORT_TIMEOUT, *,
             meta: bool = False) -> subprocess.CompletedProcess:
        return self.conn.run(script, data, timeout, meta=meta)

    def in_root(self, body: bytes) -> bytes:
        """`body` run cd'ed into the target root; exit EXIT_NO_ROOT when it is not there, or
        (after a writable open) fails the root's check (root_guard.py)."""
        self._ensure_open()
        return (b"cd -- %s 2>/dev/null || { echo \"the target root is not there\" >&2; exit %d; }\n%s%s"
                % (q(self.root), EXIT_NO_ROOT, self.guard.shell(), body))

    def root_check(self) -> bytes:
        """The root's check (RootGuard.shell) for a script of our own making (the keep
        wrapper), after the open a failed one still owes (_ensure_open)."""
        self._ensure_open()
        return self.guard.shell()

    def receiver(self) -> bytes | None:
        """The --rsync-path for a run without keeps: the receiver behind the root's check
        after a writable open, else None (the configured rsync_path as it is)."""
        self._ensure_open()
        return self.guard.rsync_path(os.fsencode(self.opts.rsync_path))

    @staticmethod
    def _rel(path: str) -> bytes:
        return q(b"./" + os.fsencode(check_relpath(path)))

    def _check(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.describe()}: {what}")

    # ------------------------------------------------------------ listing (listing.py)
    def list(self, prefix: str = "") -> Iterator[Entry]:
        return listing.list_entries(self, prefix)

    def stat(self, path: str) -> Entry | None:
        p = self._rel(path)
        proc = self._run(self.in_root(NOLINK + (
            b"if ! nolink %s || [ ! -e %s ]; then exit 0; fi\nfind %s -maxdepth 0 %s" % (p, p, p, PRINTF))))
        self._check(proc, f"cannot stat {path!r}")
        out = proc.stdout.rstrip(b"\0")
        if not out:
            return None
        return record_entry(path, out)

    # ------------------------------------------------------------ batches
    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        return BatchRunner(self).sync(items)   # made per call: no target <-> runner cycle

    # ------------------------------------------------------------ the trash (trash.py)
    def keep(self, path: str, *, stamp: str, coming: str) -> int:
        got = RsyncTrash(self).keep_batch([(path, stamp, coming)])[0]
        if isinstance(got, Exception):
            raise got
        return got

    def keep_many(self, requests: Sequence[tuple[str, str, str]]) -> list[Exception | None]:
        """keep() for the whole batch in one remote script (trash.keep_script)."""
        return [g if isinstance(g, Exception) else None for g in RsyncTrash(self).keep_batch(requests)]

    def trash_list(self, prefix: str = "", *, since: float | None = None) -> Iterator[Kept]:
        return RsyncTrash(self).list(prefix, since)

    def trash_purge(self, kept: Sequence[Kept]) -> None:
        RsyncTrash(self).purge(kept)

    def trash_restore(self, kept: Kept, path: str) -> Entry:
        return RsyncTrash(self).restore(kept, path)

    def trash_fetch(self, kept: Kept, local: str) -> None:
        RsyncTrash(self).fetch(kept, local)

    def trash_mode(self) -> str:
        return "rename"

    # ------------------------------------------------------------ single changes
    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
        check_relpath(path)
        return self._one(SyncItem(path, "file", local, size, mtime, mode=mode, mtime_ns=mtime_ns,
                                  keep_stamp=keep_stamp))

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """chmod + touch to the nanosecond on the host (remote.META_SCRIPT), same inode; NotFound when
        no regular file is there (or a symlink is on the way)."""
        check_relpath(path)
        return self._one(SyncItem(path, "file", mode=mode, mtime_ns=mtime_ns, meta_only=True))

    def _one(self, item: SyncItem) -> Entry:
        result = self.sync([item])[0]
        if result.error is not None:
            raise result.error
        return result.entry

    def delete(self, path: str, *, tree: bool = False) -> None:
        p = self._rel(path)
        head = self._rel(path.rpartition("/")[0]) if "/" in path else b"."
        body = NOLINK + b"nolink %s || exit 0\n" % head   # a symlinked parent: none of ours
        if tree:
            body += b"rm -rf -- %s" % p   # may be a big tree: no short timeout below
        else:
            body += (b"if [ -d %s ] && [ ! -L %s ]; then rmdir -- %s 2>/dev/null; exit 0; fi\n"
                     b"rm -f -- %s" % (p, p, p, p))
        self._check(self._run(self.in_root(body), timeout=LONG_TIMEOUT), f"cannot delete {path!r}")

    def own_area(self) -> None:
        """Make `.mirrord/rsync-tmp` again inside the existing root (never the root itself);
        RetryableError / PermanentError as classified when it cannot be made."""
        body = MKDIRS + b"mkdirs ./%s" % RSYNC_TMP
        if self.guard.root_id is not None:   # in the root the check passed: its witness again
            body += b" && : > %s" % witness(self.guard.token)
        self._check(self._run(self.in_root(body)), f"cannot create {RSYNC_TMP.decode()}")

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        p = self._rel(path)
        body = MKDIRS + NOLINK + b"mkdirs %s" % p   # replaces a symlink or file in the way
        if mode is not None:   # chmod follows symlinks: none may be on the way; no umask applies
            body += (b" && { nolink %s || { echo 'a symlink is on the way' >&2; exit 1; }; }"
                     b" && chmod %o %s" % (p, mode, p))
        self._check(self._run(self.in_root(body)), f"cannot create directory {path!r}")

    def move(self, src: str, dst: str) -> None:
        s, d = self._rel(src), self._rel(dst)
        if dst == src or dst.startswith(src + "/"):
            raise PermanentError(f"{self.describe()}: cannot move {src!r} into itself")
        parent = dst.rpartition("/")[0]
        body = NOLINK + b"nolink %s && [ -e %s ] || exit %d\n" % (s, s, EXIT_ABSENT)
        if parent:
            body += MKDIRS + b"mkdirs %s || exit 1\n" % self._rel(parent)
        body += b"rm -rf -- %s && mv -T -- %s %s" % (d, s, d)
        proc = self._run(self.in_root(body), timeout=LONG_TIMEOUT)
        if proc.returncode == EXIT_ABSENT:
            raise NotFound(f"{src!r} is not on {self.describe()}")
        self._check(proc, f"cannot move {src!r} to {dst!r}")
