"""The durable change journal (SQLite, WAL) and the record of what was shipped.

One row per (target, source, path): several changes to a path coalesce into
the latest, so a path is never worked on by two workers at once and its
changes apply in order. Every op is state-based — the shipper looks at the
source when it runs — so coalescing never loses information.

An 'attr' change (only the mode or mtime changed: chmod, utime) never
weakens a pending op: arriving on a row that holds a put, move, delete or
mkdir it keeps that kind (which, state-based, ships the metadata too); a put,
delete or mkdir arriving on an 'attr' row replaces it. claim() hands an attr
op the path's shipped (size, mtime_ns, mode), so the shipper can send the
metadata alone. `shipped.mode` (schema 2) is NULL where not known.

A source file still open for writing (SourceBusy) is a wait, not a failure
(schema 3): its row is marked `busy` and counted in `target_stats.busy`, not
in `failed`; status shows such rows as waiting for writers, not as failing.

Moves keep their order with a `wait_for` link: after `mv A B` the row for A
(delete) waits for the row for B (move A->B), so a new A cannot be shipped and
then moved away. Directory ops (a directory moved, or deleted with its tree)
are barriers: rows below their paths enqueued after them wait for them.

Only the daemon's main thread writes; readers (status, catch-up scans) open
their own read-only connections. A change is safe once `enqueue` returns.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from mirrord.compare import ShippedRow   # (key, size, mtime_ns, token, mode): see iter_shipped
from mirrord.errors import JournalError

SCHEMA_VERSION = 3   # 2: shipped.mode (permission bits; NULL = not known); 3: ops.busy, target_stats.busy
RETRY_BASE, RETRY_MAX, PERMANENT_RETRY = 0.5, 60.0, 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    path BLOB NOT NULL,
    kind TEXT NOT NULL,
    src BLOB,
    is_dir INTEGER NOT NULL DEFAULT 0,
    tree INTEGER NOT NULL DEFAULT 0,
    tree_seq INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 1,
    claimed INTEGER NOT NULL DEFAULT 0,
    wait_for INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    first_seen REAL NOT NULL,
    event_time REAL NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    busy INTEGER NOT NULL DEFAULT 0,
    UNIQUE (target, source, path)
);
CREATE INDEX IF NOT EXISTS ops_ready ON ops (target, claimed, next_try, id);
CREATE INDEX IF NOT EXISTS ops_wait ON ops (wait_for) WHERE wait_for IS NOT NULL;
CREATE TABLE IF NOT EXISTS shipped (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    token TEXT,
    mode INTEGER,
    PRIMARY KEY (target, source, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS target_stats (
    target TEXT PRIMARY KEY,
    shipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_path BLOB,
    last_kind TEXT,
    last_at REAL,
    last_error TEXT,
    last_error_at REAL,
    busy INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# An op a worker may take now (parameters: target, now): what claim() hands out and
# count_ready() counts, so the two can never disagree. Served by the ops_ready index.
_READY = "target = ? AND claimed = 0 AND next_try <= ? AND wait_for IS NULL"


def _b(path: str) -> bytes:
    return os.fsencode(path)


def _s(blob: bytes) -> str:
    return os.fsdecode(bytes(blob))


def _text(message: str | None) -> str | None:
    """A message safe for a TEXT column: a path that is not UTF-8 reaches us
    surrogate-escaped, which sqlite3 refuses to bind (failing the whole ack)."""
    if message is None:
        return None
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def ship_key(path: str, is_dir: bool) -> bytes:
    """The `shipped` table key: path bytes, directories as 'path/' (mirrord.treewalk.entry_key)."""
    return _b(path) + (b"/" if is_dir else b"")


def _prefix_upper(prefix: bytes) -> bytes:
    """Smallest byte string greater than every string starting with `prefix` + b'/'."""
    return prefix + b"0"  # '0' is the byte after '/'


def _self_and_ancestors(path: bytes) -> Iterator[bytes]:
    """b"a/b/c" -> b"a/b/c", b"a/b", b"a"."""
    yield path
    cut = path.rfind(b"/")
    while cut > 0:
        path = path[:cut]
        yield path
        cut = path.rfind(b"/")


class _Barriers:
    """Pending directory moves and tree removals: rows that later rows at or below their
    paths must wait for. Indexed by path, so finding the one covering a path costs one
    lookup per path component: a linear scan over every barrier made each enqueue
    O(backlog) and a churn backlog of thousands of tree removals quadratic."""

    def __init__(self) -> None:
        self._rows: dict[int, tuple[str, str, tuple[bytes, ...]]] = {}
        self._index: dict[tuple[str, str], dict[bytes, set[int]]] = {}

    def set(self, oid: int, target: str, source: str, paths: tuple[bytes, ...]) -> None:
        self.drop(oid)
        self._rows[oid] = (target, source, paths)
        index = self._index.setdefault((target, source), {})
        for p in paths:
            index.setdefault(p, set()).add(oid)

    def drop(self, oid: int) -> None:
        entry = self._rows.pop(oid, None)
        if entry is None:
            return
        target, source, paths = entry
        index = self._index[(target, source)]
        for p in paths:
            ids = index.get(p)
            if ids is not None:
                ids.discard(oid)
                if not ids:
                    del index[p]

    def covering(self, target: str, source: str, path: bytes, own: int | None) -> int | None:
        """The newest barrier (other than `own`) at `path` or at one of its ancestors."""
        index = self._index.get((target, source))
        if not index:
            return None
        best = None
        for p in _self_and_ancestors(path):
            for bid in index.get(p, ()):
                if bid != own and (best is None or bid > best):
                    best = bid
        return best


@dataclass(frozen=True)
class Change:
    """Something that happened at a source path, as the watcher or a scan saw it."""

    source: str
    path: str
    kind: str                       # put | delete | mkdir | attr (mode/mtime only: see Journal)
    tree: bool = False              # remove everything at/below path first
    size: int = 0
    time: float = 0.0
    targets: tuple[str, ...] | None = None   # None: every target of the source
    delay: float = 0.0


@dataclass(frozen=True)
class Op:
    """A claimed row: what a worker should do, frozen at claim time."""

    id: int
    seq: int
    target: str
    source: str
    path: str
    kind: str
    src: str | None
    is_dir: bool
    tree: bool
    attempts: int
    event_time: float
    src_shipped: tuple[int, int, int | None] | None = None   # moves: (size, mtime_ns, mode) of src as last shipped
    shipped: tuple[int, int, int | None] | None = None   # attr ops: (size, mtime_ns, mode) of path as last shipped


@dataclass
class Outcome:
    """A worker's answer for one Op; `error` None means done."""

    op: Op
    shipped_kind: str = ""          # put | meta | delete | mkdir | move | skip
    size: int = 0
    mtime_ns: int = 0
    token: str | None = None
    is_dir: bool = False
    mode: int | None = None         # permission bits shipped (None: target does not keep them)
    error: str | None = None
    permanent: bool = False
    rescan: bool = False            # a directory must be walked and re-sent (move fell back)
    busy: bool = False              # error: the source file is still open for writing (a wait)


