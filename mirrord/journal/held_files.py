"""What a target holds as the mass-change alarm counts it: whether a write is an
overwrite (shipped_file) and how many files a tree removal takes away beyond the deletes
already recorded (files_below_unremoved). Read-only lookups on the journal's database,
on the daemon's main thread (mirrord.daemon_alarm, daemon_alarm_scan).

A file is held from the moment its put or rename is under way, not from its ack: the
worker may have stored it already (see LANDING); unless what the put sends is the
write's own version (mirrord.journal.first_copies: shipped_file's own_landing). And after
an answer that it changed while it was sent (errors.ChangedWhileSent): no `shipped` row
names that version, the target holds it (ops.landed: landed, not recorded; first_copies
keeps what this process knows of it: shipped_file's `landed`).
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable

from mirrord.journal.barriers import _self_and_ancestors
from mirrord.journal.old_names import FILE_RENAMED_TO, old_names
from mirrord.journal.read import shipped_meta
from mirrord.journal.records import _prefix_upper


# A file an op in flight is putting or renaming onto a target: the worker may have stored
# it already, and `shipped` learns of it only at the ack (parameters: target, source).
# The alarm's lookups take it as held by the target: a file put by the start's catch-up,
# found on the target by a test that then ran `rm -rf` before the ack, was left out of
# the tree removal's count, and the alarm never saw every delete (a loaded CI run of
# tests/e2e/test_alarm_daemon.py).
LANDING = "claimed != 0 AND is_dir = 0 AND kind IN ('put', 'move')"


# The version shipped at a key (shipped AS s) goes away before anything new lands there:
# the key's row is a delete (held, queued or in flight), or a rename's source end turned
# into a put. A write at the key then makes a new file and destroys nothing more:
# - a delete was counted when it was recorded (or is reconcile's, under max_delete); the
#   write after it counted that version again. A CI run: a file deleted on one target
#   while its delete was held on the other, restored by `mirrord undelete --to-source`,
#   counted one overwrite beside its delete;
# - a rename's source end (a file's delete carrying the new name in src): MediaWiki's
#   archiving (`mv x archive/...!x`, then the new x), an editor's backup (`mv f f~`, then
#   f), a log rotation, a rename there and back. Each counted one overwrite per file (a
#   breaker: 12 for none lost). The first such write turns the row into a put that keeps
#   where the bytes went (its src: Journal._went_to); the writes after it are new bytes
#   too. A plain delete's row turned into a put keeps nothing: a later write counts
#   again (the safe side).
# The key's row (columns prefixed by `{0}`, its alias) that takes that version away.
_AWAY_ROW = "{0}tree = 0 AND ({0}kind = 'delete' OR {0}kind = 'put' AND {0}src IS NOT NULL)"
_GOING_AWAY = ("EXISTS (SELECT 1 FROM ops AS m WHERE m.target = s.target AND m.source = s.source "
               f"AND m.path = s.key AND {_AWAY_ROW.format('m.')})")
# The same for a version landed, not recorded (ops.landed, on the key's own row): a
# landed file deleted, its delete queued (counted when recorded), then made again
# counted that version a second time (review of stop 48). A put's src counts only when
# it came after the claim that landed (claimed_src: `mv a b` of a file whose put may be
# stored, a log rotated while it was sent): the src the landing put itself carried names
# where the bytes before the landed ones went, and the landed ones live at no other name
# (an exchanged name's put that may be stored, then written, was not counted).
_LANDED_GOING_AWAY = ("(tree = 0 AND (kind = 'delete' OR kind = 'put' AND src IS NOT NULL "
                      "AND src IS NOT claimed_src))")


def shipped_file(db: sqlite3.Connection, targets: Iterable[str], source: str, key: bytes, *,
                 renames: Callable[[str], bool] = lambda target: True,
                 above: Callable[[str], bool] = lambda target: True,
                 own_shipped: Callable[[str], bool] = lambda target: False,
                 own_landing: Callable[[str], bool] = lambda target: False,
                 landed: Callable[[str], bool] = lambda target: False) -> bool:
    """Whether one of `targets` holds the file `key`: shipped at that name or with a put or
    rename onto it in flight (LANDING), or so at an old name (mirrord.journal.old_names)
    that renames not done yet bring to `key` (a kept move of it queued, a rename not kept,
    a directory above it renamed, any chain of these) while `key` itself was not deleted
    since. The mass-change alarm's test for an overwrite (of a write, or of a rename onto
    `key`). Before, `key` alone was looked at: `mv f f.locked` then f.locked rewritten in
    place (ransomware's rename-then-encrypt) counted no overwrite while the rename was
    queued, nor did every file rewritten below a renamed directory until its move (copy
    by copy on S3) was acked.
    `renames(target)`: whether a rename or tree removal of the target may be pending (the
    journal's directory barriers, in memory); when not, a file's own old name is all there
    is to look at. `above(target)`: whether such a barrier may stand at a directory above
    `key` (when not, nothing above it is removed first: _taken_away_above is not asked).
    `own_shipped(target)`, `own_landing(target)`: what the target has shipped, or has
    landing, at `key` is a version the write destroyed nothing of (the file as the write
    left it, made harmlessly; a version it only extends; a put that reads the file after
    the write: mirrord.journal.first_copies): not looked at. `landed(target)`: a version
    landed, not recorded, at `key` (ops.landed: asked here) is one the write destroys
    (first_copies.landed; a dict lookup), unless a removal above takes it first.
    Cost: one statement of index searches (a primary-key search, the unique
    index and ops_file_src per target: 7 us for a new file on a 75,000-row journal), and
    while renames are pending one more per name followed back (old_names: 18 us)."""
    targets = tuple(targets)
    if not targets:
        return False
    # the targets whose version at `key` itself stays until the write replaces it: shipped
    # there, or landing
    at_key = tuple(t for t in targets if not (above(t) and _taken_away_above(db, t, source, key)))
    landed_at = tuple(t for t in at_key if landed(t))
    shipped_at = tuple(t for t in at_key if not own_shipped(t))
    landing_at = tuple(t for t in at_key if not own_landing(t))
    marks = ",".join("?" * len(targets))
    if db.execute(
            f"SELECT 1 FROM shipped AS s WHERE s.target IN ({','.join('?' * len(shipped_at))}) "
            f"AND s.source = ? AND s.key = ? AND NOT {_GOING_AWAY} "
            f"UNION ALL SELECT 1 FROM ops WHERE target IN ({marks}) AND source = ? "
            f"AND path = ? AND is_dir = 0 AND (kind = 'move' AND claimed = 0 "
            f"OR {LANDING} AND target IN ({','.join('?' * len(landing_at))})) "
            f"UNION ALL SELECT 1 FROM ops AS o WHERE o.target IN ({marks}) AND o.source = ? "
            f"AND {FILE_RENAMED_TO} AND {_SHIPPED_AT.format('path')} "
            f"UNION ALL SELECT 1 FROM ops WHERE target IN ({','.join('?' * len(landed_at))}) "
            f"AND source = ? AND path = ? AND landed != 0 AND NOT {_LANDED_GOING_AWAY} LIMIT 1",
            (*shipped_at, source, key, *targets, source, key, *landing_at, *targets, source, key,
             *landed_at, source, key)
    ).fetchone() is not None:
        return True
    for target in targets:
        olds = old_names(db, target, source, key) if renames(target) else ()
        if olds and not _deleted_at(db, target, source, key) and any(
                _held_at(db, target, source, old) for old in olds):
            return True
    return False


def _taken_away_above(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """A directory above `key` is removed on `target` before anything new lands below it:
    a tree removal's row at an ancestor that is no rename's end (kind 'delete', tree = 1,
    no src: `rm -rf d`, or d moved out of the source; held, queued or in flight; rows
    below wait for it: barriers). What `target` holds at `key` itself, shipped or landing,
    goes with it, counted by that removal (files_below_unremoved), so a write at `key`
    replaces nothing more: `rm -rf d` during a hold, then its files restored, counted
    each twice. A version a rename not done yet brings to `key` after the removal is not
    this one (shipped_file's old names).
    Only such a removal: a tree row that is a rename's end, or a directory made again
    over one (kind 'mkdir', tree = 1), may bring the version at `key` back (`mv d e; mv e
    d`, `mv d e; mkdir d; mv e/f d/f`: the old name is `key` itself, which old_names does
    not follow) and was counted by nothing: a breaker's rewrites there counted 0 for each
    file lost. Those count as before (`rm -rf d; mkdir d` then d/f rewritten: 2, the safe
    side). One index search per call."""
    above = list(_self_and_ancestors(key))[1:]
    if not above:
        return False
    return db.execute(f"SELECT 1 FROM ops WHERE target = ? AND source = ? AND path IN "
                      f"({','.join('?' * len(above))}) AND tree = 1 AND kind = 'delete' "
                      f"AND src IS NULL LIMIT 1", (target, source, *above)).fetchone() is not None


def _deleted_at(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """`key`'s own row is a delete: deleted since a rename brought it (counted then; `mv x
    y; rm y`, then a new y is no overwrite of x)."""
    return db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                      "AND kind = 'delete'", (target, source, key)).fetchone() is not None


def _held_at(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """`target` holds the file `key`: shipped, or a put or rename of it in flight."""
    return db.execute("SELECT 1 FROM shipped WHERE target = ? AND source = ? AND key = ? "
                      f"UNION ALL SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                      f"AND {LANDING} LIMIT 1", (target, source, key) * 2).fetchone() is not None


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


# The files renamed into the range of _BELOW from outside it by renames not kept as moves
# (SyncItem.moved_to): the old name's delete carries the new name in src (ops_file_src
# index) and the new name is a put still queued. The removal takes the file, which is
# shipped at the old name only. Not counted here: a new name that is a move (_renamed_in),
# a put in flight or acked (landing or shipped below), or a delete (the alarm counted it on
# its own: `mv x d/x.tmp; mv d/x.tmp d/x` then `rm d/x`, then `rm -rf d`).
_LEFT_FOR = (
    "SELECT COUNT(*) FROM ops AS o WHERE o.target = :target AND o.source = :source "
    "AND o.tree = 0 AND o.kind = 'delete' AND o.src > :lo AND o.src < :hi "
    f"AND NOT (o.path > :lo AND o.path < :hi) AND {_SHIPPED_AT.format('path')} "
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
    return _held_at(db, target, source, key) or _deleted_at(db, target, source, key)


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

