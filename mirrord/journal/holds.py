"""Held deletes: sources whose delete rows are not handed to workers until resumed.

A mass-change alarm with `pause_on_alarm = yes` (mirrord.alarm) holds the
deletes of its source: one row in the `holds` table (schema 4), so the hold
survives a restart and `mirrord resume-deletes`, another process, can lift it
while the daemon runs (SQLite WAL: one writer at a time, readers never block;
the writer waits up to busy_timeout for the daemon's short transactions).

What is held is decided at claim time (HELD_SQL in claims.py): a row of a held
source whose kind is `delete`, or that removes a tree first (`tree = 1`: a
directory removed, maybe re-created since). Everything else - puts, mkdirs,
moves, attribute changes - is claimed as usual, so creates and updates go on.
Ordering stays right through the barrier rules (barriers.py): a row enqueued
below a held tree removal waits for it (its wait_for), so a file re-created in
a removed directory is not shipped before the removal it must follow, and is
not deleted by that removal when it finally runs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from mirrord.journal.schema import transaction

# The rows a hold keeps back (parameters: none). Applied to `ops` in claim() / count_ready().
HELD_ROW = "(kind = 'delete' OR tree = 1)"
HELD_SQL = f"NOT ({HELD_ROW} AND source IN (SELECT source FROM holds))"
# A held row's next_try: past the end of the ops_ready index range claim() reads, so a
# million held deletes (an rm -rf) are not scanned at every claim (measured: 100,000 held
# rows made each claim 76 ms, each count_ready 115 ms). HELD_SQL alone decides what is
# held; parking is only the fast path. release() sets them due again, in the same
# transaction that lifts the hold.
PARKED = 1e300
RESUMED = "resumed:"   # kv key prefix: a hold lifted, not yet taken by the daemon (take_resumed)
# kv key prefix: deletes a hold stands for that are no journal rows (a capped comparison's
# refused deletes: hold(exempt=)), handed to the daemon with the resume (take_resumed)
EXEMPT = "held-unqueued:"


@dataclass(frozen=True)
class Hold:
    """A source whose deletes are held: since when (Unix seconds), why, how many distinct
    paths its held delete rows name (`waiting`: a file deleted on 3 targets is 1; a
    directory's removal is 1) and on how many targets (`targets`)."""

    source: str
    since: float
    reason: str
    waiting: int = 0
    targets: int = 0

    def to_json(self) -> dict:
        return {"since": self.since, "reason": self.reason, "waiting": self.waiting,
                "targets": self.targets}


def hold(db: sqlite3.Connection, source: str, *, since: float, reason: str,
         exempt: int = 0) -> bool:
    """Hold `source`'s deletes from now on. Returns False when they already were (the
    first hold's time and reason are kept). `exempt`: how many deletes the hold stands for
    that are not queued as rows (a capped comparison refused them: the most paths one
    target lacked); kept as the largest given while held, for the comparison after the
    resume to let go (take_resumed). Raises sqlite3.Error when it cannot be written."""
    with transaction(db):
        cur = db.execute("INSERT OR IGNORE INTO holds (source, since, reason) VALUES (?, ?, ?)",
                         (source, since, reason))
        if exempt > 0:
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                       (EXEMPT + source, f"exempt={max(exempt, _kv_int(db, EXEMPT + source))}"))
        db.execute(f"UPDATE ops SET next_try = ? WHERE source = ? AND claimed = 0 AND {HELD_ROW}",
                   (PARKED, source))
    return cur.rowcount == 1


def is_held(db: sqlite3.Connection, source: str) -> bool:
    """Whether `source`'s deletes are held (enqueue parks its new delete rows then)."""
    return db.execute("SELECT 1 FROM holds WHERE source = ?", (source,)).fetchone() is not None


def release(db: sqlite3.Connection, source: str | None = None) -> list[Hold]:
    """Lift the hold on `source` (None: every source). Returns the holds lifted, each with
    the deletes it released (distinct paths); [] when nothing was held. Each lift is also
    noted in `kv` (RESUMED + source, valued with the hold's `exempt` count) for the
    daemon, running or next started, to take (take_resumed): what it compares right
    after a resume was approved by it, up to what was held then."""
    with transaction(db):
        lifted = [h for h in read_holds(db) if source is None or h.source == source]
        for h in lifted:
            db.execute("DELETE FROM holds WHERE source = ?", (h.source,))
            db.execute("UPDATE ops SET next_try = 0 WHERE source = ? AND next_try = ?",
                       (h.source, PARKED))
            exempt = _kv_int(db, EXEMPT + h.source)
            db.execute("DELETE FROM kv WHERE key = ?", (EXEMPT + h.source,))
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                       (RESUMED + h.source, f"exempt={exempt}"))
    return lifted


def take_resumed(db: sqlite3.Connection) -> dict[str, int]:
    """The sources whose holds release() lifted since the last call, each noted once, each
    -> how many deletes its hold stood for that were never queued (hold's `exempt`; 0 for
    a mass-change alarm's hold: its deletes are the rows released). A read only when there
    is none (the daemon asks every second)."""
    span = (RESUMED, RESUMED[:-1] + chr(ord(RESUMED[-1]) + 1))
    query = "SELECT key, value FROM kv WHERE key >= ? AND key < ?"
    if not db.execute(query, span).fetchone():
        return {}
    with transaction(db):
        rows = db.execute(query, span).fetchall()
        for key, _value in rows:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
    return {key[len(RESUMED):]: _int(value) for key, value in rows}


def _int(value) -> int:
    """An `exempt=N` kv value's N; what an older version wrote ('1': a mere note) is 0."""
    try:
        return max(0, int(str(value).removeprefix("exempt="))) if str(value).startswith(
            "exempt=") else 0
    except ValueError:
        return 0


def _kv_int(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return 0 if row is None else _int(row[0])


def read_holds(db: sqlite3.Connection) -> list[Hold]:
    """Every hold, oldest first, with its waiting delete rows (a read: any connection;
    [] on a database from before schema 4, which a read-only reader does not migrate)."""
    try:
        holds = db.execute("SELECT source, since, reason FROM holds ORDER BY since, source").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    out = []
    for source, since, reason in holds:
        # distinct paths, not rows: a row per target made 21 held files read "63 deletes
        # held" on 3 targets, next to an alarm count of 23 (a breaker)
        waiting, targets = db.execute(
            f"SELECT COUNT(DISTINCT path), COUNT(DISTINCT target) FROM ops "
            f"WHERE source = ? AND {HELD_ROW}", (source,)).fetchone()
        out.append(Hold(source, since, reason, waiting, targets))
    return out


def held_sources(db: sqlite3.Connection) -> set[str]:
    """The names of the sources whose deletes are held (cheap: no counting)."""
    return set(hold_reasons(db))


def hold_reasons(db: sqlite3.Connection) -> dict[str, str]:
    """Each held source's name -> why it is held (the reason hold() wrote: a mass-change
    alarm, or a comparison over [reconcile] max_delete); cheap: no counting."""
    try:
        return dict(db.execute("SELECT source, reason FROM holds").fetchall())
    except sqlite3.OperationalError as exc:   # a database from before schema 4 (status, read-only)
        if "no such table" in str(exc):
            return {}
        raise
