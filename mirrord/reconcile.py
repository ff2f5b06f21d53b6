"""The reconciler: one full compare-and-repair pass of a source tree against a target.

A pass merges ONE streaming walk of the source with ONE streaming listing of
the target (and, for targets whose listing does not carry the source mtime,
the ordered `shipped` rows of the state database), key by key, in
mirrord.treewalk.entry_key order. Memory stays at a few items per stream plus
the list of extra entries waiting to be deleted.

It compares what the live stream ships: size, mtime and mode (the mode only
where the target keeps it, Features.keeps_mode), directories' modes included
where the target has directories. Size or mtime differ: a 'put'; the mode
alone: an 'attr' (a file) or a 'mkdir' (a directory), counted as `changed`
with reason 'mode'. Local and rsync listings carry mode and mtime. An S3
listing carries neither: an object whose ETag is the one we shipped is judged
by its `shipped` row; only the others are HEAD'ed (stat: metadata mtime and
mode), in parallel within a bounded window, as checksum mode hashes.

Differences become journal Changes handed to `emit` (repairs, as found) and
`emit_deletes` (once, at the end, after every repair was proposed). The pass
never writes the journal itself, so the daemon (from its scanner thread) and
the `mirrord reconcile` command share it.

Safety, learned from the mass-delete bugs of lsyncd, mc mirror and rclone:
deletes are proposed only when the whole pass is trustworthy. Any unreadable
source directory, a target listing that failed, a missing / empty / replaced
source root, or more deletes than `[reconcile] max_delete` allows: nothing is
deleted on this pass, and the result says why. Right before a delete is
proposed the source path is looked at again (lstat): a file created meanwhile
is kept. A delete or put that loses a race later is still safe, because the
shipper is state-based: it ships whatever the source holds when it runs.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mirrord import journal
from mirrord.compare import NEEDS_STAT, ShippedRow, against_listing, against_stat, change_kind
from mirrord.config import Config, SourceConfig
from mirrord.errors import MirrordError
from mirrord.journal import Change
from mirrord.logsetup import kv
from mirrord.merge import Cursor, below, merge
from mirrord.targets.base import META_DIR, Entry, Target, join
from mirrord.treewalk import WalkErrors, entry_key, file_digest, walk

log = logging.getLogger("mirrord.reconcile")

CHUNK = 500                 # changes per emit() call
PROGRESS_EVERY = 2000       # merged keys between progress callbacks
CHECKSUM_WORKERS = 8        # concurrent content hashes / HEADs
CHECKSUM_WINDOW = 64        # hashes / HEADs in flight at most
STATE_KEY = "reconcile:{target}"

Emit = Callable[[list[Change]], None]


@dataclass
class ReconcileResult:
    """What one pass of one source against one target found and proposed.

    Counts are entries: files, plus directories on targets that keep them;
    `compared` counts source files. `deleted` and `bytes` are what the pass
    *proposed*; the caller knows when they are done.
    """

    target: str
    source: str
    started_at: float = 0.0
    duration: float = 0.0
    compared: int = 0
    target_entries: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0
    deleted: int = 0
    kept_extra: int = 0          # extras left alone because delete is off
    refused_deletes: int = 0     # extras not deleted because the pass was not trustworthy
    reappeared: int = 0          # extras that exist at the source again by delete time
    checksummed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    delete_refusal: str | None = None
    complete: bool = False       # both listings were merged to the end

    @property
    def clean(self) -> bool:
        """True when everything found can be repaired: no error, no refused delete."""
        return self.complete and not self.errors and not self.refused_deletes

    def to_state(self) -> dict:
        doc = dataclasses.asdict(self)
        doc["unreadable"] = [list(u) for u in self.unreadable[:20]]
        doc["errors"] = self.errors[:20]
        return doc


def reconcile_target(cfg: Config, target: Target, *, emit: Emit, emit_deletes: Emit | None = None,
                     **options) -> list[ReconcileResult]:
    """One pass for every source that mirrors to `target` (see reconcile_pass)."""
    return [reconcile_pass(cfg, target, src, emit=emit, emit_deletes=emit_deletes, **options)
            for src in cfg.sources_for(target.name)]


def reconcile_pass(cfg: Config, target: Target, source: SourceConfig, *, emit: Emit,
                   emit_deletes: Emit | None = None, delete: bool | None = None,
                   checksum: bool | None = None, stop: threading.Event | None = None,
                   progress: Callable[[ReconcileResult], None] | None = None,
                   db_path: Path | None = None) -> ReconcileResult:
    """Compare `source` with the opened `target`; propose repairs through `emit` and deletes
    through `emit_deletes` (default: `emit`), called once at the end after all repairs.
    `delete` / `checksum` default to the [reconcile] section. Never raises for target or
    source trouble: it is recorded in the result (and then nothing is deleted)."""
    rc = cfg.reconcile
    p = _Pass(target, source, emit, emit_deletes or emit,
              delete=rc.delete if delete is None else delete,
              checksum=rc.checksum if checksum is None else checksum,
              max_delete=rc.max_delete, max_delete_percent=rc.max_delete_percent,
              other_dests=_other_dests(cfg, target.name, source), stop=stop, progress=progress)
    return p.run(db_path or cfg.mirrord.journal_path)


def target_state(results: list[ReconcileResult], *, when: float | None = None) -> dict:
    """The document `mirrord status` shows for a target's last pass (Journal.set_state)."""
    keys = ("compared", "missing", "changed", "extra", "deleted", "refused_deletes", "bytes")
    doc: dict = {k: sum(getattr(r, k) for r in results) for k in keys}
    doc["at"] = when if when is not None else min((r.started_at for r in results), default=time.time())
    doc["duration"] = sum(r.duration for r in results)
    doc["errors"] = [e for r in results for e in r.errors][:20]
    doc["delete_refusal"] = next((r.delete_refusal for r in results if r.delete_refusal), None)
    doc["in_sync"] = all(r.clean for r in results)
    return doc


