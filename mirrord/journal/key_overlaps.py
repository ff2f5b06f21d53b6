"""On a target without directories (S3): a row that may write or delete the object at a
key and a row below `key/` are never in flight together.

S3 keeps a key `X` and the keys below `X/` side by side, so such a target's claims asked
nothing of the rows in flight (barriers.InFlight is for targets with directories).
SeaweedFS does not keep them apart: its filer holds the object `X` and the folder `X`
under one name, and a PutObject below `X/` sent beside a request that writes or deletes
`X` was acknowledged and then missing from every listing, though a HEAD still found it
(SeaweedFS 4.x on loopback, 400 pairs of each, the two requests sent together: a
DeleteObjects of the object `X` beside a put of `X/y.jpg` lost it 2 times, a PutObject
over `X` 9 times, a new `X` beside a new `X/y.jpg` lost one or the other 13 times; a
DeleteObjects where no object stands, 0). The start's catch-up after `rm d-x; mkdir d-x;
echo > d-x/y.jpg` made while the daemon was stopped lost d-x/y.jpg so: the mkdir's
remove_file_at deleted the file d-x beside the put of d-x/y.jpg (a CI run of
tests/e2e/test_stopped_changes.py).

Such pairs come only where a path changed type (a file made a directory, or back), so the
rule costs nothing in the usual case: a row writes or deletes the object at its path (and
a move's at its source end) unless it is a directory's mkdir over a name where no file
was sent (its remove_file_at is a HEAD that finds nothing: `file_at`). The files of a new
directory go out beside its mkdir, as before. Tree removals and directory moves wait for
every row below them on every target (barriers.overlaps_inflight).
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from mirrord.journal.barriers import _self_and_ancestors, moved_from
from mirrord.journal.read import shipped_meta

# The rows of one target in flight: (source, path, src, kind, a file shipped at the path).
# Served by ops_ready (target, claimed) and a primary-key search per mkdir row.
# (CASE, not AND: SQLite evaluates both sides of an AND in a result column.)
_IN_FLIGHT_SQL = ("SELECT source, path, src, kind, CASE WHEN kind = 'mkdir' THEN EXISTS ("
                  "SELECT 1 FROM shipped AS s WHERE s.target = o.target AND s.source = o.source "
                  "AND s.key = o.path) ELSE 0 END FROM ops AS o WHERE o.target = ? "
                  "AND o.claimed > 0")


class KeysInFlight:
    """What the rows of one target without directories in flight hold, for claim(): the
    keys whose object they may write or delete, and the strict ancestors of every path
    they touch. Built inside claim()'s write transaction, so a row another process
    claimed counts. `file_at(source, path)`: the target may hold a file at `path` that
    no `shipped` row names (a put landed, not recorded: mirrord.journal.first_copies)."""

    def __init__(self, db: sqlite3.Connection, target: str,
                 file_at: Callable[[str, bytes], bool] = lambda source, path: False) -> None:
        self._file_at = file_at
        self._objects: dict[str, set[bytes]] = {}   # source -> keys written or deleted
        self._paths: dict[str, list[bytes]] = {}    # source -> every path held (few: the
        # target's workers times its batch), scanned for one below a key
        for source, path, src, kind, shipped_file in db.execute(_IN_FLIGHT_SQL, (target,)):
            self._add(source, bytes(path), moved_from(kind, src),
                      self._writes(source, bytes(path), kind, bool(shipped_file)))

    def take(self, db: sqlite3.Connection, target: str, source: str, path: bytes,
             src: bytes | None, kind: str) -> bool:
        """Whether the ready row at `path` (a move from `src`, of `kind`) may go now; when
        it may, it counts as in flight from here on (rows handed out in one claim may run
        on different workers). Asks `db` for a mkdir's `shipped` row only."""
        shipped_file = kind == "mkdir" and shipped_meta(db, target, source, path) is not None
        writes = self._writes(source, path, kind, shipped_file)
        if self._overlaps(source, path, src, writes):
            return False
        self._add(source, path, src, writes)
        return True

    def _writes(self, source: str, path: bytes, kind: str, shipped_file: bool) -> bool:
        """Whether a row of `kind` at `path` may write or delete the object there."""
        return kind != "mkdir" or shipped_file or self._file_at(source, path)

    def _overlaps(self, source: str, path: bytes, src: bytes | None, writes: bool) -> bool:
        """A row that writes at `path` (or `src`) while a row below it is in flight, or any
        row below a key a row in flight writes."""
        objects, paths = self._objects.get(source, ()), self._paths.get(source, ())
        for p in (path, src):
            if p is None:
                continue
            if writes and paths:
                below = p + b"/"
                if any(q.startswith(below) for q in paths):
                    return True
            if objects and any(a in objects for a in list(_self_and_ancestors(p))[1:]):
                return True
        return False

    def _add(self, source: str, path: bytes, src: bytes | None, writes: bool) -> None:
        paths = self._paths.setdefault(source, [])
        for p in (path, src):
            if p is not None:
                paths.append(p)
                if writes:
                    self._objects.setdefault(source, set()).add(p)