@dataclass(frozen=True)
class RowState:
    """Where a queued row stands (Journal.row_states); a row that is gone was done."""

    attempts: int
    claimed: bool
    next_try: float                 # wall-clock seconds
    last_error: str | None
    busy: bool


@dataclass
class TargetBacklog:
    target: str
    pending: int = 0
    pending_bytes: int = 0
    oldest: float | None = None
    failing: int = 0
    waiting: int = 0                # rows waiting for a writer to close the file (busy)
    last_error: str | None = None
    extra: dict = field(default_factory=dict)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the state database; a damaged file raises JournalError, never starts empty."""
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise JournalError(f"state database {path} is damaged ({exc}); refusing to start. "
                           f"Move it aside to start over: every source will be re-checked "
                           f"against every target.") from None
    return conn


class Journal:
    """The write side of the state database, used by one thread (the daemon's main loop)."""

    def __init__(self, path: Path, routes: dict[str, tuple[str, ...]], *,
                 clock=time.time, check: bool = True, reset_claims: bool = True):
        self.path = Path(path)
        self.routes = dict(routes)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self.db = connect(self.path)
        if existed and check:
            self._check_integrity()
        self._migrate()
        if reset_claims:  # False: another process (a running daemon) owns the claims
            self.db.execute("UPDATE ops SET claimed = 0 WHERE claimed != 0")
        self._barriers = _Barriers()
        self._load_barriers()

    # ------------------------------------------------------------ setup
    def _check_integrity(self) -> None:
        try:
            rows = self.db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        if rows != [("ok",)]:
            detail = "; ".join(str(r[0]) for r in rows[:3])
            self.db.close()
            raise JournalError(f"state database {self.path} is damaged ({detail}); refusing to "
                               f"start. Move it aside to start over: every source will be "
                               f"re-checked against every target.")

    def _migrate(self) -> None:
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"state database {self.path} has schema {version}, newer "
                                   f"than this mirrord ({SCHEMA_VERSION}); refusing to start")
            if version == 1:
                self._to_v2()
            if version in (1, 2):
                self._to_v3()
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"state database {self.path} is damaged ({exc}); refusing to start") from None

    def _to_v2(self) -> None:
        """Version 1 -> 2 in place: `shipped` gains `mode`, NULL on every old row (not
        known: catch-up and reconcile then send the mode once, never the body again)."""
        with self.transaction():
            cols = [r[1] for r in self.db.execute("PRAGMA table_info(shipped)")]
            if "mode" not in cols:
                self.db.execute("ALTER TABLE shipped ADD COLUMN mode INTEGER")
            self.db.execute("PRAGMA user_version = 2")

    def _to_v3(self) -> None:
        """Version 2 -> 3 in place: `ops.busy` and `target_stats.busy` (a file still open
        for writing is a wait, counted apart from failures), 0 on every old row."""
        with self.transaction():
            for table in ("ops", "target_stats"):
                cols = [r[1] for r in self.db.execute(f"PRAGMA table_info({table})")]
                if cols and "busy" not in cols:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN busy INTEGER NOT NULL DEFAULT 0")
            self.db.execute("PRAGMA user_version = 3")

    def _load_barriers(self) -> None:
        rows = self.db.execute(
            "SELECT id, target, source, path, src FROM ops WHERE is_dir = 1 AND (kind = 'move' OR tree = 1)")
        for oid, target, source, path, src in rows:
            self._barriers.set(oid, target, source, tuple(bytes(p) for p in (path, src) if p is not None))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ transactions
    def transaction(self):
        return _Txn(self.db)

    # ------------------------------------------------------------ enqueue
    def targets_of(self, change_targets: tuple[str, ...] | None, source: str) -> tuple[str, ...]:
        routed = self.routes.get(source, ())
        if change_targets is None:
            return routed
        return tuple(t for t in change_targets if t in routed)

    def enqueue(self, changes: Iterable[Change]) -> int:
        """Record changes durably (one transaction); returns how many rows were touched."""
        n = 0
        with self.transaction():
            for ch in changes:
                for target in self.targets_of(ch.targets, ch.source):
                    self._upsert(target, ch.source, _b(ch.path), ch.kind, tree=ch.tree,
                                 is_dir=ch.tree or ch.kind == "mkdir", size=ch.size,
                                 when=ch.time or self.clock(), delay=ch.delay)
                    n += 1
        return n

    def _covering_barrier(self, target: str, source: str, path: bytes, own: int | None) -> int | None:
        return self._barriers.covering(target, source, path, own)

    def _waits_on(self, start: int, row: int) -> bool:
        """True when `start` (transitively) waits for `row`: linking row -> start would cycle."""
        seen = 0
        cur: int | None = start
        while cur is not None and seen < 1000:
            if cur == row:
                return True
            found = self.db.execute("SELECT wait_for FROM ops WHERE id = ?", (cur,)).fetchone()
            cur = found[0] if found else None
            seen += 1
        return False

    def _upsert(self, target: str, source: str, path: bytes, kind: str, *, tree: bool,
                is_dir: bool, size: int, when: float, delay: float = 0.0,
                src: bytes | None = None, wait_for: int | None = None) -> int:
        row = self.db.execute(
            "SELECT id, seq, wait_for, tree, kind, src, is_dir, size FROM ops "
            "WHERE target = ? AND source = ? AND path = ?", (target, source, path)).fetchone()
        tree_after = tree  # the row keeps a pending tree removal (tree = MAX(tree, ?))
        if row is None:
            barrier = self._covering_barrier(target, source, path, None)
            waits = wait_for if wait_for is not None else barrier
            cur = self.db.execute(
                "INSERT INTO ops (target, source, path, kind, src, is_dir, tree, tree_seq, seq, "
                "wait_for, next_try, first_seen, event_time, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (target, source, path, kind, src, int(is_dir), int(tree), 1 if tree else 0,
                 waits, when + delay if delay else 0, when, when, size))
            oid = cur.lastrowid
        else:
            oid, seq, waits, old_tree, old_kind, old_src, old_dir, old_size = row
            if kind == "attr" and old_kind != "attr":
                # a pending put / move / delete / mkdir is stronger and state-based anyway: it
                # ships the mode and mtime too. seq still moves on, so an op of the row that
                # is in flight (it may have looked before the chmod) runs once more.
                kind, src, is_dir, size = old_kind, old_src, bool(old_dir), old_size
            tree_after = tree or bool(old_tree)
            barrier = self._covering_barrier(target, source, path, oid)
            if barrier is not None and barrier > oid and waits is None and not self._waits_on(barrier, oid):
                waits = barrier
            self.db.execute(
                "UPDATE ops SET kind = ?, src = ?, is_dir = ?, tree = MAX(tree, ?), "
                "tree_seq = CASE WHEN ? THEN seq + 1 ELSE tree_seq END, seq = seq + 1, "
                "wait_for = ?, attempts = 0, busy = 0, next_try = ?, event_time = ?, size = ? WHERE id = ?",
                (kind, src, int(is_dir), int(tree), int(tree), waits,
                 when + delay if delay else 0, when, size, oid))
        if is_dir and (kind == "move" or tree_after):
            self._barriers.set(oid, target, source, tuple(p for p in (path, src) if p is not None))
        else:
            self._barriers.drop(oid)
        return oid

    def _has_rows_at_or_below(self, target: str, source: str, path: bytes, is_dir: bool) -> bool:
        if self.db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ?",
                           (target, source, path)).fetchone():
            return True
        if is_dir and self.db.execute(
                "SELECT 1 FROM ops WHERE target = ? AND source = ? AND path > ? AND path < ? LIMIT 1",
                (target, source, path + b"/", _prefix_upper(path))).fetchone():
            return True
        return self._covering_barrier(target, source, path, None) is not None

    def enqueue_move(self, source: str, src: str, dst: str, *, is_dir: bool,
                     when: float | None = None, targets: tuple[str, ...] | None = None) -> list[str]:
        """Record a rename inside the tree. Returns the targets on which it could not be kept
        as a move (pending work in the way): for those, src is deleted and dst must be
        re-sent — the caller scans dst when it is a directory."""
        when = when or self.clock()
        bsrc, bdst = _b(src), _b(dst)
        fallback: list[str] = []
        with self.transaction():
            for target in self.targets_of(targets, source):
                busy = (self._has_rows_at_or_below(target, source, bsrc, is_dir)
                        or self._has_rows_at_or_below(target, source, bdst, is_dir))
                if busy:
                    fallback.append(target)
                    self._upsert(target, source, bsrc, "delete", tree=is_dir, is_dir=is_dir,
                                 size=0, when=when)
                    self._upsert(target, source, bdst, "mkdir" if is_dir else "put", tree=False,
                                 is_dir=is_dir, size=0, when=when)
                    continue
                mid = self._upsert(target, source, bdst, "move", tree=False, is_dir=is_dir,
                                   size=0, when=when, src=bsrc)
                self._upsert(target, source, bsrc, "delete", tree=is_dir, is_dir=is_dir, size=0,
                             when=when, wait_for=mid)
        return fallback

    # ------------------------------------------------------------ claim / ack
    def count_ready(self, target: str, limit: int, *, now: float | None = None) -> int:
        """How many ops claim() would hand out for `target` now, counting at most `limit`."""
        now = self.clock() if now is None else now
        return self.db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM ops WHERE {_READY} LIMIT ?)",
                               (target, now, limit)).fetchone()[0]

    def claim(self, target: str, limit: int, *, now: float | None = None) -> list[Op]:
        """Up to `limit` ready ops for one target, marked in flight."""
        now = self.clock() if now is None else now
        rows = self.db.execute(
            "SELECT id, seq, source, path, kind, src, is_dir, tree, attempts, event_time FROM ops "
            f"WHERE {_READY} ORDER BY next_try, id LIMIT ?", (target, now, limit)).fetchall()
        ops = []
        with self.transaction():
            for oid, seq, source, path, kind, src, is_dir, tree, attempts, event_time in rows:
                barrier = bool(is_dir and (kind == "move" or tree))
                if self._overlaps_inflight(oid, target, source, bytes(path), src, barrier):
                    continue
                self.db.execute("UPDATE ops SET claimed = ? WHERE id = ?", (seq, oid))
                src_shipped = shipped = None
                if kind == "move" and src is not None and not is_dir:
                    src_shipped = self._shipped_meta(target, source, bytes(src))
                elif kind == "attr":
                    shipped = self._shipped_meta(target, source, bytes(path))
                ops.append(Op(oid, seq, target, source, _s(path), kind,
                              _s(src) if src is not None else None, bool(is_dir), bool(tree),
                              attempts, event_time, src_shipped, shipped))
        return ops

    def _overlaps_inflight(self, oid: int, target: str, source: str, path: bytes,
                           src: bytes | None, barrier: bool) -> bool:
        """Whether the row must wait for work in flight on an overlapping path.

        A directory op (a tree removal, a directory move) and an op below its path must
        never run at the same time, whichever was queued first: a put that observed its
        file just before the source tree was removed would otherwise finish after the
        tree removal and leave the file and its parent directories on the target (found
        by the churn test). Rows queued after a barrier already wait for it (wait_for);
        this covers the rows queued before it. The range check runs only for barriers."""
        if barrier:
            for p in (path, bytes(src) if src is not None else None):
                if p is not None and self.db.execute(
                        "SELECT 1 FROM ops WHERE target = ? AND source = ? AND path > ? "
                        "AND path < ? AND claimed != 0 LIMIT 1",
                        (target, source, p + b"/", _prefix_upper(p))).fetchone():
                    return True
        cover = self._barriers.covering(target, source, path, oid)
        if cover is None:
            return False
        row = self.db.execute("SELECT claimed FROM ops WHERE id = ?", (cover,)).fetchone()
        return bool(row and row[0])

    def _shipped_meta(self, target: str, source: str, key: bytes) -> tuple[int, int, int | None] | None:
        """(size, mtime_ns, mode) of the file `key` as last shipped, None if never shipped."""
        found = self.db.execute(
            "SELECT size, mtime_ns, mode FROM shipped WHERE target = ? AND source = ? AND key = ?",
            (target, source, key)).fetchone()
        return tuple(found) if found else None

    def ack(self, outcomes: Iterable[Outcome]) -> None:
        """Record what the workers did, in one transaction."""
        now = self.clock()
        shipped: dict[str, tuple[int, Outcome]] = {}   # target -> (ops done, the last one)
        with self.transaction():
            for out in outcomes:
                if out.error is None:
                    self._done(out)
                    count = shipped.get(out.op.target, (0, out))[0]
                    shipped[out.op.target] = (count + 1, out)
                else:
                    self._failed(out, now)
            for target, (count, last) in shipped.items():   # one row update per batch, not per op
                self.db.execute(
                    "INSERT INTO target_stats (target, shipped, last_path, last_kind, last_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                    "shipped = shipped + excluded.shipped, last_path = excluded.last_path, "
                    "last_kind = excluded.last_kind, last_at = excluded.last_at",
                    (target, count, _b(last.op.path), last.shipped_kind or last.op.kind, now))

    def _done(self, out: Outcome) -> None:
        op = out.op
        self._record_shipped(out)
        row = self.db.execute("SELECT seq FROM ops WHERE id = ?", (op.id,)).fetchone()
        if row is not None and row[0] == op.seq:
            self.db.execute("DELETE FROM ops WHERE id = ?", (op.id,))
            self.db.execute("UPDATE ops SET wait_for = NULL WHERE wait_for = ?", (op.id,))
            self._barriers.drop(op.id)
        elif row is not None:
            # changed again while in flight: keep the newer change, drop what is now done
            self.db.execute(
                "UPDATE ops SET claimed = 0, src = CASE WHEN kind = 'move' THEN src ELSE NULL END, "
                "tree = CASE WHEN tree_seq <= ? THEN 0 ELSE tree END WHERE id = ?", (op.seq, op.id))
            if not self.db.execute("SELECT tree FROM ops WHERE id = ?", (op.id,)).fetchone()[0]:
                self._barriers.drop(op.id)

    def _record_shipped(self, out: Outcome) -> None:
        """Keep `shipped` equal to what the target now holds for this path."""
        op = out.op
        t, s, path = op.target, op.source, _b(op.path)
        if op.tree or out.shipped_kind in ("put", "move"):
            self._forget_tree(t, s, path)  # nothing of ours stands below path any more
        if out.shipped_kind == "move" and op.src is not None:
            self._move_shipped(t, s, _b(op.src), path, op.is_dir)
        if out.shipped_kind in ("put", "move") and not out.is_dir:
            self._set_shipped(t, s, path, path + b"/", out.size, out.mtime_ns, out.token, out.mode)
        elif out.shipped_kind == "meta":   # mode / mtime set in place: same body, same token
            self.db.execute("UPDATE shipped SET mtime_ns = ?, mode = ?, token = COALESCE(?, token) "
                            "WHERE target = ? AND source = ? AND key = ?",
                            (out.mtime_ns, out.mode, out.token, t, s, path))
        elif out.shipped_kind in ("mkdir", "move"):
            self._set_shipped(t, s, path + b"/", path, 0, out.mtime_ns, None, out.mode)
        elif out.shipped_kind == "delete":
            self.db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key IN (?, ?)",
                            (t, s, path, path + b"/"))

    def _set_shipped(self, t: str, s: str, key: bytes, other: bytes, size: int, mtime_ns: int,
                     token: str | None, mode: int | None) -> None:
        self.db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key = ?", (t, s, other))
        self.db.execute("INSERT OR REPLACE INTO shipped (target, source, key, size, mtime_ns, token, "
                        "mode) VALUES (?, ?, ?, ?, ?, ?, ?)", (t, s, key, size, mtime_ns, token, mode))

    def _forget_tree(self, t: str, s: str, path: bytes) -> None:
        self.db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key >= ? AND key < ?",
                        (t, s, path + b"/", _prefix_upper(path)))

    def _move_shipped(self, t: str, s: str, src: bytes, dst: bytes, is_dir: bool) -> None:
        if not is_dir:
            self.db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key = ?", (t, s, src))
            return
        rows = self.db.execute(
            "SELECT key, size, mtime_ns, token, mode FROM shipped WHERE target = ? AND source = ? "
            "AND key >= ? AND key < ?", (t, s, src + b"/", _prefix_upper(src))).fetchall()
        self.db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key >= ? AND key < ?",
                        (t, s, src + b"/", _prefix_upper(src)))
        self.db.executemany(
            "INSERT OR REPLACE INTO shipped (target, source, key, size, mtime_ns, token, mode) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(t, s, dst + bytes(k)[len(src):], size, m, tok, mode) for k, size, m, tok, mode in rows])

    def _failed(self, out: Outcome, now: float) -> None:
        op = out.op
        attempts = op.attempts + 1
        if out.busy:
            self._busy(out, now, attempts)
            return
        delay = min(RETRY_MAX, RETRY_BASE * (2 ** min(attempts - 1, 10)))
        delay = delay * (0.75 + random.random() / 2)
        if out.permanent:
            delay = max(delay, PERMANENT_RETRY)
        row = self.db.execute("SELECT seq FROM ops WHERE id = ?", (op.id,)).fetchone()
        if row is not None and row[0] == op.seq:
            self.db.execute("UPDATE ops SET claimed = 0, attempts = ?, next_try = ?, last_error = ?, "
                            "busy = 0 WHERE id = ?", (attempts, now + delay, _text(out.error), op.id))
        elif row is not None:
            self.db.execute("UPDATE ops SET claimed = 0, last_error = ? WHERE id = ?",
                            (_text(out.error), op.id))
        self.db.execute(
            "INSERT INTO target_stats (target, failed, last_error, last_error_at) VALUES (?, 1, ?, ?) "
            "ON CONFLICT (target) DO UPDATE SET failed = failed + 1, last_error = excluded.last_error, "
            "last_error_at = excluded.last_error_at", (op.target, _text(f"{op.path}: {out.error}"), now))

    def _busy(self, out: Outcome, now: float, attempts: int) -> None:
        """A file still open for writing: retried with the usual backoff, but counted as a
        wait (target_stats.busy), never as a failure, and not made the target's last error."""
        op = out.op
        delay = min(RETRY_MAX, RETRY_BASE * (2 ** min(attempts - 1, 10)))
        self.db.execute("UPDATE ops SET claimed = 0, attempts = ?, next_try = ?, last_error = ?, "
                        "busy = 1 WHERE id = ? AND seq = ?",
                        (attempts, now + delay, _text(out.error), op.id, op.seq))
        self.db.execute("UPDATE ops SET claimed = 0 WHERE id = ? AND seq != ?", (op.id, op.seq))
        self.db.execute("INSERT INTO target_stats (target, busy) VALUES (?, 1) "
                        "ON CONFLICT (target) DO UPDATE SET busy = busy + 1", (op.target,))

    def row_states(self, target: str, source: str, paths: Iterable[bytes]) -> dict[bytes, RowState]:
        """Where the rows of `target` / `source` at `paths` (path bytes) stand; a path with no
        row is absent from the answer (acked: done). Asked 500 paths per query (SQLite's
        host-parameter limit is 999 on older builds)."""
        wanted = list(paths)
        found: dict[bytes, RowState] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = self.db.execute(
                "SELECT path, attempts, claimed, next_try, last_error, busy FROM ops "
                f"WHERE target = ? AND source = ? AND path IN ({','.join('?' * len(chunk))})",
                (target, source, *chunk))
            for path, attempts, claimed, next_try, error, busy in rows:
                found[bytes(path)] = RowState(attempts, bool(claimed), next_try, error, bool(busy))
        return found

    def release_claims(self) -> None:
        """Forget in-flight marks (at shutdown, for work that did not finish)."""
        self.db.execute("UPDATE ops SET claimed = 0 WHERE claimed != 0")

    # ------------------------------------------------------------ state
    def set_state(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_state(self, key: str, default: object = None) -> object:
        return read_state(self.db, key, default)

    def has_more_ops_than(self, limit: int) -> bool:
        """Whether more than `limit` operations are queued or in flight (any target),
        not counting ones that already failed (they wait out a backoff, maybe for hours).
        Stops counting at limit + 1: cheap even with a backlog of millions."""
        row = self.db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM ops WHERE attempts = 0 LIMIT ?)",
                              (limit + 1,)).fetchone()
        return row[0] > limit

    def backlog(self, now: float | None = None) -> dict[str, TargetBacklog]:
        return read_backlog(self.db, list(dict.fromkeys(t for ts in self.routes.values() for t in ts)))

    def shipped_entries(self, target: str, source: str) -> Iterator[ShippedRow]:
        return iter_shipped(self.db, target, source)


