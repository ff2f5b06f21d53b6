"""The read side of the state database: queries that never write.

Readers in other processes or threads (`mirrord status`, catch-up scans,
reconcile) call these on their own read-only connection (connect(readonly=True));
the Journal calls them on its own.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Iterable, Iterator

from mirrord.compare import ShippedRow   # (key, size, mtime_ns, token, mode): see iter_shipped
from mirrord.journal.barriers import _self_and_ancestors
from mirrord.journal.records import RowState, TargetBacklog, _prefix_upper, _s


def read_state(db: sqlite3.Connection, key: str, default: object = None) -> object:
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def claimed_rows(db: sqlite3.Connection) -> list[tuple[str, str, str, str, str | None]]:
    """(target, source, path, kind, claimer) of every row marked in flight (claimed);
    claimer: the process holding it (mirrord.claimer), None from before schema 5."""
    return [(t, s, _s(p), k, c) for t, s, p, k, c in db.execute(
        "SELECT target, source, path, kind, claimer FROM ops WHERE claimed != 0 ORDER BY id")]


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


def has_shipped(db: sqlite3.Connection, target: str, source: str) -> bool:
    """Whether any path of `source` is recorded as shipped to `target` (one index probe)."""
    return db.execute("SELECT 1 FROM shipped WHERE target = ? AND source = ? LIMIT 1",
                      (target, source)).fetchone() is not None


def in_flight_removals(db: sqlite3.Connection, target: str, source: str) -> frozenset[bytes]:
    """The paths (bytes, no trailing '/') of `source`'s rows for `target` at a worker now
    (claimed) whose ack may remove what `shipped` records at or below them: a tree op, or
    a delete. Such an op looked at the source when it was claimed; if the source changed
    since, its ack still records what it saw. A comparison with `shipped` made meanwhile
    (catch-up: mirrord.catchup) must not trust the rows below these paths: it found
    shipped rows a tree removal in flight was about to take away, and proposed nothing
    for what the source held there (fanotify, a directory exchanged three times with a
    symlink while the first removal was in flight: its contents never sent). At most the
    rows in flight: the ops_ready index's (target, claimed) range."""
    return frozenset(bytes(p) for (p,) in db.execute(
        "SELECT path FROM ops WHERE target = ? AND claimed > 0 AND source = ? "
        "AND (tree = 1 OR kind = 'delete')", (target, source)))


def recorded_below(db: sqlite3.Connection, target: str, source: str, path: bytes) -> bool:
    """Whether `shipped` names anything of `source` on `target` strictly below the
    directory `path` (path bytes, no trailing '/'): one probe of the primary key."""
    return db.execute("SELECT 1 FROM shipped WHERE target = ? AND source = ? AND key > ? "
                      "AND key < ? LIMIT 1", (target, source, path + b"/",
                                              _prefix_upper(path))).fetchone() is not None


def removal_covers(paths: frozenset[bytes], key: bytes) -> bool:
    """Whether `key` (a shipped key: a directory's ends in '/') is at or below one of
    `paths` (in_flight_removals)."""
    return bool(paths) and any(p in paths for p in _self_and_ancestors(key.rstrip(b"/")))


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
    # keys are stored as BLOBs: sqlite3 returns them as bytes already. A loop, not `yield
    # from cur`: a generator closed unfinished closes the object it delegates to, and
    # Cursor.close() on a connection closed first (a catch-up or pass stopped early)
    # printed "Exception ignored ... Cannot operate on a closed database" on stderr
    for row in cur:
        yield row


def shipped_meta(db: sqlite3.Connection, target: str, source: str,
                 key: bytes) -> tuple[int, int, int | None] | None:
    """(size, mtime_ns, mode) of the file `key` as last shipped, None if never shipped."""
    found = db.execute(
        "SELECT size, mtime_ns, mode FROM shipped WHERE target = ? AND source = ? AND key = ?",
        (target, source, key)).fetchone()
    return tuple(found) if found else None


