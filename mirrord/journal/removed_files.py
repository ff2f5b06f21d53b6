"""How many files a tree removal takes away from a target beyond the deletes already
recorded (files_below_unremoved), as the mass-change alarm counts it (mirrord.daemon_alarm).
Read-only lookups on the journal's database, on the daemon's main thread. What a target
holds at one key, and why a put in flight counts as held: mirrord.journal.held_files.
"""

from __future__ import annotations

import sqlite3

from mirrord.journal.barriers import _self_and_ancestors
from mirrord.journal.held_files import SHIPPED_AT, deleted_at, held_at
from mirrord.journal.old_names import old_names
from mirrord.journal.read import shipped_meta
from mirrord.journal.records import _prefix_upper


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
    f"WHEN {_INSIDE} THEN 0 WHEN {SHIPPED_AT.format('path')} THEN 1 ELSE 0 END ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN o.kind = 'put' AND o.claimed > 0 AND o.is_dir = 0 THEN "
    f"NOT {SHIPPED_AT.format('path')} ELSE 0 END), 0), "
    "COALESCE(SUM(o.kind = 'move'), 0), "
    "COALESCE(SUM(o.tree = 1 AND o.kind IN ('delete', 'mkdir')), 0) "
    f"FROM ops AS o WHERE {_BELOW}")


# The files renamed into the range of _BELOW from outside it by renames not kept as moves
# (SyncItem.moved_to): the old name's delete carries the new name in src (ops_file_src
# index) and the new name is a put still queued. The removal takes the file, which is
# shipped at the old name only. Not counted here: a new name that is a move (_renamed_in),
# a put in flight or acked (landing or shipped below), or a delete (the alarm counted it on
# its own: `mv x d/x.tmp; mv d/x.tmp d/x` then `rm d/x`, then `rm -rf d`).
_LEFT_FOR = (
    "SELECT COUNT(*) FROM ops AS o WHERE o.target = :target AND o.source = :source "
    "AND o.tree = 0 AND o.kind = 'delete' AND o.src > :lo AND o.src < :hi "
    f"AND NOT (o.path > :lo AND o.path < :hi) AND {SHIPPED_AT.format('path')} "
    "AND EXISTS (SELECT 1 FROM ops AS n WHERE n.target = o.target AND n.source = o.source "
    "AND n.path = o.src AND (n.kind = 'put' AND n.claimed = 0 "
    "OR n.kind = 'move' AND n.src > :lo AND n.src < :hi))")


