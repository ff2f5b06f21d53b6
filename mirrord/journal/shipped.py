"""The record of what was shipped: keeps the `shipped` table equal to what a target holds.

One row per (target, source, key); the key is the path bytes, a directory's with
a trailing '/' (ship_key). Catch-up and reconcile merge a source walk with these
rows (iter_shipped), so a row here is what spares a file from being sent again.
Called inside ack()'s transaction, one Outcome that succeeded at a time. A pair's rows
set aside when its target's location changes, and brought back on a return there, live in
`shipped_aside` (schema 5; the rule: mirrord.locations).
"""

from __future__ import annotations

import sqlite3

from mirrord.compare import stored_ns
from mirrord.journal.records import Outcome, _b, _prefix_upper


# Never INSERT OR REPLACE: REPLACE removes the old row without firing its DELETE trigger
# (SQLite: "recursive_triggers"), so the running totals of schema 6 (shipped_bytes,
# kept by triggers: mirrord.journal.schema) would count a replaced file twice.
_ON_KEY = ("ON CONFLICT (target, source, key) DO UPDATE SET size = excluded.size, "
           "mtime_ns = excluded.mtime_ns, token = excluded.token, mode = excluded.mode")
_UPSERT = ("INSERT INTO shipped (target, source, key, size, mtime_ns, token, mode) "
           "VALUES (?, ?, ?, ?, ?, ?, ?) " + _ON_KEY)


def record_shipped(db: sqlite3.Connection, out: Outcome) -> None:
    """Keep `shipped` equal to what the target now holds for this path."""
    op = out.op
    t, s, path = op.target, op.source, _b(op.path)
    if op.tree or (out.shipped_kind == "put" and not out.kept_below) or (
            out.shipped_kind == "move" and not out.merged):
        _forget_tree(db, t, s, path)  # nothing of ours stands below path any more
    # a put on S3 (no directories) leaves the keys below its name: a comparison that
    # refused the tree's removal sent it alone, and forgetting them left them on the
    # bucket for good, with no delete ever proposed (the resumed comparison found none)
    # a merged move (Features.move_merges: S3) left what stood below path that it did not
    # overwrite, and the record says so: the check after the move removes what the source
    # lacks. Forgotten, it stayed on the bucket for good (a breaker: `mv --exchange D E`
    # three times, fanotify, the old E/e.jpg)
    if out.shipped_kind == "move" and op.src is not None:
        _move_shipped(db, t, s, _b(op.src), path, op.is_dir)
    if out.shipped_kind in ("put", "move") and not out.is_dir:
        # _forget_tree above already took the directory key path + b"/" (its range starts there)
        _set_shipped(db, t, s, path, None, out.size, out.mtime_ns, out.token, out.mode)
    elif out.shipped_kind == "meta":   # mode / mtime set in place: same body, same token
        db.execute("UPDATE shipped SET mtime_ns = ?, mode = ?, token = COALESCE(?, token) "
                   "WHERE target = ? AND source = ? AND key = ?",
                   (stored_ns(out.mtime_ns), out.mode, out.token, t, s, path))
    elif out.shipped_kind in ("mkdir", "move"):
        _set_shipped(db, t, s, path + b"/", path, 0, out.mtime_ns, None, out.mode)
    elif out.shipped_kind == "delete":
        db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key IN (?, ?)",
                   (t, s, path, path + b"/"))


def _set_shipped(db: sqlite3.Connection, t: str, s: str, key: bytes, other: bytes | None,
                 size: int, mtime_ns: int, token: str | None, mode: int | None) -> None:
    """Record `key`; `other` (the same path as the other kind, file <-> directory) is
    removed first, unless None: the caller has removed it already."""
    if other is not None:
        db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key = ?", (t, s, other))
    db.execute(_UPSERT, (t, s, key, size, stored_ns(mtime_ns), token, mode))


def _forget_tree(db: sqlite3.Connection, t: str, s: str, path: bytes) -> None:
    db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key >= ? AND key < ?",
               (t, s, path + b"/", _prefix_upper(path)))