# The rows among the `ops` ids given ({ids}: placeholders) that are held or wait, through
# any chain of wait_for, behind a held row not yet in flight: a delete or tree removal of a
# source in `holds` (HELD_ROW, mirrord.journal.holds). Such a row is not shipped before
# resume-deletes. UNION drops repeated (id, at) pairs, so even a cycle ends.
_HELD_BEHIND = """
WITH RECURSIVE chain(id, at) AS (
    SELECT id, id FROM ops WHERE id IN ({ids})
    UNION
    SELECT chain.id, ops.wait_for FROM chain JOIN ops ON ops.id = chain.at
    WHERE ops.wait_for IS NOT NULL
)
SELECT chain.id, w.source FROM chain JOIN ops AS w ON w.id = chain.at
WHERE (w.kind = 'delete' OR w.tree = 1) AND w.claimed = 0
  AND w.source IN (SELECT source FROM holds)
"""


def queued_tree_removals(db: sqlite3.Connection, target: str, source: str) -> set[str]:
    """The directories whose removal is queued for `target` / `source` (rows with tree = 1,
    held or not): the files below them were counted when the removal was recorded."""
    rows = db.execute("SELECT path FROM ops WHERE target = ? AND source = ? AND tree = 1 "
                      "AND kind = 'delete'", (target, source))
    return {os.fsdecode(bytes(p)) for (p,) in rows}


def row_states(db: sqlite3.Connection, target: str, source: str,
               paths: Iterable[bytes], *, held: bool = True) -> dict[bytes, RowState]:
    """Where the rows of `target` / `source` at `paths` (path bytes) stand; a path with no
    row is absent from the answer (acked: done). `held` names the held source when the
    row is a held delete or waits behind one (a repair a reconcile waits for there waited
    for ever: a breaker's `mirrord reconcile` of a held source ran 9 minutes). Asked 500
    paths per query (SQLite's host-parameter limit is 999 on older builds); the held
    rows are looked for only while some source is held, and not at all with `held`
    False (a caller asking only which rows exist)."""
    wanted = list(paths)
    found: dict[bytes, RowState] = {}
    any_held = held and db.execute("SELECT 1 FROM holds LIMIT 1").fetchone() is not None
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        rows = db.execute(
            "SELECT id, path, attempts, claimed, next_try, last_error, busy FROM ops "
            f"WHERE target = ? AND source = ? AND path IN ({','.join('?' * len(chunk))})",
            (target, source, *chunk)).fetchall()
        behind: dict[int, str] = {}
        if any_held and rows:
            ids = [r[0] for r in rows]
            behind = dict(db.execute(_HELD_BEHIND.format(ids=",".join("?" * len(ids))),
                                     ids).fetchall())
        for rid, path, attempts, claimed, next_try, error, busy in rows:
            found[bytes(path)] = RowState(attempts, bool(claimed), next_try, error, bool(busy),
                                          behind.get(rid))
    return found


def shipped_high_water(db: sqlite3.Connection, target: str) -> int:
    """The most bytes `target`'s `shipped` rows have ever held (schema 6: shipped_bytes,
    kept by triggers); 0 for a target with no row, or a database of schema 5 or older
    opened read-only before any daemon of schema 6 brought it up to date."""
    try:
        found = db.execute("SELECT high FROM shipped_bytes WHERE target = ?", (target,)).fetchone()
    except sqlite3.OperationalError:   # no such table: schema 5 or older
        return 0
    return int(found[0]) if found else 0


def rows_at_or_below(db: sqlite3.Connection, targets: Iterable[str], source: str,
                     path: bytes) -> bool:
    """Whether a row of `source` for one of `targets` is queued or in flight at `path` or
    below it, whatever its kind (the unique index, a range per target)."""
    return any(db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND (path = ? OR "
                          "(path > ? AND path < ?)) LIMIT 1",
                          (target, source, path, path + b"/", _prefix_upper(path))).fetchone()
               for target in targets)
