"""Barriers: which rows must wait for a pending directory move, tree removal or file move,
and (InFlight) for a row in flight at an ancestor of their path or below it.

A directory op (a directory moved, or deleted with its tree) is a barrier: rows
at or below its paths enqueued after it wait for it (their `wait_for`; below a tree
removal, those enqueued before it too: EnqueueMixin._wait_below), and no
op overlapping it may be in flight at the same time (overlaps_inflight). A file's
move is a barrier over its old name only (barrier_paths): `mv f f.bak; mkdir f; echo >
f/x` read together claimed the move and the put of f/x at once, and a target's workers
ran them side by side; the put, first on a target with directories, replaced the FILE
f in its parent's way (kept as 'deleted' with keep_deleted on, though its bytes lived on
at f.bak), and the move then found nothing at f and sent f.bak whole, or found the new
directory f and moved it to f.bak (tests/integration/test_move_then_directory_at_old_name.py).
Not over its new name: a file has nothing below it, and a rename of the new name while
the move is in flight stays a move (EnqueueMixin._pending_at_or_below). A tree
removal stays a barrier when a file takes the directory's place (`rmdir d; echo > d`
coalesces into a put of d that first removes the tree): counting only directory rows
let a put below d run beside it, in one batch even, so the trash kept one version of
d/x twice (linked as overwritten, then renamed in with its directory), and a stale put
below could bring the directory back over the new file.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Iterator

from mirrord.journal.records import _prefix_upper

# The rows of one target in flight: (source, path, src, kind). Served by ops_ready (target,
# claimed): at most the target's workers times its batch size of them.
# What a row in flight was claimed as (its kind, its src): what its worker does, whatever
# changed in the row since (an upsert rewrites kind and src: a move's row turned into a
# put by a write at its new name lost the move's source end, which its worker still took
# away on the target). NULL: claimed before schema 7, read as the row is.
CLAIMED_AS = ("COALESCE(claimed_kind, kind), "
              "CASE WHEN claimed_kind IS NULL THEN src ELSE claimed_src END")
_IN_FLIGHT_SQL = (f"SELECT source, path, {CLAIMED_AS}, is_dir OR tree OR kind = 'mkdir' "
                  "FROM ops WHERE target = ? AND claimed > 0")
# At most this many held paths, and this many ancestors, go into InFlight.sql's clause
# (directories first): an rsync batch holds up to batch_size (5,000) rows in flight, and
# SQLite takes at most 32,766 parameters. The rest are still checked, one by one.
SQL_HELD_MAX, SQL_ABOVE_MAX = 64, 256


def _self_and_ancestors(path: bytes) -> Iterator[bytes]:
    """b"a/b/c" -> b"a/b/c", b"a/b", b"a"."""
    yield path
    cut = path.rfind(b"/")
    while cut > 0:
        path = path[:cut]
        yield path
        cut = path.rfind(b"/")


def strict_ancestors(path: bytes) -> Iterator[bytes]:
    """b"a/b/c" -> b"a/b", b"a"."""
    it = _self_and_ancestors(path)
    next(it)
    return it


def add_ancestors(above: set[bytes], path: bytes) -> None:
    """Add `path`'s strict ancestors to `above`, a set that holds every ancestor of each
    path in it (so a path below P is held exactly when P is in it: one lookup, where a
    scan of the held paths cost 3% of the daemon's time holding the GIL on the S3 burst);
    stops at the first one there, whose own ancestors are."""
    for a in strict_ancestors(path):
        if a in above:
            break
        above.add(a)


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

    def any(self, target: str, source: str) -> bool:
        """Whether any barrier of `target` and `source` is pending (a dict lookup)."""
        return bool(self._index.get((target, source)))

    def covering(self, target: str, source: str, path: bytes, own: int | None) -> int | None:
        """The newest barrier (other than `own`) at `path` or at one of its ancestors."""
        return max(self.all_covering(target, source, path, own), default=None)

    def all_covering(self, target: str, source: str, path: bytes, own: int | None) -> list[int]:
        """Every barrier (other than `own`) at `path` or at one of its ancestors."""
        index = self._index.get((target, source))
        if not index:
            return []
        return [bid for p in _self_and_ancestors(path) for bid in index.get(p, ()) if bid != own]


def barrier_paths(path: bytes, src: bytes | None, *, kind: str, is_dir: bool,
                  tree: bool) -> tuple[bytes, ...] | None:
    """The paths a row (its path, its src, kind, is_dir, tree) is a barrier over: a tree
    op's or a directory move's path and src, a file move's src (its old name: the module
    docstring says why), None when the row is no barrier."""
    if tree or (is_dir and kind == "move"):
        # a tree removal's src is only where its bytes went (enqueue_move's fallback): no barrier
        return tuple(bytes(p) for p in (path, src if kind == "move" else None) if p is not None)
    if kind == "move" and src is not None:
        return (bytes(src),)
    return None


def load_barriers(db: sqlite3.Connection) -> _Barriers:
    """The barriers of the rows queued in `db` (at start: they outlive a restart)."""
    barriers = _Barriers()
    rows = db.execute("SELECT id, target, source, path, src, kind, is_dir, tree FROM ops "
                      "WHERE tree = 1 OR kind = 'move'")
    for oid, target, source, path, src, kind, is_dir, tree in rows:
        paths = barrier_paths(path, src, kind=kind, is_dir=bool(is_dir), tree=bool(tree))
        if paths:
            barriers.set(oid, target, source, paths)
    return barriers


def overlaps_inflight(db: sqlite3.Connection, barriers: _Barriers, oid: int, target: str,
                      source: str, path: bytes, src: bytes | None, barrier: bool) -> bool:
    """Whether the row must wait for work in flight on an overlapping path.

    A directory op (a tree removal, a directory move) and an op below its path must
    never run at the same time, whichever was queued first: a put that observed its
    file just before the source tree was removed would otherwise finish after the
    tree removal and leave the file and its parent directories on the target, and a
    delete below it takes entries from under rmtree (found by the churn test: twice in
    a row left an empty directory on the local mirror that no shipped row named). Every
    barrier over the row counts, not only the newest: `rm -r P` turns an old row of P
    into its tree removal while newer rows below it (P/sub) are barriers too, so the
    newest one is not in flight while P's is. A move's source end counts as much as
    its destination: the move takes what stands at `src` away on the target (and a
    tree removal above a moved directory would follow its contents to the new name).
    Rows queued after a barrier already wait for it (wait_for), and so do the rows queued
    before a tree removal (EnqueueMixin._wait_below); this covers the rows already in
    flight when it came, and those queued before a directory move. The range checks run
    only for barriers."""
    if barrier:
        for p in (path, bytes(src) if src is not None else None):
            if p is not None and _claimed_below(db, target, source, p):
                return True
    cover = [bid for p in (path, bytes(src) if src is not None else None) if p is not None
             for bid in barriers.all_covering(target, source, p, oid)]
    return bool(cover) and db.execute(
        f"SELECT 1 FROM ops WHERE id IN ({','.join('?' * len(cover))}) AND claimed != 0 LIMIT 1",
        cover).fetchone() is not None


def _claimed_below(db: sqlite3.Connection, target: str, source: str, p: bytes) -> bool:
    """A row in flight whose path is below `p`, or a move in flight whose source is `p` or
    below it. The second query reads only the rows in flight (ops_ready: target, claimed)."""
    upper = _prefix_upper(p)
    if db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path > ? "
                  "AND path < ? AND claimed != 0 LIMIT 1",
                  (target, source, p + b"/", upper)).fetchone():
        return True
    return db.execute("SELECT 1 FROM ops WHERE target = ? AND claimed > 0 AND source = ? "
                      "AND src IS NOT NULL AND (src = ? OR (src > ? AND src < ?)) LIMIT 1",
                      (target, source, p, p + b"/", upper)).fetchone() is not None


def moved_from(kind: str, src: bytes | None) -> bytes | None:
    """The path a row takes away on the target besides its own: a move's source end. A
    delete's or tree op's src is only where its bytes went (a hint for keeping), nothing
    it touches."""
    return bytes(src) if kind == "move" and src is not None else None


class InFlight:
    """The paths that rows of one target in flight hold (a row's path and a move's source
    end), to keep a row out while another in flight is at one of its ancestors or below it.

    The rule, for targets with directories (Features.directories): a worker sends what it
    finds at the source when it runs, not the row's kind, so a worker at P may change what
    P is on the target (a file's delete that finds a directory makes it, keeping the file
    first), and a worker below P needs P to be a directory (a put's parent walk replaces a
    file in its way). Side by side, the first worker's keep saw the file d (lstat) and then
    renamed into the trash what stood at d by then: the directory the other worker had just
    made, d/z.jpg in it (`rm d; mkdir d; echo > d/z.jpg`, the delete of d claimed before the
    rest was read: tests/integration/test_ops_at_and_below_a_path.py). The barrier rules
    above cover directory ops and moves only; this covers every kind, for the time a row is
    in flight, and rows handed out in one claim too (a batch's ops may run on different
    workers). Built inside claim()'s write transaction, so a row another process claimed
    counts. A target without directories has its own, narrower rule
    (mirrord.journal.key_overlaps)."""

    def __init__(self, db: sqlite3.Connection, target: str) -> None:
        self._held: dict[str, set[bytes]] = {}    # source -> paths held
        self._above: dict[str, set[bytes]] = {}   # source -> strict ancestors of those
        self._dirs: list[tuple[str, bytes]] = []  # held by a directory's row (sql() first)
        for source, path, kind, src, is_dir in db.execute(_IN_FLIGHT_SQL, (target,)):
            self.add(source, bytes(path), moved_from(kind, src))
            if is_dir:
                self._dirs.append((source, bytes(path)))

    def add(self, source: str, path: bytes, src: bytes | None) -> None:
        """Count a row at `path` (a move from `src`) of `source` as in flight."""
        held = self._held.setdefault(source, set())
        above = self._above.setdefault(source, set())
        for p in (path, src):
            if p is not None:
                held.add(p)
                add_ancestors(above, p)

    def take(self, db: sqlite3.Connection, target: str, source: str, path: bytes,
             src: bytes | None, kind: str, *, landed: bool = False) -> bool:
        """Whether claim()'s ready row at `path` (a move from `src`) may go now (it touches
        no path held); when it may, it counts as in flight from here on (rows handed out
        in one claim may run on different workers). The same call as
        key_overlaps.KeysInFlight's (the other arguments are not needed here)."""
        if self.overlaps(source, path, src):
            return False
        self.add(source, path, src)
        return True

    def holds_back(self, rows: list[tuple]) -> bool:
        """Whether any of claim()'s ready rows (id, seq, source, path, kind, src, ...)
        overlaps a row in flight."""
        return bool(self._held) and any(
            self.overlaps(r[2], bytes(r[3]), moved_from(r[4], r[5])) for r in rows)

    def sql(self) -> tuple[str, list[object]]:
        """An `AND NOT (...)` clause for the ready-rows query and its parameters, leaving
        out the rows at a held path, below one or at an ancestor of one: without it they
        filled claim()'s window of `limit` rows, and while a new directory's mkdir was in
        flight the files below it were all that window saw (a reconcile of four
        directories of 100 files ran one directory at a time, workers idle). Empty when
        nothing is held. Bounded (SQL_HELD_MAX, SQL_ABOVE_MAX; directories' rows first, as
        the ones with rows below them): it only keeps the window useful, overlaps() is the
        rule, and a move whose source end overlaps is left to it too."""
        terms: list[str] = []
        args: list[object] = []
        files = ((source, p) for source, held in self._held.items() for p in sorted(held))
        seen: set[tuple[str, bytes]] = set()
        for source, p in itertools.chain(self._dirs, files):
            if len(seen) >= SQL_HELD_MAX:
                break
            if (source, p) not in seen:
                seen.add((source, p))
                terms.append("(source = ? AND (path = ? OR (path > ? AND path < ?)))")
                args += [source, p, p + b"/", _prefix_upper(p)]
        for source, above in self._above.items():
            names = sorted(above)[:SQL_ABOVE_MAX]
            if names:
                terms.append(f"(source = ? AND path IN ({','.join('?' * len(names))}))")
                args += [source, *names]
        if not terms:
            return "", args
        return f" AND NOT ({' OR '.join(terms)})", args

    def overlaps(self, source: str, path: bytes, src: bytes | None) -> bool:
        """Whether a row at `path` (a move from `src`) of `source` touches a path held: the
        same one, an ancestor of one, or one below one."""
        held = self._held.get(source)
        if not held:
            return False
        above = self._above[source]
        return any(p is not None and (p in above or any(a in held for a in _self_and_ancestors(p)))
                   for p in (path, src))
