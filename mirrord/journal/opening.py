"""Opening the state database, and saying in one line why it cannot be opened.

Three causes, told apart because their remedies differ (schema.connect uses this):

- damaged: SQLite says "file is not a database" or "database disk image is malformed"
  (SQLITE_NOTADB, SQLITE_CORRUPT): move it aside to start over.
- not a file: the path is a directory (or another non-regular file): move that aside.
- cannot be opened: permissions, a read-only file system, a missing directory. The
  database is fine; moving it aside would lose the record of what was shipped, so the
  message says so and names the likely cause instead.

All three raise JournalUnusable (exit 2: the operator fixes the environment).

A read-only open (`mirrord status`, catch-up scans, reconcile's readers) works on a
read-only state directory too. A WAL database needs its -shm file, which SQLite creates
beside it; where it cannot (the directory is read-only, say a read-only bind mount) and
there is no -wal file (no writer has it open: a writer keeps its -wal while open), the
database is opened `immutable=1` (https://www.sqlite.org/uri.html#uriimmutable), which
reads the file without the -shm. A read-only open that created the -wal and -shm files
where there were none has them removed at close by a plain open-and-close (SQLite deletes
them when the last connection closes; a writer that has them open keeps them).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from mirrord.errors import JournalUnusable

# SQLite's primary result codes (https://www.sqlite.org/rescode.html)
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_DAMAGE_TEXT = ("file is not a database", "malformed")


def unusable(path: Path, exc: BaseException, *, readonly: bool = False) -> JournalUnusable:
    """The JournalUnusable for the error `exc` met opening or reading the database at
    `path`: damaged, or why it cannot be opened (see the module docstring)."""
    code = getattr(exc, "sqlite_errorcode", None)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if (code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)) or any(
            t in text for t in _DAMAGE_TEXT):
        return JournalUnusable(f"state database {path} is damaged ({text}); refusing to start. "
                               f"Move it aside to start over: every source will be re-checked "
                               f"against every target.")
    kind = not_a_file(path)
    if kind:
        return JournalUnusable(f"state database {path} is {kind}, not a database file; move it "
                               f"aside (mirrord creates a new database there) or set [mirrord] "
                               f"state_dir to another directory")
    how = "read-only" if readonly else "for writing"
    return JournalUnusable(f"cannot open the state database {path} ([mirrord] state_dir) "
                           f"{how} ({text}): "
                           f"{_likely_cause(path, readonly)}. The file itself may well be "
                           f"intact: do not move it aside, that loses the record of what "
                           f"was shipped")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database at `path`, checked by one read so that an
    unusable file fails here. Raises JournalUnusable (see unusable)."""
    kind = not_a_file(path)
    if kind:
        raise unusable(path, OSError(kind))
    emptied = emptied_with_log(path)
    if emptied is not None:
        raise emptied
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    had_files = wal.exists() or shm.exists()
    immutable = not had_files and not os.access(path.parent, os.W_OK)
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro" + (
        "&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False,
                               factory=_ReadOnlyConnection)
        conn.tidy_path = None if had_files or immutable else path
        conn.execute("PRAGMA busy_timeout = 30000")
        problem = not_ours(conn, path, empty_ok=False)
    except sqlite3.Error as exc:
        raise unusable(path, exc, readonly=True) from None
    if problem is not None:
        conn.close()
        raise problem
    return conn


def not_ours(conn: sqlite3.Connection, path: Path, *, empty_ok: bool) -> JournalUnusable | None:
    """Why the database at `path` is not a mirrord state database, or None: tables but not
    mirrord's `ops` (another program's SQLite file: a daemon would have added its tables to
    it), or no table at all unless `empty_ok` (a writer creates them; a reader has nothing
    to show: status read a 0-byte journal.db and failed with 'no such table: ops', a
    traceback). Raises sqlite3.Error when the file cannot be read."""
    tables = {name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "ops" in tables or (empty_ok and not tables):
        return None
    if not tables:
        return JournalUnusable(f"the state database {path} is empty: no mirrord daemon or "
                               f"reconcile has run with this state_dir yet")
    shown = ", ".join(sorted(tables)[:5])
    return JournalUnusable(f"{path} is not a mirrord state database (it holds other "
                           f"tables: {shown}); refusing to use it. Point [mirrord] state_dir "
                           f"at mirrord's own directory")


class _ReadOnlyConnection(sqlite3.Connection):
    """A read-only connection that removes, at close, the -wal and -shm files its open
    created (tidy_path: the database, or None when they were there before)."""

    tidy_path: Path | None = None

    def close(self) -> None:
        super().close()
        path, self.tidy_path = self.tidy_path, None
        if path is None:
            return
        try:   # SQLite removes them when its last connection closes; a writer's stay
            tidy = sqlite3.connect(path, timeout=1)
            try:
                tidy.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                tidy.close()
        except sqlite3.Error:
            pass


def not_a_file(path: Path) -> str:
    """'a directory' (or another kind) when `path` exists and is not a regular file
    (symlinks followed), else ''."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return ""
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def _likely_cause(path: Path, readonly: bool) -> str:
    """The likelier reason an open failed, from what this process may do there."""
    folder = path.parent
    if not folder.is_dir():
        return f"its directory {folder} does not exist or is not a directory"
    if not os.access(folder, os.R_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK)):
        return f"this user cannot read {path} or its directory: check their owner and mode"
    if not os.access(folder, os.W_OK):
        return (f"its directory {folder} is read-only here (a read-only mount, or its mode), and "
                f"SQLite needs to create {path.name}-shm beside it" if readonly else
                f"its directory {folder} is not writable here (a read-only mount, or its mode)")
    if not readonly and path.exists() and not os.access(path, os.W_OK):
        return f"this user cannot write {path}: check its owner and mode"
    return "check the owner and mode of the file and its directory, and free disk space"


def exists(path: Path) -> bool:
    """Whether a state database stands at `path`, for a reader that takes "none" as
    "nothing shipped yet" (status, reconcile's listings, resume-deletes, the trash cap's
    base). Raises JournalUnusable (emptied_with_log) when it is missing, or 0 bytes,
    beside a write-ahead log that holds frames: that is a truncated record, and "nothing
    yet" made a dry run say "in sync", resume-deletes "no deletes were held", and the
    trash cap's base 0 bytes."""
    emptied = emptied_with_log(path)
    if emptied is not None:
        raise emptied
    return path.exists()


def emptied_with_log(path: Path) -> JournalUnusable | None:
    """The refusal for a state database of 0 bytes, or missing, beside a write-ahead log
    that holds frames: the file was truncated or removed (a restore gone wrong, a disk
    error, `rm journal.db`). SQLite, finding no header, started it empty and threw the
    log away, or replayed the log's pages onto an empty file (a malformed database, every
    write then failing): every shipped record and queued change went without a word
    (breakers H and J). None otherwise (a new database is 0 bytes with no log)."""
    try:
        log = os.stat(f"{path}-wal").st_size
    except OSError:
        return None
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    except OSError:
        return None
    if size or not log:
        return None
    return JournalUnusable(f"state database {path} is empty (0 bytes) or missing while its write-ahead "
                           f"log {path}-wal holds {log} bytes: it was truncated; refusing to "
                           f"start. Move both aside to start over: every source will be "
                           f"re-checked against every target.")
