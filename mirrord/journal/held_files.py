"""What a target holds as the mass-change alarm counts it: whether a write is an
overwrite (shipped_file) and how many files a tree removal takes away beyond the deletes
already recorded (files_below_unremoved). Read-only lookups on the journal's database,
on the daemon's main thread (mirrord.daemon_alarm, daemon_alarm_scan).

A file is held from the moment its put or rename is under way, not from its ack: the
worker may have stored it already (see _LANDING).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from mirrord.journal.barriers import _self_and_ancestors
from mirrord.journal.read import shipped_meta
from mirrord.journal.records import _prefix_upper


# A file an op in flight is putting or renaming onto a target: the worker may have stored
# it already, and `shipped` learns of it only at the ack (parameters: target, source).
# The alarm's lookups take it as held by the target: a file put by the start's catch-up,
# found on the target by a test that then ran `rm -rf` before the ack, was left out of
# the tree removal's count, and the alarm never saw every delete (a loaded CI run of
# tests/e2e/test_alarm_daemon.py).
_LANDING = "claimed != 0 AND is_dir = 0 AND kind IN ('put', 'move')"


def shipped_file(db: sqlite3.Connection, targets: Iterable[str], source: str, key: bytes) -> bool:
    """Whether one of `targets` holds the file `key`: as shipped, or with a put or rename
    of it in flight (_LANDING). The mass-change alarm's test for an overwrite: one
    statement, a primary-key search and a unique-index search per target (measured 5 us
    on a 50,000-file journal, 4.3 with the first alone, against about 70 us to record the
    change itself)."""
    targets = tuple(targets)
    if not targets:
        return False
    marks = ",".join("?" * len(targets))
    return db.execute(f"SELECT 1 FROM shipped WHERE target IN ({marks}) AND source = ? AND key = ? "
                      f"UNION ALL SELECT 1 FROM ops WHERE target IN ({marks}) AND source = ? "
                      f"AND path = ? AND {_LANDING} LIMIT 1",
                      (*targets, source, key, *targets, source, key)).fetchone() is not None


_SHIPPED_AT = ("EXISTS (SELECT 1 FROM shipped AS s WHERE s.target = o.target "
               "AND s.source = o.source AND s.key = o.{})")
_BELOW = "o.target = :target AND o.source = :source AND o.path > :lo AND o.path < :hi"
_INSIDE = "(o.src IS NOT NULL AND o.src > :lo AND o.src < :hi)"   # the other end is below too
# One range scan of the rows below (CASE, not AND: SQLite evaluates both sides of an AND in
# a result column, and the lookups are wanted for few rows):
# - the queued deletes of shipped files, the alarm's per-file count (a rename's source
#   end, carrying the new name in src, only when that lies outside: it left);
# - the puts in flight (claimed) of files with no `shipped` row: landing;
# - how many renames and tree removals lie below (each looked at only when there are).
_ROWS_BELOW = (
    "SELECT COALESCE(SUM(CASE WHEN o.kind = 'delete' AND o.is_dir = 0 THEN CASE "
    f"WHEN {_INSIDE} THEN 0 WHEN {_SHIPPED_AT.format('path')} THEN 1 ELSE 0 END ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN o.kind = 'put' AND o.claimed > 0 AND o.is_dir = 0 THEN "
    f"NOT {_SHIPPED_AT.format('path')} ELSE 0 END), 0), "
    "COALESCE(SUM(o.kind = 'move'), 0), "
    "COALESCE(SUM(o.tree = 1 AND o.kind IN ('delete', 'mkdir')), 0) "
    f"FROM ops AS o WHERE {_BELOW}")


def files_below_unremoved(db: sqlite3.Connection, target: str, source: str, prefix: bytes) -> int:
    """Files `target` holds below the directory `prefix` whose own delete is not queued yet:
    what a tree removal takes away beyond the deletes already recorded (each counted on
    its own by the alarm when it was). That is the shipped files below less the queued
    deletes of shipped files, plus the files held with no `shipped` row:
    - a put in flight (_LANDING: done on the target, perhaps, and not acked yet);
    - a file renamed in from outside `prefix`, the rename in flight or queued with its old
      name shipped (the removal takes the file, at either name), and each shipped file
      below a directory renamed in the same way;
    - the shipped files under an old name of `prefix` (_at_old_names: `mv d e`, then e
      removed before that rename ran).
    What lies below a tree removal already queued below `prefix` (`mv d/sub /elsewhere`,
    then `rm -rf d`) counts nothing: that removal was counted when it was recorded; a
    directory renamed within `prefix` is no such removal (its files are still below).
    A rename's source end (a delete row carrying the new name in `src`) is taken off only
    when the new name lies outside `prefix`: a rename inside it moves nothing out.
    A delete of a file never shipped (a temp file made and deleted while the target was
    away) takes nothing off: the alarm counted it on its own, one too many, the safe side;
    taken off, such deletes cancelled shipped files and a removal of 50 files counted 0.
    Counts one too many for a fallback rename's put in flight (its old name is counted
    too), the safe side; a directory made again at the name of one renamed away and then
    removed is counted with the files that left (`mv logs logs.1; mkdir logs; rm -rf
    logs` counts logs.1's), also the safe side. One range scan over the unique index with
    a primary-key lookup per queued delete and put in flight, a lookup per rename or tree
    removal below (measured with 50,000 rows below, half of them deletes: 30 ms, against
    12 ms when every queued delete was taken off unlooked)."""
    return max(0, _unremoved(db, target, source, prefix))


def _unremoved(db: sqlite3.Connection, target: str, source: str, prefix: bytes, *,
               nested: bool = True) -> int:
    """files_below_unremoved before it is clipped at 0. `nested` False: the old names and
    the tree removals below are not looked at (the caller takes off all that lies below
    the outermost removals, whole)."""
    lo, hi = prefix + b"/", _prefix_upper(prefix)
    at = {"target": target, "source": source, "lo": lo, "hi": hi}
    files = _files_at(db, target, source, prefix)
    queued, landing, moves, trees = db.execute(_ROWS_BELOW, at).fetchone()
    n = files - queued + landing
    if nested:
        n += _at_old_names(db, at, prefix)
    if moves:
        n += _renamed_in(db, at)
    if trees and nested:
        n -= sum(_unremoved(db, target, source, below, nested=False)
                 for below in _removals_below(db, at))
    return n


def _removals_below(db: sqlite3.Connection, at: dict) -> list[bytes]:
    """The tree removals queued in the range of `at` (_BELOW) not inside another one and not
    the old name of a directory renamed within the range (its source end: a delete or, made
    again, a mkdir, with no src; what it held is at the new name, still below)."""
    rows = {bytes(path) for (path,) in db.execute(
        f"SELECT o.path FROM ops AS o WHERE {_BELOW} AND o.tree = 1 "
        f"AND o.kind IN ('delete', 'mkdir') AND NOT {_INSIDE}", at).fetchall()}
    if rows:
        rows -= {bytes(old) for (old,) in db.execute(
            f"SELECT o.src FROM ops AS o WHERE {_BELOW} AND o.kind = 'move' AND o.is_dir = 1 "
            f"AND {_INSIDE}", at).fetchall()}
    return sorted(p for p in rows
                  if not any(up in rows for up in _self_and_ancestors(p.rpartition(b"/")[0])))


def _at_old_names(db: sqlite3.Connection, at: dict, prefix: bytes) -> int:
    """Shipped files still under an old name of `prefix` or of what lies below it, which
    its removal takes at either name:
    - `prefix` (or a directory above it) is the new name of a directory rename not done
      yet (`mv d e; mv e elsewhere`);
    - a tree removal of an old name carries a new name at or above `prefix`, or below it
      from outside it (a rename that could not be kept: `mv x d/y; mv d/y d/z; rm -rf d`).
    Tree rows are found by their src through the ops_tree_src index; a file's old-name
    row (a delete carrying src, tree = 0) has no index on src and is not looked for.
    `at`: _BELOW's parameters for `prefix`."""
    target, source, lo, hi = at["target"], at["source"], at["lo"], at["hi"]
    n = 0
    for p in _self_and_ancestors(prefix):
        row = db.execute("SELECT src FROM ops WHERE target = ? AND source = ? AND path = ? "
                         "AND kind = 'move' AND is_dir = 1", (target, source, p)).fetchone()
        if row is not None and row[0] is not None:
            n += _files_at(db, target, source, bytes(row[0]) + prefix[len(p):])
            break
    for p in _self_and_ancestors(prefix):
        for (old,) in db.execute("SELECT path FROM ops WHERE target = ? AND source = ? AND src = ? "
                                 "AND tree = 1 AND kind IN ('delete', 'mkdir')",
                                 (target, source, p)).fetchall():
            n += _files_at(db, target, source, bytes(old) + prefix[len(p):])
    for (old,) in db.execute("SELECT path FROM ops WHERE target = ? AND source = ? AND src > ? "
                             "AND src < ? AND tree = 1 AND kind IN ('delete', 'mkdir')",
                             (target, source, lo, hi)).fetchall():
        old = bytes(old)
        if not lo < old < hi:
            n += _files_at(db, target, source, old)
    return n


def _renamed_in(db: sqlite3.Connection, at: dict) -> int:
    """Files renamed into the range of `at` (_BELOW) from outside it and held at their old
    name: a file's rename in flight or with its old name shipped, and the shipped files
    below a directory's old name."""
    n = 0
    for path, old, is_dir, claimed in db.execute(
            f"SELECT o.path, o.src, o.is_dir, o.claimed FROM ops AS o WHERE {_BELOW} "
            f"AND o.kind = 'move' AND NOT {_INSIDE}", at).fetchall():
        target, source, old = at["target"], at["source"], bytes(old)
        if is_dir:
            n += _files_at(db, target, source, old)
        elif shipped_meta(db, target, source, bytes(path)) is None and (
                claimed or shipped_meta(db, target, source, old) is not None):
            n += 1
    return n


def _files_at(db: sqlite3.Connection, target: str, source: str, directory: bytes) -> int:
    """`shipped` files (not directories) of `target` and `source` below `directory`."""
    return db.execute("SELECT COUNT(*) FROM shipped WHERE target = ? AND source = ? AND key > ? "
                      "AND key < ? AND substr(key, -1) != X'2F'",
                      (target, source, directory + b"/", _prefix_upper(directory))).fetchone()[0]
