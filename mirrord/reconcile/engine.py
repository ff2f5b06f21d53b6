"""The reconcile engine: one full compare pass of a source tree against a target.

A pass merges ONE streaming walk of the source with ONE streaming listing of
the target (and, for targets whose listing does not carry the source mtime,
the ordered `shipped` rows of the state database), key by key, in
mirrord.treewalk.entry_key order. Memory stays at a few items per stream plus
the list of extra entries waiting to be deleted. The target listing as this
source sees it, and the shipped rows, are mirrord.reconcile.listings.

It compares what the live stream ships: size, mtime and mode (the mode only
where the target keeps it, Features.keeps_mode), directories' modes included
where the target has directories. Size or mtime differ: a 'put'; the mode
alone: an 'attr' (a file) or a 'mkdir' (a directory), counted as `changed`
with reason 'mode'. Local and rsync listings carry mode and mtime. An S3
listing carries neither: an object whose ETag is the one we shipped is judged
by its `shipped` row; only the others are HEAD'ed (stat: metadata mtime and
mode), in parallel within a bounded window, as checksum mode hashes.

A source name the target can never hold (Target.cannot_hold: S3 and a name that is
not UTF-8) is an error of the pass, not a repair: proposed, it failed in every pass,
and a failed repair holds back the pass's deletes (mirrord.reconcile.session), so one
such file kept every extra on the bucket for ever.

An entry on both sides at or below a removal in flight (a claimed tree op or delete:
mirrord.journal.read.in_flight_removals) is proposed as missing: that removal's worker
looked at the source before it changed back, and takes the entry off the target after
the listing showed it (the catch-up's rule, mirrord.catchup).

Differences become journal Changes handed to `emit` (repairs, as found) and
`emit_deletes` (at the end, after every repair was proposed: the deletes, then the repairs
that replace what they remove, mirrord.type_swaps). The pass
never writes the journal itself, so the daemon (from its scanner thread) and
the `mirrord reconcile` command share it.

Which extras may be deleted, and when none may, is mirrord.reconcile.deletes. A
directory that leads to another source's area nested below this one's dest is no extra:
the shipper leaves it standing when it removes this source's tree (mirrord.nested).
The session (mirrord.reconcile.session) runs the pass and ships its proposals.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mirrord.compare import (
    NEEDS_STAT,
    ShippedRow,
    against_listing,
    against_stat,
    change_kind,
)
from mirrord.config import Config, SourceConfig
from mirrord.errors import MirrordError
from mirrord.journal import Change
from mirrord.journal.read import in_flight_removals, removal_covers
from mirrord.merge import Cursor, merge
from mirrord.reconcile.deletes import CHUNK, DeletePlan, root_identity
from mirrord.reconcile.listings import (
    open_readonly,
    other_dests,
    own_entries,
    shipped_rows,
    target_entries,
)
from mirrord.reconcile.finish import FinishDeletes
from mirrord.reconcile.result import ReconcileResult, log_pass
from mirrord.reconcile.window import Window, content_differs
from mirrord.targets.base import Target
from mirrord.targets.model import Entry
from mirrord.targets.paths import join
from mirrord.treewalk import WalkErrors, entry_key, walk
from mirrord.type_swaps import TypeSwaps

log = logging.getLogger("mirrord.reconcile")

PROGRESS_EVERY = 2000       # merged keys between progress callbacks

Emit = Callable[[list[Change]], None]


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
              other_dests=other_dests(cfg, target.name, source), stop=stop, progress=progress)
    return p.run(db_path or cfg.mirrord.journal_path)


class _Pass(FinishDeletes):
    """One merge of a source walk with a target listing (and the shipped rows)."""

    def __init__(self, target: Target, source: SourceConfig, emit: Emit, emit_deletes: Emit, *,
                 delete: bool, checksum: bool, max_delete: int, max_delete_percent: float | None,
                 other_dests: tuple[str, ...], stop: threading.Event | None,
                 progress: Callable[[ReconcileResult], None] | None):
        self.target, self.source = target, source
        self.emit, self.emit_deletes = emit, emit_deletes
        self.checksum = checksum
        self.deletes = DeletePlan(delete=delete, max_delete=max_delete,
                                  max_delete_percent=max_delete_percent)
        self.other = tuple(os.fsencode(d) + b"/" for d in other_dests if d)
        self.in_areas: dict[bytes, int] = {}   # listings.own_entries: entries in another's area
        self.stop = stop or threading.Event()
        self.progress = progress
        self.root = str(source.path)
        self.features = target.features
        self.tolerance = max(target.features.mtime_precision, 1e-6) + 1e-6
        self.modes = target.features.keeps_mode
        self.res = ReconcileResult(target.name, source.name)
        self.batch: list[Change] = []
        self.window = Window(self._answered, self._lookup_failed)   # hashes and HEADs
        self.removing: frozenset[bytes] = frozenset()   # journal.read.in_flight_removals
        # repairs replacing an extra of the other type: sent only with its delete
        self.swaps: TypeSwaps[Change] | None = TypeSwaps() if self.features.directories else None

    # ------------------------------------------------------------ the pass
    def run(self, db_path: Path) -> ReconcileResult:
        res = self.res
        res.started_at = time.time()
        started = time.monotonic()
        identity = root_identity(self.root)
        try:
            if identity is None:
                res.errors.append(f"source root {self.root} is missing or not a directory")
            else:
                res.complete = self._merge_all(db_path)
                if self.stop.is_set():
                    res.errors.append("stopped before the end of the pass")
            self._finish_deletes(identity, db_path)
        finally:
            self.window.close()
            res.duration = time.monotonic() - started
        if self.progress is not None:
            self.progress(res)
        log_pass(self.res)
        return res

    def _merge_all(self, db_path: Path) -> bool:
        """Merge both listings to the end; False when stopped or a listing failed."""
        errors = WalkErrors([])
        conn = None
        try:
            src = Cursor(own_entries(walk(self.root, include_dirs=self.features.directories,
                                          excluded=self.source.excluded, errors=errors),
                                     self.other, self.in_areas,
                                     directories=self.features.directories), entry_key)
            tgt = Cursor(target_entries(self.target, self.source, self.other), entry_key)
            conn = open_readonly(db_path)
            # read before the listing: a removal acked in between is in the listing already
            self.removing = (frozenset() if conn is None else
                             in_flight_removals(conn, self.target.name, self.source.name))
            shipped = Cursor(shipped_rows(None if self.features.list_mtime else conn,
                                          self.target.name, self.source.name),
                             lambda row: row[0])
            for n, (key, (s, t)) in enumerate(merge(src, tgt)):
                if self.stop.is_set():
                    return False
                for _ in shipped.take_before(key):
                    pass
                self._compare(key, s, t, shipped.take_equal(key))
                if self.swaps is not None:   # after: an extra at `key` may hold a repair
                    self._queue(self.swaps.passed(key))
                if self.progress is not None and n % PROGRESS_EVERY == 0:
                    self.progress(self.res)
            self.window.drain()
            if self.swaps is not None:
                self._queue(self.swaps.rest())
            self._flush()
            return True
        except (MirrordError, OSError, sqlite3.Error) as exc:
            self.res.errors.append(f"listing failed: {type(exc).__name__}: {exc}")
            self._flush()
            if self.swaps is not None:   # whether they replace a directory cannot be known
                self.swaps.keep_rest()
            return False
        finally:
            if conn is not None:
                conn.close()
            for area, n in sorted(self.in_areas.items()):
                self.res.errors.append(
                    f"[source:{self.source.name}]: {n} entries lie below "
                    f"{os.fsdecode(area[:-1])!r}, another source's dest on this target: not "
                    f"mirrored there (README, [source] dest)")
            self.res.unreadable = list(errors.unreadable)
            for where, why in errors.unreadable[:20]:
                self.res.errors.append(f"source directory {where!r} could not be read: {why}")

    def _compare(self, key: bytes, s: Entry | None, t: Entry | None,
                 h: ShippedRow | None) -> None:
        if s is not None:
            self.res.compared += not s.is_dir   # source files: the empty-root rule reads it
        if t is not None:
            self.res.target_entries += 1
        if s is not None and t is not None and removal_covers(self.removing, key):
            # a removal at a worker now, which looked at the source before it changed
            # back, takes it off the target (the catch-up's rule: mirrord.catchup)
            self._send(s, "missing", "a removal in flight takes it")
        elif s is not None and t is not None:
            if s.is_dir:
                if self.modes and t.mode is not None and t.mode != s.mode:
                    self._send(s, "changed", "mode")
                return
            reason = self._differs(s, t, h)
            if reason is None and self.checksum and not self.features.list_mtime:
                # --checksum where the listing carries no mtime or mode (S3): judged from
                # the record, an object whose metadata was changed in place (the ETag kept)
                # passed; a HEAD reads them, then the bytes are compared (_judge_stat)
                reason = NEEDS_STAT
            if reason == NEEDS_STAT:
                self.window.add(s, self._stat, self._judge_stat)
            elif reason is not None:
                self._send(s, "changed", reason)
            elif self.checksum:
                self._check_content(s)
        elif s is not None:
            self._send(s, "missing", "not on target", key=key)
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

    # ------------------------------------------------------------ proposals
    def _send(self, s: Entry, what: str, reason: str, *, key: bytes | None = None) -> None:
        """Propose the repair of `s`; `key` (its entry_key) for one the target lacks, which
        may replace an extra of the other type there (mirrord.type_swaps)."""
        if what == "missing":
            self.res.missing += 1
        else:
            self.res.changed += 1
        refused = self.target.cannot_hold(join(self.source.dest, s.path))
        if refused is not None:
            # an error of the pass, not a repair: proposed, it would fail in every pass and
            # hold back every delete (see the module docstring)
            self.res.errors.append(f"{what} {s.path!r}: {refused}")
            return
        log.debug("%s %s on %s: %s", what, s.path, self.target.name, reason)
        kind = change_kind(s, reason)            # 'attr' and 'mkdir' send no body
        if kind == "put":
            self.res.bytes += s.size
        change = Change(self.source.name, s.path, kind, size=s.size, time=time.time(),
                        targets=(self.target.name,), repair=True)
        if key is not None and self.swaps is not None and self.swaps.missing(key, change, s.is_dir):
            return
        self._queue([change])

    def _queue(self, changes: list[Change]) -> None:
        self.batch.extend(changes)
        if len(self.batch) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.emit(batch)

    def _extra(self, key: bytes, t: Entry) -> None:
        if t.is_dir and any(area.startswith(key) for area in self.other):
            return   # leads to another source's area: not this source's to delete (mirrord.nested)
        self.res.extra += 1
        self.deletes.add(key, t.path, t.is_dir)
        if self.swaps is not None:
            self.swaps.extra(key, t.is_dir)

    # ------------------------------------------------------------ checksum mode
    def _check_content(self, s: Entry, *, settle: bool = True) -> None:
        self.window.add(s, lambda e: content_differs(self.target, self.root, self.source.dest, e),
                        self._judge_content, settle=settle)

    def _judge_content(self, s: Entry, differs: bool) -> str | None:
        self.res.checksummed += 1
        return "content" if differs else None

    def _lookup_failed(self, s: Entry, judge: Callable, exc: Exception) -> None:
        what = "checksum" if judge == self._judge_content else "stat"
        self.res.errors.append(f"{what} of {s.path!r}: {type(exc).__name__}: {exc}")

    def _answered(self, s: Entry, reason: str) -> None:
        self._send(s, "missing" if reason == "not on target" else "changed", reason)
