"""The rsync-over-SSH target: a mirror host reached through one persistent SSH connection.

The target owns a private 0700 directory holding the control socket of one
ssh master connection (started in the foreground as our child, so it can be
watched and restarted cheaply, and dies with the daemon: its remote command
reads our end of a pipe). Every rsync run and every remote command is a
multiplexed session over that connection: no handshake per batch.

sync() groups a batch by (source root, dest prefix) and runs ONE rsync per
group: `--files-from=- --from0 --protect-args` with the NUL-separated relative
paths on stdin, so a file name is never an option or shell word. No -r (a
directory item creates just the directory), no -l/-D (a symlink is never
followed or copied), -t -p keep nanosecond mtimes and permissions, temp files
go to `.mirrord/rsync-tmp` and are renamed into place (atomic, never listed).
The source is checked first (a symlink anywhere on the path makes the path
absent: rsync would follow a symlinked parent), deletions and tree removals
run as one remote command before the rsync, and `--delete-missing-args`
deletes whatever vanished in between. When rsync reports partial failure,
one remote stat of the group decides which items failed.

Metadata-only items (a chmod or touch at the source) and set_meta() go through
one remote script per batch (mirrord.targets.rsync_remote: chmod + touch to the
nanosecond, same inode); an item whose file the host lost is sent whole by the
batch's rsync run. Directory items carry their mode (-p); staged runs (items
without a source tree) use --no-implied-dirs, so the 0755 staging parents never
overwrite the modes of directories that exist on the host.

The remote side needs a POSIX login shell and GNU find/sort/mv/xargs (Debian).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shlex
import shutil
import stat as stat_mod
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from mirrord.config import RsyncOptions, TargetConfig
from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import (
    META_DIR, Entry, Features, SyncItem, SyncResult, Target, check_relpath, classify_oserror,
    exact_ns, ns_to_float, put_ns,
)
from mirrord.targets.rsync_remote import (
    DELETE, META_SCRIPT, MKDIRS, NOLINK, PRINTF, STAT_MANY, MetaDone, classify_stderr,
    meta_record, parse_answers, parse_record, q, record_entry, tail,
)

RSYNC_TMP = b".mirrord/rsync-tmp"
MAX_SESSIONS = 8            # sshd allows 10 sessions per connection by default; one is the master's
RETRY_EXIT = {5, 10, 12, 14, 20, 21, 22, 30, 35, 255}   # connection, protocol start, timeout, signals
EXIT_ABSENT = 100           # our remote scripts: the path is not there
EXIT_NO_ROOT = 97           # our remote scripts: cannot cd into the target root
SHORT_TIMEOUT = 300.0       # seconds for a remote stat/read/mkdir; dead links are caught sooner
LONG_TIMEOUT = 3600.0       # by ServerAlive; these only stop a command hanging on the host
# OpenSSH's default ciphers with AES-GCM first. On a CPU with AES instructions it costs
# about half the CPU of chacha20-poly1305 (ssh's first choice) on both ends: measured on a
# 693 MiB first sync over loopback, 1.3 CPU-seconds less and 0.75-1 s sooner. Same set as the
# default, so any server that took the default still agrees; an ssh_command with its own
# -c or -o Ciphers wins (ssh keeps the first value it is given for an option).
AES_FIRST_CIPHERS = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                     "aes128-ctr,aes192-ctr,aes256-ctr")
@dataclass
class _Conn:
    """What a finaliser must clean up if the target is dropped without close()."""

    dir: str | None = None
    master: subprocess.Popen | None = None

    def stop_master(self) -> None:
        m, self.master = self.master, None
        if m is None:
            return
        with contextlib.suppress(OSError):
            m.stdin.close()
        if m.poll() is None:
            m.terminate()
            try:
                m.wait(2)
            except subprocess.TimeoutExpired:
                m.kill()
                m.wait()

    def cleanup(self) -> None:
        self.stop_master()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@dataclass
class _Want:
    """One item of an rsync group: what the source holds now."""

    index: int
    rel: bytes                  # path relative to the group's source directory
    kind: str                   # 'file' or 'dir'
    size: int
    mtime_ns: int
    local: str = ""             # staging only: the file to copy
    mode: int | None = None     # permission bits
    fixup: bool = False         # staging only: mode/mtime asked differ from the local file's

    @classmethod
    def of(cls, index: int, rel: bytes, kind: str, st: os.stat_result, local: str = "") -> "_Want":
        return cls(index, rel, kind, st.st_size if kind == "file" else 0, st.st_mtime_ns, local,
                   stat_mod.S_IMODE(st.st_mode))

    def entry(self, path: str) -> Entry:
        return Entry(path, self.size, ns_to_float(self.mtime_ns), is_dir=self.kind == "dir",
                     mtime_ns=self.mtime_ns, mode=self.mode)


@dataclass
class _Meta:
    """A metadata-only item: set mode and mtime at `path`; `send` it whole if the host lost it."""

    index: int
    path: bytes                 # target path
    mode: int | None
    mtime_ns: int
    send: tuple[tuple[bytes, bytes], _Want] | None   # (group key or (b"", b"") staged, want)


@dataclass
class _Plan:
    deletes: list[tuple[int, bytes, bool]] = field(default_factory=list)   # index, target path, tree
    groups: dict[tuple[bytes, bytes], list[_Want]] = field(default_factory=dict)
    staged: list[_Want] = field(default_factory=list)
    metas: list[_Meta] = field(default_factory=list)


class RsyncTarget(Target):
    type = "rsync"

    def __init__(self, name: str, opts: RsyncOptions):
        super().__init__(name)
        self.opts = opts
        self.root = os.fsencode(opts.path.rstrip("/") or "/")
        self.features = self._features(1e-6)
        self.rsync_runs = 0                       # rsync processes started (tests, status)
        self._conn = _Conn()
        self._finalizer = weakref.finalize(self, self._conn.cleanup)
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)

    def _features(self, precision: float) -> Features:
        # rsync reads the source tree itself (source_root/source_rel): no open fds needed
        return Features(server_side_move=True, directories=True, mtime_precision=precision,
                        batch_size=self.opts.batch_size, needs_local_file=False)

    @classmethod
    def from_config(cls, cfg: TargetConfig) -> "RsyncTarget":
        assert cfg.rsync is not None
        return cls(cfg.name, cfg.rsync)

    def describe(self) -> str:
        o = self.opts
        user = f"{o.user}@" if o.user else ""
        return f"rsync:{self.name}({user}{o.host}:{o.port}:{o.path})"

    # ------------------------------------------------------------ connection
    def _ssh_base(self) -> list[str]:
        o = self.opts

        def esc(path: object) -> str:   # ssh expands %-tokens in these options
            text = str(path).replace("%", "%%")
            return f'"{text}"' if " " in text else text

        alive = max(1, round(o.connect_timeout / 2))
        argv = shlex.split(o.ssh_command)
        if cpu_has_aes():
            argv += ["-o", f"Ciphers={AES_FIRST_CIPHERS}"]
        argv += [
            "-p", str(o.port), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={max(1, math.ceil(o.connect_timeout))}",
            "-o", f"ServerAliveInterval={alive}", "-o", "ServerAliveCountMax=3",
            "-o", f"StrictHostKeyChecking={o.strict_host_key_checking}",
            "-o", f"ControlPath={esc(self._ctl_path())}",
        ]
        if o.ssh_key:
            argv += ["-o", "IdentitiesOnly=yes", "-i", esc(o.ssh_key)]
        if o.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={esc(o.known_hosts)}"]
        if o.user:
            argv += ["-l", o.user]
        return argv

    def _ctl_path(self) -> str:
        if self._conn.dir is None:
            base = None if len(tempfile.gettempdir()) < 40 else "/tmp"   # sockets need short paths
            self._conn.dir = tempfile.mkdtemp(prefix="mirrord-ssh-", dir=base)
        return os.path.join(self._conn.dir, "ctl")

    def _client_argv(self) -> list[str]:
        return self._ssh_base() + ["-o", "ControlMaster=no", "-T"]

    def _ensure_master(self) -> None:
        with self._lock:
            m = self._conn.master
            if m is not None and m.poll() is None and os.path.exists(self._ctl_path()):
                return
            self._start_master()

    def _start_master(self) -> None:
        self._conn.stop_master()
        ctl = self._ctl_path()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ctl)
        log_path = os.path.join(self._conn.dir, "master.log")
        argv = self._ssh_base() + ["-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-T",
                                   self.opts.host, "exec cat >/dev/null"]
        with open(log_path, "wb") as log:
            master = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=log)
        self._conn.master = master
        deadline = time.monotonic() + self.opts.connect_timeout + 5
        while master.poll() is None and time.monotonic() < deadline:
            if os.path.exists(ctl):
                return
            time.sleep(0.005)
        self._conn.stop_master()
        with open(log_path, "rb") as fh:
            why = fh.read()
        raise classify_stderr(why, f"{self.describe()}: cannot connect")

    def open(self) -> None:
        root = q(self.root)
        tmp = q(self.root + b"/" + RSYNC_TMP)
        script = (b"mkdir -p -- %s %s || exit 1\n"
                  b"find %s -type f -mmin +60 -delete 2>/dev/null\n"
                  b"%s --version | head -n 1" % (root, tmp, tmp, os.fsencode(self.opts.rsync_path)))
        proc = self._run(script)
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.describe()}: cannot prepare the target root")
        m = re.search(rb"protocol version (\d+)", proc.stdout)
        if m is None:
            raise PermanentError(f"{self.describe()}: no rsync on the mirror host: {tail(proc.stderr)}")
        if int(m.group(1)) < 31:   # rsync < 3.1 keeps whole seconds only
            self.features = self._features(1.0)

    def close(self) -> None:
        with self._lock:
            self._conn.cleanup()

    # ------------------------------------------------------------ remote commands
    def _run(self, script: bytes, data: bytes = b"",
             timeout: float = SHORT_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a shell script on the mirror host (cd'ed into the root when it exists)."""
        self._ensure_master()
        argv = self._client_argv() + [self.opts.host, script]
        with self._sessions:
            try:
                proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RetryableError(f"{self.describe()}: remote command timed out") from None
        if proc.returncode == 255:
            raise classify_stderr(proc.stderr, f"{self.describe()}: ssh failed")
        if proc.returncode == EXIT_NO_ROOT:
            raise RetryableError(f"{self.describe()}: the target root is not there: {tail(proc.stderr)}")
        return proc

    def _in_root(self, body: bytes) -> bytes:
        return b"cd -- %s || exit %d\n%s" % (q(self.root), EXIT_NO_ROOT, body)

    @staticmethod
    def _rel(path: str) -> bytes:
        return q(b"./" + os.fsencode(check_relpath(path)))

    def _check(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.describe()}: {what}")

    # ------------------------------------------------------------ listing
    def list(self, prefix: str = "") -> Iterator[Entry]:
        prefix = prefix.strip("/")
        if prefix:
            start = self._rel(prefix)
            body = (b"[ -e %s ] || [ -L %s ] || { printf 'F 0\\0E 0\\0'; exit 0; }\n" % (start, start)
                    + b"exec 3>&1\n{ find %s %s; printf 'F %%s\\0' $? >&3; }" % (start, PRINTF))
        else:
            body = (b"exec 3>&1\n{ find . -mindepth 1 \\( -path ./.mirrord -prune \\) -o %s; "
                    b"printf 'F %%s\\0' $? >&3; }" % PRINTF)
        body += b" | LC_ALL=C sort -z -t ' ' -k 5\nprintf 'E %s\\0' $?\n"
        yield from self._stream(self._in_root(body))

    def _stream(self, script: bytes) -> Iterator[Entry]:
        self._ensure_master()
        argv = self._client_argv() + [self.opts.host, script]
        with self._sessions, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, bufsize=0)
            try:
                yield from self._parse_stream(proc, err)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                proc.wait()

    def _parse_stream(self, proc: subprocess.Popen, err) -> Iterator[Entry]:
        rest, ended = b"", False
        while not ended:
            chunk = proc.stdout.read(1 << 16)
            if not chunk:
                break
            *records, rest = (rest + chunk).split(b"\0")
            for rec in records:
                if rec[:2] in (b"F ", b"E "):
                    if rec[2:] != b"0":
                        self._list_failed(proc, err, rec)
                    ended = rec[:1] == b"E"
                    continue
                kind, path, size, ns, mode = parse_record(rec)
                yield Entry(os.fsdecode(path), size, ns_to_float(ns), is_dir=kind == b"d",
                            mtime_ns=ns, mode=mode)
        if not ended:
            self._list_failed(proc, err, b"the listing ended early")

    def _list_failed(self, proc: subprocess.Popen, err, why: bytes) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err.seek(0)
        stderr = err.read()
        if proc.returncode == EXIT_NO_ROOT:
            raise RetryableError(f"{self.describe()}: the target root is not there")
        raise classify_stderr(stderr or why, f"{self.describe()}: listing failed ({why.decode(errors='replace')})")

    def stat(self, path: str) -> Entry | None:
        p = self._rel(path)
        proc = self._run(self._in_root(
            b"if [ -L %s ] || [ ! -e %s ]; then exit 0; fi\nfind %s -maxdepth 0 %s" % (p, p, p, PRINTF)))
        self._check(proc, f"cannot stat {path!r}")
        out = proc.stdout.rstrip(b"\0")
        if not out:
            return None
        return record_entry(path, out)

    # ------------------------------------------------------------ batches
    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        results: list[SyncResult | None] = [None] * len(items)
        plan = _Plan()
        seen = _SourceDirs()
        for i, item in enumerate(items):
            try:
                self._plan(i, item, plan, seen)
            except (PermanentError, RetryableError) as exc:
                results[i] = SyncResult(item, error=exc)
            except OSError as exc:
                results[i] = SyncResult(item, error=classify_oserror(exc))
        failed = self._apply_deletes(plan.deletes)
        for index, exc in failed.items():
            results[index] = SyncResult(items[index], error=exc)
        plan.metas = [m for m in plan.metas if m.index not in failed]
        if plan.metas:
            self._apply_metas(items, results, plan)
        for (src, dest), wants in plan.groups.items():
            self._apply_group(items, results, src, dest, [w for w in wants if w.index not in failed])
        if plan.staged:
            self._apply_staged(items, results, [w for w in plan.staged if w.index not in failed])
        return [r if r is not None else SyncResult(items[i]) for i, r in enumerate(results)]

    def _apply_metas(self, items, results, plan: _Plan) -> None:
        """Run the metadata script for every meta-only item at once; an item whose file is
        not on the host joins the batch's rsync run (or fails NotFound with nothing to send)."""
        answers, why = self._run_metas([(m.index, m.path, m.mode, m.mtime_ns) for m in plan.metas])
        for m in plan.metas:
            item, got = items[m.index], answers.get(m.index, "E")
            if isinstance(got, MetaDone):
                entry = Entry(item.path, got.size, ns_to_float(got.mtime_ns),
                              mtime_ns=got.mtime_ns, mode=got.mode)
                results[m.index] = SyncResult(item, entry)
            elif got == "A" and m.send is not None:
                key, want = m.send
                (plan.staged if key == (b"", b"") else plan.groups.setdefault(key, [])).append(want)
            elif got == "A":
                results[m.index] = SyncResult(item, error=NotFound(
                    f"{item.path!r} is not a file on {self.describe()}"))
            else:
                results[m.index] = SyncResult(item, error=why)

    def _run_metas(self, records: list[tuple[int, bytes, int | None, int]]
                   ) -> tuple[dict[int, MetaDone | str], Exception]:
        """One remote script for all (index, path, mode, mtime_ns): answers by index, and the
        error to report for the indexes that failed or were not answered."""
        data = b"".join(meta_record(*r) + b"\0" for r in records)
        try:
            proc = self._run(self._in_root(META_SCRIPT), data, timeout=LONG_TIMEOUT)
        except (RetryableError, PermanentError) as exc:
            return {}, exc
        return parse_answers(proc.stdout), classify_stderr(
            proc.stderr, f"{self.describe()}: cannot set mode/mtime")

    def _plan(self, i: int, item: SyncItem, plan: _Plan, seen: _SourceDirs) -> None:
        path = os.fsencode(check_relpath(item.path))
        dest = self._dest_of(item)
        if dest is None:
            src, want = b"", self._want_staged(i, item, path)
        else:
            src = os.fsencode(os.path.abspath(item.source_root))
            want = self._want_source(i, item, src, seen)
        # Only now, with the source looked at: a deletion never follows from an error.
        if item.tree:
            plan.deletes.append((i, path, True))
        if item.meta_only and item.kind == "file" and (want is None or want.kind == "file"):
            if want is not None or dest is None:   # staged without `local`: nothing to send
                key = (b"", b"") if dest is None else (src, dest)
                mode, ns = ((want.mode, want.mtime_ns) if want is not None   # source's, or asked
                            else (item.mode, exact_ns(item.mtime, item.mtime_ns)))
                send = None if want is None else (key, want)
                plan.metas.append(_Meta(i, path, mode, ns, send))
                return
        if want is None:
            if not item.tree:
                plan.deletes.append((i, path, False))
        elif dest is None:
            plan.staged.append(want)
        else:
            plan.groups.setdefault((src, dest), []).append(want)

    @staticmethod
    def _dest_of(item: SyncItem) -> bytes | None:
        """The dest prefix of an item that names its source, else None."""
        if not (item.source_root and item.source_rel):
            return None
        rel = item.source_rel.strip("/")
        if item.path == rel:
            return b""
        if item.path.endswith("/" + rel):
            return os.fsencode(item.path[: -len(rel) - 1])
        return None

    @staticmethod
    def _want_source(i: int, item: SyncItem, src: bytes, seen: _SourceDirs) -> _Want | None:
        """What the source tree holds at the item's path now; None when nothing (to delete)."""
        if src not in seen.roots:
            seen.roots[src] = os.path.isdir(src)
        if not seen.roots[src]:
            raise RetryableError(f"source root {item.source_root!r} is not a directory")
        rel = os.fsencode(item.source_rel.strip("/"))
        kind, st = _source_state(src, rel, seen.dirs)
        return None if st is None else _Want.of(i, rel, kind, st)

    @staticmethod
    def _want_staged(i: int, item: SyncItem, path: bytes) -> _Want | None:
        """An item without a source tree: `local` is the file (often /proc/self/fd/N)."""
        if item.kind == "file":
            if item.meta_only and not item.local:
                return None
            local = item.local
            if local.startswith("/proc/self/"):
                local = f"/proc/{os.getpid()}/{local[len('/proc/self/'):]}"
            local = os.path.abspath(local)
            st = os.stat(local)
            if not stat_mod.S_ISREG(st.st_mode):
                raise PermanentError(f"{item.local!r} is not a regular file")
            want = _Want.of(i, path, "file", st, local)
            # put(mode=, mtime=) may ask for other attributes than the file has: rsync copies
            # the file's, then the metadata script sets the ones asked for
            mode = want.mode if item.mode is None else item.mode
            ns = put_ns(item.mtime, item.mtime_ns, st) if (item.mtime or item.mtime_ns) else want.mtime_ns
            if (mode, ns) != (want.mode, want.mtime_ns):
                want.mode, want.mtime_ns, want.fixup = mode, ns, True
            return want
        if item.kind == "dir":
            return _Want(i, path, "dir", 0, exact_ns(item.mtime, item.mtime_ns),
                         mode=0o755 if item.mode is None else item.mode)
        return None

    def _apply_deletes(self, deletes: list[tuple[int, bytes, bool]]) -> dict[int, Exception]:
        if not deletes:
            return {}
        records = {(b"T" if tree else b"F") + b"./" + path: i for i, path, tree in deletes}
        try:
            proc = self._run(self._in_root(DELETE), b"\0".join(records) + b"\0", timeout=LONG_TIMEOUT)
        except (RetryableError, PermanentError) as exc:
            return {i: exc for i in records.values()}
        failed = [r for r in proc.stdout.split(b"\0") if r in records]
        if proc.returncode != 0 and not failed:
            exc = classify_stderr(proc.stderr, f"{self.describe()}: delete failed")
            return {i: exc for i in records.values()}
        return {records[r]: classify_stderr(proc.stderr, f"{self.describe()}: cannot delete "
                                      f"{os.fsdecode(r[3:])!r}") for r in failed}

    def _apply_staged(self, items, results, wants: list[_Want]) -> None:
        """Items that do not name their source: stage symlinks to `local`, rsync with -L."""
        staging = tempfile.mkdtemp(prefix="stage-", dir=os.path.dirname(self._ctl_path()))
        try:
            base = os.fsencode(staging)
            staged = []
            for w in wants:
                try:
                    _stage(base, w)
                except OSError as exc:
                    results[w.index] = SyncResult(items[w.index], error=classify_oserror(exc))
                else:
                    staged.append(w)
            self._apply_group(items, results, base, b"", staged, copy_links=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        fix = [w for w in staged if w.fixup and results[w.index].error is None]
        if fix:
            answers, why = self._run_metas([(w.index, w.rel, w.mode, w.mtime_ns) for w in fix])
            for w in fix:
                if not isinstance(answers.get(w.index), MetaDone):
                    results[w.index] = SyncResult(items[w.index], error=why)

    def _apply_group(self, items, results, src: bytes, dest: bytes, wants: list[_Want], *,
                     copy_links: bool = False) -> None:
        if not wants:
            return
        errors: dict[int, Exception] = {}
        try:
            proc = self._rsync(src, dest, [w.rel for w in wants], copy_links=copy_links)
        except (RetryableError, PermanentError) as exc:
            errors = {w.index: exc for w in wants}
        except OSError as exc:   # no rsync binary here
            errors = {w.index: classify_oserror(exc) for w in wants}
        else:
            if proc.returncode in RETRY_EXIT:
                exc = RetryableError(f"{self.describe()}: rsync exit {proc.returncode}: {tail(proc.stderr)}")
                errors = {w.index: exc for w in wants}
            elif proc.returncode != 0:
                errors = self._verify(dest, wants, proc)
        for w in wants:
            item = items[w.index]
            error = errors.get(w.index)
            results[w.index] = (SyncResult(item, error=error) if error
                                else SyncResult(item, w.entry(item.path)))

    def _rsync(self, src: bytes, dest: bytes, rels: list[bytes], *, copy_links: bool):
        o = self.opts
        rsh = " ".join(shlex.quote(a) for a in self._client_argv())
        host = f"[{o.host}]" if ":" in o.host else o.host
        remote = os.fsencode(f"{o.user}@{host}:" if o.user else f"{host}:") + self.root
        remote += (b"/" + dest if dest else b"") + b"/"
        # --ignore-times: every path handed over needs sending (the engine decided so); rsync's
        # own size+mtime quick check would skip a same-size change made within the same second.
        argv: list[str | bytes] = [
            "rsync", "--protect-args", "--ignore-times", "--files-from=-", "--from0", "--times",
            "--perms",
            "--force", "--delete-missing-args", b"--temp-dir=" + self.root + b"/" + RSYNC_TMP,
            f"--timeout={max(30, math.ceil(o.connect_timeout * 3))}", "-e", rsh]
        if copy_links:
            # staged: the staging parents are 0755 stand-ins; never push their modes/mtimes
            # onto directories on the host (missing ones are made with the host's defaults)
            argv += ["--copy-links", "--no-implied-dirs"]
        if dest:
            argv.append("--mkpath")
        if o.rsync_path != "rsync":
            argv.append(f"--rsync-path={o.rsync_path}")
        argv += ["--", src + b"/", remote]
        self._ensure_master()
        with self._lock:
            self.rsync_runs += 1
        with self._sessions:
            return subprocess.run(argv, input=b"\0".join(rels) + b"\0", capture_output=True)

    def _verify(self, dest: bytes, wants: list[_Want],
                proc: subprocess.CompletedProcess) -> dict[int, Exception]:
        """After a partial failure: one remote stat of the group says which items failed."""
        prefix = b"./" + dest + b"/" if dest else b"./"
        try:
            check = self._run(self._in_root(STAT_MANY), b"\0".join(prefix + w.rel for w in wants) + b"\0")
        except (RetryableError, PermanentError) as exc:
            return {w.index: exc for w in wants}
        remote: dict[bytes, tuple[bytes, int, int]] = {}
        for rec in filter(None, check.stdout.split(b"\0")):
            kind, path, size, ns, _mode = parse_record(rec)
            remote[path] = (kind, size, ns)
        slack = max(self.features.mtime_precision, 1e-6) * 1e9
        errors: dict[int, Exception] = {}
        for w in wants:
            got = remote.get((prefix + w.rel)[2:])
            if w.kind == "dir":
                ok = got is not None and got[0] == b"d"
            else:
                ok = (got is not None and got[0] == b"f" and got[1] == w.size
                      and abs(got[2] - w.mtime_ns) <= slack)
            if not ok:
                errors[w.index] = classify_stderr(proc.stderr, f"{self.describe()}: rsync exit "
                                            f"{proc.returncode}, {os.fsdecode(w.rel)!r} not transferred")
        return errors

    # ------------------------------------------------------------ single changes
    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None) -> Entry:
        check_relpath(path)
        return self._one(SyncItem(path, "file", local, size, mtime, mode=mode, mtime_ns=mtime_ns))

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """chmod + touch to the nanosecond on the host (rsync_remote.META_SCRIPT), same inode; NotFound when
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
        if tree:
            body = b"rm -rf -- %s" % p   # may be a big tree: no short timeout below
        else:
            body = (b"if [ -d %s ] && [ ! -L %s ]; then rmdir -- %s 2>/dev/null; exit 0; fi\n"
                    b"rm -f -- %s" % (p, p, p, p))
        self._check(self._run(self._in_root(body), timeout=LONG_TIMEOUT), f"cannot delete {path!r}")

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        p = self._rel(path)
        body = MKDIRS + NOLINK + (b"if [ -L %s ] || { [ -e %s ] && [ ! -d %s ]; }; then rm -f -- %s; fi\n"
                          b"mkdirs %s" % (p, p, p, p, p))
        if mode is not None:   # chmod follows symlinks: none may be on the way; no umask applies
            body += (b" && { nolink %s || { echo 'a symlink is on the way' >&2; exit 1; }; }"
                     b" && chmod %o %s" % (p, mode, p))
        self._check(self._run(self._in_root(body)), f"cannot create directory {path!r}")

    def move(self, src: str, dst: str) -> None:
        s, d = self._rel(src), self._rel(dst)
        if dst == src or dst.startswith(src + "/"):
            raise PermanentError(f"{self.describe()}: cannot move {src!r} into itself")
        parent = dst.rpartition("/")[0]
        body = b"[ -e %s ] || [ -L %s ] || exit %d\n" % (s, s, EXIT_ABSENT)
        if parent:
            body += MKDIRS + b"mkdirs %s || exit 1\n" % self._rel(parent)
        body += b"rm -rf -- %s && mv -T -- %s %s" % (d, s, d)
        proc = self._run(self._in_root(body), timeout=LONG_TIMEOUT)
        if proc.returncode == EXIT_ABSENT:
            raise NotFound(f"{src!r} is not on {self.describe()}")
        self._check(proc, f"cannot move {src!r} to {dst!r}")

    def read(self, path: str) -> bytes | None:
        return self._cat(self._rel(path), path)

    def _cat(self, p: bytes, what: str) -> bytes | None:
        proc = self._run(self._in_root(
            b"[ -f %s ] && [ ! -L %s ] || exit %d\nexec cat -- %s" % (p, p, EXIT_ABSENT, p)))
        if proc.returncode == EXIT_ABSENT:
            return None
        self._check(proc, f"cannot read {what!r}")
        return proc.stdout

    def checksum(self, path: str) -> str | None:
        p = self._rel(path)
        proc = self._run(self._in_root(
            b"[ -f %s ] && [ ! -L %s ] || exit %d\nsha256sum < %s" % (p, p, EXIT_ABSENT, p)))
        if proc.returncode in (EXIT_ABSENT, 127):   # absent, or no sha256sum on the host
            return None
        self._check(proc, f"cannot checksum {path!r}")
        return proc.stdout.split()[0].decode("ascii")

    # ------------------------------------------------------------ meta
    @staticmethod
    def _meta(name: str) -> bytes:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise PermanentError(f"bad meta name {name!r}")
        return q(b"./" + META_DIR.encode() + b"/" + os.fsencode(name))

    def write_meta(self, name: str, data: bytes) -> None:
        target = self._meta(name)
        body = (b"mkdir -p .mirrord && t=$(mktemp .mirrord/.meta.XXXXXX) || exit 1\n"
                b"if cat >\"$t\" && chmod 644 \"$t\" && mv -f -- \"$t\" %s; then exit 0; fi\n"
                b"rm -f -- \"$t\"; exit 1" % target)
        self._check(self._run(self._in_root(body), bytes(data)), f"cannot write {META_DIR}/{name}")

    def read_meta(self, name: str) -> bytes | None:
        return self._cat(self._meta(name), f"{META_DIR}/{name}")


@functools.cache
def cpu_has_aes(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AES instructions (x86 'flags', arm64 'Features'): then AES-GCM
    is the cheaper SSH cipher. Unknown is False, which leaves ssh's own order."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


@dataclass
class _SourceDirs:
    """What one sync() call found at the source: roots that are directories, and parent
    paths lstat'ed as real directories (a batch holds thousands of files in a few)."""

    roots: dict[bytes, bool] = field(default_factory=dict)
    dirs: set[bytes] = field(default_factory=set)