def files_below_unremoved(db: sqlite3.Connection, target: str, source: str,
                          prefix: bytes) -> int:
    """Files `target` holds below the directory `prefix` whose own delete is not queued yet:
    what a tree removal takes away beyond the deletes already recorded (each counted on
    its own by the alarm when it was). That is the shipped files below less the queued
    deletes of shipped files, plus the files held with no `shipped` row:
    - a put in flight (LANDING: done on the target, perhaps, and not acked yet);
    - a version landed, not recorded (ops.landed below `prefix`), at a key no row counts
      already (_recorded);
    - a file renamed in from outside `prefix`, the rename in flight or queued with its old
      name shipped (the removal takes the file, at either name), and what a directory
      renamed in the same way holds under its old name (_renamed_in; a rename not kept:
      _trees_renamed_in);
    - what `prefix` holds under its old names (old_names: `mv d e`, then e removed before
      that rename ran; `mv batch a/batch; mv a b; rm -rf b` takes batch's files through
      a's, two renames back);
    - a file renamed in by a rename not kept as a move, shipped at its old name only
      (_LEFT_FOR: `mv x d/x.tmp; mv d/x.tmp d/x`, then d removed before either ran).
    A directory's old name is counted as `prefix` is (its files, less their queued
    deletes, and what was renamed into it), _DEPTH renames deep at most.
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
    n = _unremoved(db, target, source, prefix)
    n += sum(1 for (key,) in db.execute(
        "SELECT path FROM ops WHERE target = ? AND source = ? AND path > ? AND path < ? "
        "AND landed != 0", (target, source, prefix + b"/", _prefix_upper(prefix)))
        if not _recorded(db, target, source, bytes(key)))
    return max(0, n)


def _recorded(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """What `target` holds at `key` is counted by a row already: its `shipped` row (the
    files below), its put in flight (LANDING) or its own delete (counted on its own)."""
    return held_at(db, target, source, key) or deleted_at(db, target, source, key)


# How deep _unremoved follows a directory renamed in, or an old name, into another one's
# count: a chain of pending directory renames longer than this counts the files shipped
# under the last name reached, not what was renamed into that.
_DEPTH = 4


def _unremoved(db: sqlite3.Connection, target: str, source: str, prefix: bytes, *,
               nested: bool = True, follow: bool = True, depth: int = 0) -> int:
    """files_below_unremoved before it is clipped at 0. `nested` False: the tree removals
    below are not taken off (the caller takes off all that lies below the outermost
    removals, whole); `follow` False: the old names of `prefix` are not looked at (the
    caller is counting one of them)."""
    if depth > _DEPTH:
        return _files_at(db, target, source, prefix)
    lo, hi = prefix + b"/", _prefix_upper(prefix)
    at = {"target": target, "source": source, "lo": lo, "hi": hi}
    files = _files_at(db, target, source, prefix)
    queued, landing, moves, trees = db.execute(_ROWS_BELOW, at).fetchone()
    n = files - queued + landing + db.execute(_LEFT_FOR, at).fetchone()[0]
    n += sum(_unremoved(db, target, source, old, follow=False, depth=depth + 1)
             for old in _trees_renamed_in(db, at))
    if moves:
        n += _renamed_in(db, at, depth)
    if trees and nested:
        n -= sum(_unremoved(db, target, source, below, nested=False, follow=True, depth=depth + 1)
                 for below in _removals_below(db, at))
    if follow:
        n += sum(_unremoved(db, target, source, old, follow=False, depth=depth + 1)
                 for old in old_names(db, target, source, prefix))
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


def _trees_renamed_in(db: sqlite3.Connection, at: dict) -> list[bytes]:
    """The old names of directories renamed into the range of `at` (_BELOW) from outside it
    by renames that could not be kept: tree rows outside the range carrying a new name in
    it (ops_tree_src: `mv x d/y; mv d/y d/z; rm -rf d`). The old names of the range's
    own directory are old_names'."""
    return [bytes(old) for (old,) in db.execute(
        "SELECT path FROM ops AS o WHERE o.target = :target AND o.source = :source "
        "AND o.src > :lo AND o.src < :hi AND o.tree = 1 AND o.kind IN ('delete', 'mkdir') "
        "AND NOT (o.path > :lo AND o.path < :hi)", at).fetchall()]


def _renamed_in(db: sqlite3.Connection, at: dict, depth: int) -> int:
    """Files renamed into the range of `at` (_BELOW) from outside it and held at their old
    name: a file's rename in flight or with its old name shipped, and what a directory's
    old name holds (_unremoved there: what was renamed into it too)."""
    n = 0
    for path, old, is_dir, claimed in db.execute(
            f"SELECT o.path, o.src, o.is_dir, o.claimed FROM ops AS o WHERE {_BELOW} "
            f"AND o.kind = 'move' AND NOT {_INSIDE}", at).fetchall():
        target, source, old = at["target"], at["source"], bytes(old)
        if is_dir:
            n += _unremoved(db, target, source, old, follow=False, depth=depth + 1)
        elif shipped_meta(db, target, source, bytes(path)) is None and (
                claimed or shipped_meta(db, target, source, old) is not None):
            n += 1
    return n


def _files_at(db: sqlite3.Connection, target: str, source: str, directory: bytes) -> int:
    """`shipped` files (not directories) of `target` and `source` below `directory`."""
    return db.execute("SELECT COUNT(*) FROM shipped WHERE target = ? AND source = ? AND key > ? "
                      "AND key < ? AND substr(key, -1) != X'2F'",
                      (target, source, directory + b"/", _prefix_upper(directory))).fetchone()[0]

