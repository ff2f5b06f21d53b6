"""The state database's upgrades in place, one step per schema version (user_version).

Each step runs in its own transaction and leaves the file at its version, so a crash
between two steps resumes at the next start. mirrord.journal.schema.migrate calls
upgrade() for a database older than SCHEMA_VERSION, then creates what is still missing.
"""

from __future__ import annotations

import sqlite3

from mirrord.journal.schema import _TOTALS, transaction


def upgrade(db: sqlite3.Connection, version: int) -> None:
    """Run every step from `version` (1..SCHEMA_VERSION) up; SQLite errors propagate."""
    for step, since in ((_to_v2, 1), (_to_v3, 2), (_to_v4, 3), (_to_v5, 4), (_to_v6, 5), (_to_v7, 6)):
        if version <= since:
            step(db)


def _to_v2(db: sqlite3.Connection) -> None:
    """Version 1 -> 2 in place: `shipped` gains `mode`, NULL on every old row (not
    known: catch-up and reconcile then send the mode once, never the body again)."""
    with transaction(db):
        cols = [r[1] for r in db.execute("PRAGMA table_info(shipped)")]
        if "mode" not in cols:
            db.execute("ALTER TABLE shipped ADD COLUMN mode INTEGER")
        db.execute("PRAGMA user_version = 2")


def _to_v3(db: sqlite3.Connection) -> None:
    """Version 2 -> 3 in place: `ops.busy` and `target_stats.busy` (a file still open
    for writing is a wait, counted apart from failures), 0 on every old row."""
    with transaction(db):
        for table in ("ops", "target_stats"):
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            if cols and "busy" not in cols:
                db.execute(f"ALTER TABLE {table} ADD COLUMN busy INTEGER NOT NULL DEFAULT 0")
        db.execute("PRAGMA user_version = 3")


def _to_v4(db: sqlite3.Connection) -> None:
    """Version 3 -> 4 in place: the `holds` table (mirrord.journal.holds), empty: no
    source's deletes were held before this version existed."""
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS holds (source TEXT PRIMARY KEY, since REAL NOT NULL, "
                   "reason TEXT NOT NULL DEFAULT '')")
        db.execute("PRAGMA user_version = 4")


def _to_v5(db: sqlite3.Connection) -> None:
    """Version 4 -> 5 in place: `ops.claimer`, NULL on every old row (a claim of unknown
    holder: taken as a gone process's, as every claim was before), and `shipped_aside`
    (created by _SCHEMA), empty: no location's record was set aside before."""
    with transaction(db):
        cols = [r[1] for r in db.execute("PRAGMA table_info(ops)")]
        if cols and "claimer" not in cols:
            db.execute("ALTER TABLE ops ADD COLUMN claimer TEXT")
        db.execute("PRAGMA user_version = 5")


def _to_v6(db: sqlite3.Connection) -> None:
    """Version 5 -> 6 in place: `shipped_bytes` and its triggers (_TOTALS), each target's
    row counted from the `shipped` rows there are; the high-water mark starts at that
    count (what retention stored as `trash:{target}`'s base is still read beside it)."""
    with transaction(db):
        for statement in _statements(_TOTALS):
            db.execute(statement)
        db.execute("DELETE FROM shipped_bytes")
        db.execute("INSERT INTO shipped_bytes (target, bytes, high) SELECT target, "
                   "SUM(MAX(size, 0)), SUM(MAX(size, 0)) FROM shipped GROUP BY target")
        db.execute("PRAGMA user_version = 6")


def _to_v7(db: sqlite3.Connection) -> None:
    """Version 6 -> 7 in place: `ops.landed`, 0 on every old row (a version stored and not
    recorded before this version was not known after a restart either), and
    `ops.claimed_kind`, `ops.claimed_src`, NULL on every old row (a row claimed before is
    read by its kind and src, as it was then: barriers.IN_FLIGHT_SQL)."""
    with transaction(db):
        cols = [r[1] for r in db.execute("PRAGMA table_info(ops)")]
        for name, decl in (("landed", "INTEGER NOT NULL DEFAULT 0"), ("claimed_kind", "TEXT"),
                           ("claimed_src", "BLOB")):
            if cols and name not in cols:
                db.execute(f"ALTER TABLE ops ADD COLUMN {name} {decl}")
        db.execute("PRAGMA user_version = 7")


def _statements(script: str) -> list[str]:
    """`script` cut into whole statements (a trigger's body holds semicolons of its own),
    for db.execute inside a transaction: executescript would COMMIT first."""
    out, part = [], ""
    for line in script.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return out
