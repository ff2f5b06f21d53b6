"""The state database itself: its schema, opening it, checking it, migrating it.

The schema is versioned with SQLite's `PRAGMA user_version`; an older database
is migrated in place (v1 -> v2 -> ... -> v7), a newer one is refused. A damaged file
raises JournalUnusable (mirrord.journal.opening) and is never silently replaced by an
empty one: starting empty would re-check every source against every target without saying why.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import sqlite3
from pathlib import Path

from mirrord.errors import JournalError, JournalUnusable
from mirrord.journal import opening

SCHEMA_VERSION = 7   # 2: shipped.mode (permission bits; NULL = not known); 3: ops.busy, target_stats.busy
#                      4: holds (sources whose deletes are held after a mass-change alarm)
#                      5: ops.claimer (which process holds a row in flight: mirrord.claimer) and
#                         shipped_aside (the record of a location left: mirrord.locations)
#                      6: shipped_bytes (each target's recorded bytes and their high-water
#                         mark, kept by triggers on `shipped`: _TOTALS)
#                      7: ops.landed (the target may hold a version at the row's path that no
#                         `shipped` row names: mirrord.journal.first_copies), ops.claimed_kind
#                         and ops.claimed_src (what a row in flight was claimed as: its
#                         later changes do not change what its worker does: barriers.InFlight)

# Each target's bytes in `shipped` (a size UNSURE, -1, counts 0) and the most they have
# ever been (`high`), kept by the triggers below in the very transaction that changes
# `shipped`, whoever writes it: daemon, reconcile, CLI. `high` is what a percentage cap on
# the trash is of (mirrord.trash.retention.percent_base): a tree mirrored and removed
# between two retention runs was never in a sampled mark, and a cap of what was left
# purged the very files its removal had kept. No statement may INSERT OR REPLACE into
# `shipped` (mirrord.journal.shipped): REPLACE's implicit delete fires no trigger.
_TOTALS = """
CREATE TABLE IF NOT EXISTS shipped_bytes (
    target TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL DEFAULT 0,
    high INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS shipped_bytes_insert AFTER INSERT ON shipped BEGIN
    INSERT INTO shipped_bytes (target, bytes, high)
    VALUES (NEW.target, MAX(NEW.size, 0), MAX(NEW.size, 0))
    ON CONFLICT (target) DO UPDATE SET bytes = bytes + MAX(NEW.size, 0),
                                       high = MAX(high, bytes + MAX(NEW.size, 0));
END;
CREATE TRIGGER IF NOT EXISTS shipped_bytes_update AFTER UPDATE OF size ON shipped BEGIN
    UPDATE shipped_bytes SET bytes = bytes + MAX(NEW.size, 0) - MAX(OLD.size, 0),
                             high = MAX(high, bytes + MAX(NEW.size, 0) - MAX(OLD.size, 0))
    WHERE target = NEW.target;
END;
CREATE TRIGGER IF NOT EXISTS shipped_bytes_delete AFTER DELETE ON shipped BEGIN
    UPDATE shipped_bytes SET bytes = bytes - MAX(OLD.size, 0) WHERE target = OLD.target;
END;
"""

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
    claimer TEXT,
    landed INTEGER NOT NULL DEFAULT 0,
    claimed_kind TEXT,
    claimed_src BLOB,
    UNIQUE (target, source, path)
);
CREATE INDEX IF NOT EXISTS ops_ready ON ops (target, claimed, next_try, id);
CREATE INDEX IF NOT EXISTS ops_wait ON ops (wait_for) WHERE wait_for IS NOT NULL;
CREATE INDEX IF NOT EXISTS ops_tree_src ON ops (target, source, src)
    WHERE tree = 1 AND src IS NOT NULL;
CREATE INDEX IF NOT EXISTS ops_file_src ON ops (target, source, src)
    WHERE tree = 0 AND kind = 'delete' AND src IS NOT NULL;
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
CREATE TABLE IF NOT EXISTS shipped_aside (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    location TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    token TEXT,
    mode INTEGER,
    PRIMARY KEY (target, source, location, key)
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
CREATE TABLE IF NOT EXISTS holds (
    source TEXT PRIMARY KEY,
    since REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
""" + _TOTALS


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the state database; a damaged file, a directory in its place or a file that
    cannot be opened raises JournalUnusable (a JournalError: mirrord.journal.opening),
    never starts empty. `readonly`: opening.connect_readonly (works on a read-only
    state directory)."""
    if readonly:
        return opening.connect_readonly(path)
    if opening.not_a_file(path):
        raise opening.unusable(path, OSError("not a file"))
    emptied = opening.emptied_with_log(path)
    if emptied is not None:
        raise emptied
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise opening.unusable(path, exc) from None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        foreign = opening.not_ours(conn, path, empty_ok=True)
        if foreign is not None:   # before WAL mode: another program's file stays as it was
            conn.close()
            raise foreign
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise opening.unusable(path, exc) from None
    return conn


def create(path: Path) -> None:
    """Make a new state database at `path`, tables and all, built beside it under a
    temporary name and linked into place, so that no reader ever opens it without its
    tables (`mirrord status`, or a tool polling the journal, at the daemon's first
    start read a 0-byte journal.db: "is empty: no mirrord daemon has run", exit 2).
    Nothing when `path` appears meanwhile (another process made it first: its database
    is used). Raises JournalUnusable when the directory cannot be written."""
    prefix = f".{path.name}.new-"
    for leftover in path.parent.glob(glob.escape(prefix) + "*"):   # a crash while making one
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()
    aside = path.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        try:
            conn = connect(aside)
        except JournalUnusable as exc:   # named as the operator knows it
            raise JournalUnusable(str(exc).replace(str(aside), str(path))) from None
        try:
            migrate(conn, aside)
        finally:
            conn.close()   # the last connection: SQLite folds the WAL in and removes it
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        except OSError as exc:   # a file system without hard links: rename, if still free
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS) or path.exists():
                raise
            os.rename(aside, path)
    except OSError as exc:   # the aside name left out: the operator knows journal.db
        raise opening.unusable(path, OSError(exc.errno, exc.strerror)) from None
    finally:
        with contextlib.suppress(OSError):
            _remove_aside(aside)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # EPERM: another user's live process
    return True


def _remove_aside(aside: Path) -> None:
    for name in (aside, Path(f"{aside}-wal"), Path(f"{aside}-shm")):
        try:
            name.unlink()
        except FileNotFoundError:
            pass


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """PRAGMA quick_check on the database at `path`; anything but 'ok' closes `db` and
    raises JournalError naming the file and the first three problems."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    if rows != [("ok",)]:
        detail = "; ".join(str(r[0]) for r in rows[:3])
        db.close()
        raise JournalUnusable(f"state database {path} is damaged ({detail}); refusing to "
                              f"start. Move it aside to start over: every source will be "
                              f"re-checked against every target.")


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the database at `path` to SCHEMA_VERSION (creating the tables when new).
    Raises JournalError when its schema is newer than this mirrord, or it is damaged."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(f"state database {path} has schema {version}, newer "
                               f"than this mirrord ({SCHEMA_VERSION}); refusing to start")
        if version:   # 0: a new database, made whole by _SCHEMA below
            from mirrord.journal import migrations   # it imports this module
            migrations.upgrade(db, version)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        raise opening.unusable(path, exc) from None


def transaction(db: sqlite3.Connection) -> _Txn:
    """A context manager: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception). Nested
    inside an open transaction it does nothing, so the outermost one decides."""
    return _Txn(db)


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
            try:
                self.db.execute("COMMIT")
            except BaseException:
                # a COMMIT that fails (SQLITE_FULL) may leave the transaction open (SQLite:
                # "COMMIT"): rolled back, so that the next transaction can begin
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
        else:
            self.db.execute("ROLLBACK")
        return False