def _other_dests(cfg: Config, target: str, source: SourceConfig) -> tuple[str, ...]:
    """Areas of this target that belong to other sources nested below this one's dest."""
    mine = source.dest.strip("/")
    out = []
    for other in cfg.sources_for(target):
        dest = other.dest.strip("/")
        if other.name == source.name or dest == mine:
            continue
        if not mine:
            out.append(dest)
        elif dest.startswith(mine + "/"):
            out.append(dest[len(mine) + 1:])
    return tuple(out)


def _root_identity(root: str) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if os.path.isdir(root) else None


@dataclass
class _Extra:
    path: str
    is_dir: bool
    count: int = 1   # entries it stands for (a directory: itself and everything below)


class _Pass:
    """One merge of a source walk with a target listing (and the shipped rows)."""

    def __init__(self, target: Target, source: SourceConfig, emit: Emit, emit_deletes: Emit, *,
                 delete: bool, checksum: bool, max_delete: int, max_delete_percent: float | None,
                 other_dests: tuple[str, ...], stop: threading.Event | None,
                 progress: Callable[[ReconcileResult], None] | None):
        self.target, self.source = target, source
        self.emit, self.emit_deletes = emit, emit_deletes
        self.delete, self.checksum = delete, checksum
        self.max_delete, self.max_delete_percent = max_delete, max_delete_percent
        self.other = tuple(os.fsencode(d) + b"/" for d in other_dests if d)
        self.stop = stop or threading.Event()
        self.progress = progress
        self.root = str(source.path)
        self.features = target.features
        self.tolerance = max(target.features.mtime_precision, 1e-6) + 1e-6
        self.modes = target.features.keeps_mode
        self.res = ReconcileResult(target.name, source.name)
        self.batch: list[Change] = []
        self.extras: list[_Extra] = []
        self.extra_dir: bytes | None = None
        self.source_entries = 0
        self.pool: ThreadPoolExecutor | None = None
        # entries waiting for a worker's answer (a content hash, a HEAD), and how to judge it
        self.window: collections.deque[tuple[Entry, Future, Callable]] = collections.deque()

    # ------------------------------------------------------------ the pass
    def run(self, db_path: Path) -> ReconcileResult:
        res = self.res
        res.started_at = time.time()
        started = time.monotonic()
        identity = _root_identity(self.root)
        try:
            if identity is None:
                res.errors.append(f"source root {self.root} is missing or not a directory")
            else:
                res.complete = self._merge_all(db_path)
                if self.stop.is_set():
                    res.errors.append("stopped before the end of the pass")
            self._finish_deletes(identity)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            res.duration = time.monotonic() - started
        if self.progress is not None:
            self.progress(res)
        self._log()
        return res

    def _merge_all(self, db_path: Path) -> bool:
        """Merge both listings to the end; False when stopped or a listing failed."""
        errors = WalkErrors([])
        conn = None
        try:
            src = Cursor(walk(self.root, include_dirs=self.features.directories,
                              excluded=self.source.excluded, errors=errors), entry_key)
            tgt = Cursor(self._target_entries(), entry_key)
            if not self.features.list_mtime:
                conn = _open_readonly(db_path)
            shipped = Cursor(self._shipped_rows(conn), lambda row: row[0])
            for n, (key, (s, t)) in enumerate(merge(src, tgt)):
                if self.stop.is_set():
                    return False
                for _ in shipped.take_before(key):
                    pass
                self._compare(key, s, t, shipped.take_equal(key))
                if self.progress is not None and n % PROGRESS_EVERY == 0:
                    self.progress(self.res)
            while self.window:
                self._settle()
            self._flush()
            return True
        except (MirrordError, OSError, sqlite3.Error) as exc:
            self.res.errors.append(f"listing failed: {type(exc).__name__}: {exc}")
            self._flush()
            return False
        finally:
            if conn is not None:
                conn.close()
            self.res.unreadable = list(errors.unreadable)
            for where, why in errors.unreadable[:20]:
                self.res.errors.append(f"source directory {where!r} could not be read: {why}")

    def _compare(self, key: bytes, s: Entry | None, t: Entry | None,
                 h: ShippedRow | None) -> None:
        if s is not None:
            self.source_entries += 1
            self.res.compared += not s.is_dir
        if t is not None:
            self.res.target_entries += 1
        if s is not None and t is not None:
            if s.is_dir:
                if self.modes and t.mode is not None and t.mode != s.mode:
                    self._send(s, "changed", "mode")
                return
            reason = self._differs(s, t, h)
            if reason == NEEDS_STAT:
                self._later(s, self._stat, self._judge_stat)
            elif reason is not None:
                self._send(s, "changed", reason)
            elif self.checksum:
                self._check_content(s)
        elif s is not None:
            self._send(s, "missing", "not on target")
        elif t is not None:
            self._extra(key, t)

    def _differs(self, s: Entry, t: Entry, h: ShippedRow | None) -> str | None:
        return against_listing(s, t, h, list_mtime=self.features.list_mtime,
                               keeps_mode=self.modes, tolerance=self.tolerance)

    def _stat(self, s: Entry) -> Entry | None:
        return self.target.stat(join(self.source.dest, s.path))

    def _judge_stat(self, s: Entry, t: Entry | None) -> str | None:
        reason = against_stat(s, t, keeps_mode=self.modes, tolerance=self.tolerance)
        if reason is None and self.checksum:
            self._check_content(s, settle=False)
        return reason

    # ------------------------------------------------------------ listings
    def _target_entries(self) -> Iterator[Entry]:
        dest = self.source.dest.strip("/")
        cut = len(dest) + 1 if dest else 0
        skip: bytes | None = None
        for e in self.target.list(dest):
            if dest and not e.path.startswith(dest + "/"):
                continue  # the dest directory itself
            rel = e.path[cut:]
            key = os.fsencode(rel) + (b"/" if e.is_dir else b"")
            if skip is not None and key.startswith(skip):
                continue
            if self._not_ours(rel, key):
                skip = key if e.is_dir else skip
                continue
            yield Entry(rel, e.size, e.mtime, e.is_dir, e.digest, e.token, e.mtime_ns, e.mode)

    def _not_ours(self, rel: str, key: bytes) -> bool:
        """Target entries this source must neither compare nor delete."""
        return (rel.split("/", 1)[0] == META_DIR or below(key, self.other)
                or self.source.excluded(rel))

    def _shipped_rows(self, conn: sqlite3.Connection | None) -> Iterator[tuple]:
        if conn is None:
            return iter(())
        return journal.iter_shipped(conn, self.target.name, self.source.name)

    # ------------------------------------------------------------ proposals
    def _send(self, s: Entry, what: str, reason: str) -> None:
        if what == "missing":
            self.res.missing += 1
        else:
            self.res.changed += 1
        log.debug("%s %s on %s: %s", what, s.path, self.target.name, reason)
        kind = change_kind(s, reason)            # 'attr' and 'mkdir' send no body
        if kind == "put":
            self.res.bytes += s.size
        self.batch.append(Change(self.source.name, s.path, kind, size=s.size, time=time.time(),
                                 targets=(self.target.name,)))
        if len(self.batch) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.emit(batch)

    def _extra(self, key: bytes, t: Entry) -> None:
        self.res.extra += 1
        if self.extra_dir is not None and key.startswith(self.extra_dir):
            if self.extras:
                self.extras[-1].count += 1  # removed with its extra parent directory
            return
        self.extra_dir = key if t.is_dir else None
        if self.max_delete_percent is None and self.res.extra > self.max_delete:
            return  # over the cap: the deletes will be refused; stop remembering them
        self.extras.append(_Extra(t.path, t.is_dir))

    # ------------------------------------------------------------ checksum mode
    def _check_content(self, s: Entry, *, settle: bool = True) -> None:
        self._later(s, self._content_differs, self._judge_content, settle=settle)

    def _judge_content(self, s: Entry, differs: bool) -> str | None:
        self.res.checksummed += 1
        return "content" if differs else None

    def _later(self, s: Entry, work: Callable, judge: Callable, *, settle: bool = True) -> None:
        """Run work(s) on the pool; judge(s, answer) -> reason (or None) once it is done.
        At most CHECKSUM_WINDOW are in flight: memory and requests stay bounded."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(CHECKSUM_WORKERS, thread_name_prefix="reconcile-sum")
        self.window.append((s, self.pool.submit(work, s), judge))
        if settle and len(self.window) >= CHECKSUM_WINDOW:
            self._settle()

    def _settle(self) -> None:
        s, fut, judge = self.window.popleft()
        try:
            answer = fut.result()
        except (MirrordError, OSError) as exc:
            what = "checksum" if judge == self._judge_content else "stat"
            self.res.errors.append(f"{what} of {s.path!r}: {type(exc).__name__}: {exc}")
            return
        reason = judge(s, answer)
        if reason is not None:
            self._send(s, "missing" if reason == "not on target" else "changed", reason)

    def _content_differs(self, s: Entry) -> bool:
        try:
            mine = file_digest(os.path.join(self.root, s.path))
        except FileNotFoundError:
            return False  # gone at the source meanwhile: the live stream deals with it
        remote_path = join(self.source.dest, s.path)
        theirs = self.target.checksum(remote_path)
        if theirs is None:
            data = self.target.read(remote_path)
            if data is None:
                return True
            theirs = hashlib.sha256(data).hexdigest()
        return theirs != mine

    # ------------------------------------------------------------ deletes
    def _finish_deletes(self, identity: tuple[int, int] | None) -> None:
        res, total = self.res, self.res.extra
        if not total:
            return
        if not self.delete:
            res.kept_extra = total
            return
        reason = self._refusal(identity, total)
        if reason is not None:
            res.refused_deletes, res.delete_refusal = total, reason
            return
        changes = []
        for extra in self.extras:
            if os.path.lexists(os.path.join(self.root, extra.path)):
                res.reappeared += extra.count   # created at the source during the pass: keep
                continue
            res.deleted += extra.count
            changes.append(Change(self.source.name, extra.path, "delete", tree=extra.is_dir,
                                  time=time.time(), targets=(self.target.name,)))
        for i in range(0, len(changes), CHUNK):
            self.emit_deletes(changes[i:i + CHUNK])

    def _refusal(self, identity: tuple[int, int] | None, total: int) -> str | None:
        """Why nothing may be deleted on this pass, or None."""
        where = f"target {self.target.name!r} (source {self.source.name!r})"
        if not self.res.complete:
            return f"the pass did not complete: not deleting {total} extra entries on {where}"
        if self.res.unreadable:
            first, why = self.res.unreadable[0]
            return (f"{len(self.res.unreadable)} source directories could not be read (first: "
                    f"{first!r}: {why}): not deleting {total} extra entries on {where} this pass")
        if identity is None or _root_identity(self.root) != identity:
            return (f"source root {self.root} changed during the pass (unmounted or replaced?): "
                    f"not deleting {total} extra entries on {where}")
        if self.source_entries == 0:
            return (f"source root {self.root} is empty (unmounted?) while {where} holds "
                    f"{total} entries: not deleting anything")
        return self._over_cap(where, total)

    def _over_cap(self, where: str, total: int) -> str | None:
        if self.max_delete_percent is not None:
            allowed = int(self.max_delete_percent / 100 * self.res.target_entries)
            if total > allowed:
                share = 100 * total / max(1, self.res.target_entries)
                return (f"refusing to delete {total} of {self.res.target_entries} entries "
                        f"({share:.1f}%) on {where}: more than [reconcile] max_delete = "
                        f"{self.max_delete_percent:g}%; nothing deleted this pass (check the "
                        f"source, then raise max_delete or use --no-delete)")
            return None
        if total > self.max_delete:
            return (f"refusing to delete {total} entries on {where}: more than [reconcile] "
                    f"max_delete = {self.max_delete}; nothing deleted this pass (check the "
                    f"source, then raise max_delete or use --no-delete)")
        return None

    def _log(self) -> None:
        r = self.res
        log.info(kv(msg="reconcile pass", source=r.source, target=r.target, compared=r.compared,
                    missing=r.missing, changed=r.changed, extra=r.extra, deletes=r.deleted,
                    refused=r.refused_deletes, seconds=round(r.duration, 3)))
        if r.delete_refusal:
            log.error(kv(msg="reconcile deletes refused", source=r.source, target=r.target,
                         why=r.delete_refusal))
        for err in r.errors[:5]:
            log.warning(kv(msg="reconcile error", source=r.source, target=r.target, error=err))


def _open_readonly(db_path: Path) -> sqlite3.Connection | None:
    """The state database for reading, or None when there is none yet (nothing shipped)."""
    if not Path(db_path).exists():
        return None
    conn = journal.connect(Path(db_path), readonly=True)
    try:
        conn.execute("SELECT 1 FROM shipped LIMIT 1")
    except sqlite3.OperationalError:
        conn.close()
        return None
    return conn