def _move_shipped(db: sqlite3.Connection, t: str, s: str, src: bytes, dst: bytes, is_dir: bool) -> None:
    if not is_dir:
        db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key = ?", (t, s, src))
        return
    rows = db.execute(
        "SELECT key, size, mtime_ns, token, mode FROM shipped WHERE target = ? AND source = ? "
        "AND key >= ? AND key < ?", (t, s, src + b"/", _prefix_upper(src))).fetchall()
    db.execute("DELETE FROM shipped WHERE target = ? AND source = ? AND key >= ? AND key < ?",
               (t, s, src + b"/", _prefix_upper(src)))
    db.executemany(
        _UPSERT,
        [(t, s, dst + bytes(k)[len(src):], size, m, tok, mode) for k, size, m, tok, mode in rows])


_COLS = "key, size, mtime_ns, token, mode"
UNSURE = -1   # size and mtime_ns of a record row that may or may not be on the target


def mark_in_flight_unsure(db: sqlite3.Connection, t: str, s: str) -> int:
    """Make the record of (`t`, `s`) say "not known" wherever a row in flight may have
    changed the target without being recorded: each end of the row (and what is recorded
    below it) gets size and mtime UNSURE, which no source file matches, and each parent
    directory it may have made is recorded. Called when the pair's location changes
    (mirrord.locations), before the record is set aside: the rows themselves then run at
    the new place, so the old one never saw their outcome, and a put done there (kill -9
    before its ack), its parents, a rename or a delete stayed unknown to the record a
    return restores; the catch-up on that return now re-sends such a path where the source
    has it and deletes it where it has not. Returns how many rows were in flight."""
    rows = db.execute("SELECT path, src, is_dir FROM ops WHERE target = ? AND source = ? "
                      "AND claimed != 0", (t, s)).fetchall()
    for path, src, is_dir in rows:
        for end in (bytes(path), bytes(src) if src is not None else None):
            if end is None:
                continue
            db.execute("UPDATE shipped SET size = ?, mtime_ns = ? WHERE target = ? AND source = ? "
                       "AND (key = ? OR (key >= ? AND key < ?))",
                       (UNSURE, UNSURE, t, s, end, end + b"/", _prefix_upper(end)))
            keys = [end + b"/" if is_dir else end]
            cut = end.rfind(b"/")
            while cut > 0:   # the parents a put or a rename made on its way
                keys.append(end[:cut + 1])
                cut = end.rfind(b"/", 0, cut)
            db.executemany("INSERT OR IGNORE INTO shipped (target, source, key, size, mtime_ns, "
                           "token, mode) VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                           [(t, s, k, UNSURE, UNSURE) for k in keys])
    return len(rows)


def set_aside(db: sqlite3.Connection, t: str, s: str, location: str) -> int:
    """Move the `shipped` rows of (`t`, `s`) into `shipped_aside` under `location` (the
    place they describe, mirrord.locations), replacing what was set aside for it before;
    returns how many rows moved. One INSERT ... SELECT and one DELETE."""
    drop_aside(db, t, s, location)
    moved = db.execute(f"INSERT INTO shipped_aside (target, source, location, {_COLS}) "
                       f"SELECT target, source, ?, {_COLS} FROM shipped WHERE target = ? AND "
                       "source = ?", (location, t, s)).rowcount
    db.execute("DELETE FROM shipped WHERE target = ? AND source = ?", (t, s))
    return moved


def restore_aside(db: sqlite3.Connection, t: str, s: str, location: str) -> int:
    """Make the rows set aside for `location` the record of (`t`, `s`) again (its `shipped`
    rows are expected gone: set_aside first); returns how many."""
    back = db.execute(f"INSERT INTO shipped (target, source, {_COLS}) SELECT target, "
                      f"source, {_COLS} FROM shipped_aside WHERE target = ? AND source = ? AND "
                      f"location = ? {_ON_KEY}", (t, s, location)).rowcount
    drop_aside(db, t, s, location)
    return back


def drop_aside(db: sqlite3.Connection, t: str, s: str, location: str) -> int:
    """Forget the rows set aside for `location`; returns how many went."""
    return db.execute("DELETE FROM shipped_aside WHERE target = ? AND source = ? AND location = ?",
                      (t, s, location)).rowcount
