"""Barriers: which rows must wait for a pending directory move, tree removal or file move.

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

import sqlite3
from typing import Iterator

from mirrord.journal.records import _prefix_upper


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