class _Txn:
    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self):
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.outer:
            return False
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False


# ---------------------------------------------------------------- read side

def read_state(db: sqlite3.Connection, key: str, default: object = None) -> object:
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def read_backlog(db: sqlite3.Connection, targets: list[str]) -> dict[str, TargetBacklog]:
    out = {t: TargetBacklog(t) for t in targets}
    for target, n, nbytes, oldest, failing, waiting in db.execute(
            "SELECT target, COUNT(*), SUM(size), MIN(first_seen), SUM(attempts > 0 AND busy = 0), "
            "SUM(busy) FROM ops GROUP BY target"):
        b = out.setdefault(target, TargetBacklog(target))
        b.pending, b.pending_bytes, b.oldest = n, nbytes or 0, oldest
        b.failing, b.waiting = failing or 0, waiting or 0
    for row in db.execute("SELECT target, shipped, failed, last_path, last_kind, last_at, last_error, "
                          "last_error_at, busy FROM target_stats"):
        b = out.setdefault(row[0], TargetBacklog(row[0]))
        b.extra = {"shipped": row[1], "failed": row[2],
                   "last_path": _s(row[3]) if row[3] is not None else None,
                   "last_kind": row[4], "last_at": row[5], "last_error": row[6], "last_error_at": row[7],
                   "busy": row[8]}
        b.last_error = row[6]
    return out


def iter_shipped(db: sqlite3.Connection, target: str, source: str,
                 prefix: bytes = b"") -> Iterator[ShippedRow]:
    """(key, size, mtime_ns, token, mode) in key order: the merge partner of a source walk.
    `mode` is None where not known (rows from schema 1) or not kept by the target.
    With `prefix` (a directory's path bytes, no trailing '/'): only the rows strictly below it."""
    cols = "SELECT key, size, mtime_ns, token, mode FROM shipped WHERE target = ? AND source = ? "
    if prefix:
        cur = db.execute(cols + "AND key > ? AND key < ? ORDER BY key",
                         (target, source, prefix + b"/", _prefix_upper(prefix)))
    else:
        cur = db.execute(cols + "ORDER BY key", (target, source))
    yield from cur   # keys are stored as BLOBs: sqlite3 returns them as bytes already
