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
was sent nor landed (`ops.landed`: a put the target stored and the journal did not
record, mirrord.journal.first_copies): its remove_file_at is a HEAD that finds nothing.
The files of a new directory go out beside its mkdir, as before. A row in flight counts
as what it was claimed as (barriers.CLAIMED_AS), and as writing once it changed since
(`rm X; mkdir X`: a put of X in flight is a mkdir row now, and PutObject X still runs).
A mkdir's worker that finds a file sends nothing, on every try, and makes its row that
file's put (ship_rules.not_yet), so a retried mkdir writes nothing more than a first
try. Tree removals and directory moves wait for every row below them on every target
(barriers.overlaps_inflight).
"""

from __future__ import annotations

import sqlite3

from mirrord.journal.barriers import CLAIMED_AS, add_ancestors, moved_from, strict_ancestors
from mirrord.journal.read import shipped_meta

# The rows of one target in flight: (source, path, kind, src as claimed, whether it writes
# the object at its path). Served by ops_ready (target, claimed) and, per mkdir row
# unchanged since its claim, a primary-key search of `shipped`.
# (CASE, not AND: SQLite evaluates both sides of an AND in a result column.)
_IN_FLIGHT_SQL = (f"SELECT source, path, {CLAIMED_AS}, CASE WHEN COALESCE(claimed_kind, kind) "
                  "!= 'mkdir' OR landed != 0 OR claimed != seq THEN 1 ELSE "
                  "EXISTS (SELECT 1 FROM shipped AS s WHERE s.target = o.target "
                  "AND s.source = o.source AND s.key = o.path) END "
                  "FROM ops AS o WHERE o.target = ? AND o.claimed > 0")


class KeysInFlight:
    """What the rows of one target without directories in flight hold, for claim(): the
    keys whose object they may write or delete, and the strict ancestors of every path
    they touch. Built inside claim()'s write transaction, so a row another process
    claimed counts."""

    def __init__(self, db: sqlite3.Connection, target: str) -> None:
        self._objects: dict[str, set[bytes]] = {}   # source -> keys written or deleted
        self._above: dict[str, set[bytes]] = {}     # source -> every strict ancestor of
        # a path held (barriers.add_ancestors): a key with a held path below it is there
        for source, path, kind, src, writes in db.execute(_IN_FLIGHT_SQL, (target,)):
            self._add(source, bytes(path), moved_from(kind, src), bool(writes))

    def take(self, db: sqlite3.Connection, target: str, source: str, path: bytes,
             src: bytes | None, kind: str, *, landed: bool = False) -> bool:
        """Whether the ready row at `path` (a move from `src`) of `kind` may go now
        (`landed`: its ops.landed); when it may, it counts as in flight from here on (rows
        handed out in one claim may run on different workers). Asks `db` for a mkdir's
        `shipped` row only."""
        writes = (kind != "mkdir" or landed
                  or shipped_meta(db, target, source, path) is not None)
        if self._overlaps(source, path, src, writes):
            return False
        self._add(source, path, src, writes)
        return True

    def _overlaps(self, source: str, path: bytes, src: bytes | None, writes: bool) -> bool:
        """A row that writes at `path` (or `src`) while a row below it is in flight, or any
        row below a key a row in flight writes."""
        objects, above = self._objects.get(source), self._above.get(source)
        for p in (path, src):
            if p is None:
                continue
            if writes and above and p in above:
                return True
            if objects and any(a in objects for a in strict_ancestors(p)):
                return True
        return False

    def _add(self, source: str, path: bytes, src: bytes | None, writes: bool) -> None:
        above = self._above.setdefault(source, set())
        for p in (path, src):
            if p is not None:
                add_ancestors(above, p)
                if writes:
                    self._objects.setdefault(source, set()).add(p)