def _source_state(root: bytes, rel: bytes,
                  real_dirs: set[bytes]) -> tuple[str, os.stat_result | None]:
    """('file'|'dir', lstat) of root/rel, or ('absent', None) when it is missing, not a
    regular file or directory, or reached through a symlink (never followed out of the tree).
    `real_dirs`: parents already seen to be real directories in this batch (and added to)."""
    parts = rel.split(b"/")
    cur = root
    try:
        for part in parts[:-1]:
            cur = os.path.join(cur, part)
            if cur in real_dirs:
                continue
            if not stat_mod.S_ISDIR(os.lstat(cur).st_mode):
                return "absent", None
            real_dirs.add(cur)
        st = os.lstat(os.path.join(cur, parts[-1]))
    except (FileNotFoundError, NotADirectoryError):
        return "absent", None
    if stat_mod.S_ISREG(st.st_mode):
        return "file", st
    if stat_mod.S_ISDIR(st.st_mode):
        return "dir", st
    return "absent", None


def _stage(base: bytes, w: _Want) -> None:
    full = os.path.join(base, w.rel)
    if w.kind == "dir":
        _makedirs(base, w.rel)
        os.chmod(full, 0o755 if w.mode is None else w.mode)   # rsync -p sends it
        os.utime(full, ns=(w.mtime_ns, w.mtime_ns))
    else:
        _makedirs(base, os.path.dirname(w.rel))
        os.symlink(os.fsencode(w.local), full)


def _makedirs(base: bytes, rel: bytes) -> None:
    """Create staging directories 0755 whatever the umask (rsync copies their modes)."""
    cur = base
    for part in filter(None, rel.split(b"/")):
        cur = os.path.join(cur, part)
        if not os.path.isdir(cur):
            os.mkdir(cur)
            os.chmod(cur, 0o755)
