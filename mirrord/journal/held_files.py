"""What a target holds as the mass-change alarm counts it: whether a write is an
overwrite (shipped_file); how many files a tree removal takes away beyond the deletes
already recorded is mirrord.journal.removed_files'. Read-only lookups on the journal's database,
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


# A file an op in flight is putting or renaming onto a target: the worker may have stored
# it already, and `shipped` learns of it only at the ack (parameters: target, source).
# The alarm's lookups take it as held by the target: a file put by the start's catch-up,
# found on the target by a test that then ran `rm -rf` before the ack, was left out of
# the tree removal's count, and the alarm never saw every delete (a loaded CI run of
# tests/e2e/test_alarm_daemon.py).
LANDING = "claimed != 0 AND is_dir = 0 AND kind IN ('put', 'move')"

# A `shipped` row of the op row `o`'s target and source at its column {} ("path", "src").
SHIPPED_AT = ("EXISTS (SELECT 1 FROM shipped AS s WHERE s.target = o.target "
              "AND s.source = o.source AND s.key = o.{})")


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
            f"AND {FILE_RENAMED_TO} AND {SHIPPED_AT.format('path')} "
            f"UNION ALL SELECT 1 FROM ops WHERE target IN ({','.join('?' * len(landed_at))}) "
            f"AND source = ? AND path = ? AND landed != 0 AND NOT {_LANDED_GOING_AWAY} LIMIT 1",
            (*shipped_at, source, key, *targets, source, key, *landing_at, *targets, source, key,
             *landed_at, source, key)
    ).fetchone() is not None:
        return True
    for target in targets:
        olds = old_names(db, target, source, key) if renames(target) else ()
        if olds and not deleted_at(db, target, source, key) and any(
                held_at(db, target, source, old) for old in olds):
            return True
    return False


# At most this many keys go into one statement of keys_named (SQLite's bound parameters:
# 32,766 since 3.32; three uses of each key stay far below).
_NAMED_CHUNK = 300


def keys_named(db: sqlite3.Connection, targets: Iterable[str], source: str,
               keys: Iterable[bytes]) -> set[bytes]:
    """Of `keys` (source-relative, bytes), those a row of `targets` names: a `shipped` row
    at it, an op row at it (queued, in flight or landed), or a file's delete moved from it
    (FILE_RENAMED_TO's src). shipped_file can be True only for these, or through the
    renames it follows back when renames are pending (old_names): the caller asks those
    targets' barriers first. One statement per _NAMED_CHUNK keys, each an index search of
    the primary key, the ops unique index and ops_file_src."""
    targets = tuple(targets)
    keys = list(dict.fromkeys(keys))
    named: set[bytes] = set()
    if not targets:
        return named
    marks = ",".join("?" * len(targets))
    for i in range(0, len(keys), _NAMED_CHUNK):
        chunk = keys[i:i + _NAMED_CHUNK]
        k = ",".join("?" * len(chunk))
        named.update(bytes(row[0]) for row in db.execute(
            f"SELECT key FROM shipped WHERE target IN ({marks}) AND source = ? AND key IN ({k}) "
            f"UNION SELECT path FROM ops WHERE target IN ({marks}) AND source = ? "
            f"AND path IN ({k}) "
            f"UNION SELECT src FROM ops WHERE target IN ({marks}) AND source = ? AND tree = 0 "
            f"AND kind = 'delete' AND src IN ({k})",
            (*targets, source, *chunk) * 3))
    return named


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


def deleted_at(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """`key`'s own row is a delete: deleted since a rename brought it (counted then; `mv x
    y; rm y`, then a new y is no overwrite of x)."""
    return db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                      "AND kind = 'delete'", (target, source, key)).fetchone() is not None


def held_at(db: sqlite3.Connection, target: str, source: str, key: bytes) -> bool:
    """`target` holds the file `key`: shipped, or a put or rename of it in flight."""
    return db.execute("SELECT 1 FROM shipped WHERE target = ? AND source = ? AND key = ? "
                      f"UNION ALL SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                      f"AND {LANDING} LIMIT 1", (target, source, key) * 2).fetchone() is not None
