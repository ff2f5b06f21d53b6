"""The names under which a target may still hold what the source now has at a path: the
renames recorded and not done yet on that target, followed back from the new name.

A rename of a file or directory is a move row at the new name (src: the old name) until
the target does it; one that cannot be kept as a move is the old name's delete carrying
the new name in src (a file: tree = 0, ops_file_src index; a directory: a tree removal,
ops_tree_src index) with a put or mkdir and re-send at the new name. Until those rows
run, the target holds the bytes at the old name. The mass-change alarm asks this when it
counts what a rewrite or a removal at the new name destroys there (mirrord.journal
.held_files): `mv batch a/batch; mv a b; rm -rf b` takes batch's files, two renames
back, and `mv d e; mv e/f e/f.locked` then e/f.locked rewritten replaces d/f.
"""

from __future__ import annotations

import sqlite3

from mirrord.journal.barriers import _self_and_ancestors

# At most this many names are followed back from one path: each step is one statement of
# index searches, and a chain of pending renames longer than this is not expected (each
# rename of a name with work pending is recorded as a removal and a re-send, which ends
# the chain at the next one done).
MAX_NAMES = 16


# A row `o` that is a file's rename-source delete carrying the name bound to ? (its src),
# that name's own row a put or move, not deleted since (ops_file_src index).
FILE_RENAMED_TO = ("o.src = ? AND o.tree = 0 AND o.kind = 'delete' AND EXISTS (SELECT 1 FROM "
                   "ops AS n WHERE n.target = o.target AND n.source = o.source "
                   "AND n.path = o.src AND n.kind IN ('put', 'move'))")


def old_names(db: sqlite3.Connection, target: str, source: str, path: bytes) -> list[bytes]:
    """The names (source-relative, bytes), other than `path`, that `target` may still hold
    `path`'s file or directory at, nearest first; [] when no rename not done yet leads to
    it. Each step back takes one of:
    - the move row at the name or at a directory above it (its src, with the rest of the
      name below);
    - a file's delete (tree = 0) carrying the name in src, when the name's own row is a
      put or a move (not deleted since: `mv x y; rm y` leaves nothing of x at y);
    - a directory's tree removal or mkdir carrying the name, or a directory above it, in
      src;
    - a directory above the name (or the name) that is itself such an old name, still
      removed (not made again: a directory made again there holds new files): the other
      old names carrying the same new name, MAX_NAMES of them at most. A chain of directory renames not kept points
      every old name's removal at the newest name, and a rename not kept overwrites the
      move row that said where the middle one came from: `mv batch d1; mv d1/f d1/f.2;
      mv d1 d2` leaves d1 and batch both carrying d2, and d2/f.2 leads through d1/f.2 and
      d1/f to batch/f, the name shipped (0 counted for 12 rewritten, a second breaker).
    At most MAX_NAMES names. SQLite errors propagate."""
    seen, out, todo = {path}, [], [path]
    while todo and len(out) < MAX_NAMES:
        name = todo.pop(0)
        for old in _one_step(db, target, source, name):
            if old not in seen and len(out) < MAX_NAMES:
                seen.add(old)
                out.append(old)
                todo.append(old)
    return out


def _one_step(db: sqlite3.Connection, target: str, source: str, name: bytes) -> list[bytes]:
    """The names one rename back from `name` (old_names' four kinds)."""
    dirs = list(_self_and_ancestors(name))
    marks = ",".join("?" * len(dirs))
    rows = db.execute(
        f"SELECT path, src FROM ops WHERE target = ? AND source = ? AND path IN ({marks}) "
        f"AND kind = 'move' AND src IS NOT NULL AND (is_dir = 1 OR path = ?) "
        f"UNION ALL SELECT src, path FROM ops WHERE target = ? AND source = ? "
        f"AND src IN ({marks}) AND tree = 1 AND kind IN ('delete', 'mkdir') "
        f"UNION ALL SELECT o.src, o.path FROM ops AS o WHERE o.target = ? AND o.source = ? "
        f"AND {FILE_RENAMED_TO} "
        "UNION ALL SELECT * FROM (SELECT t.path, s.path FROM ops AS t JOIN ops AS s "
        "ON s.target = t.target AND s.source = t.source AND s.src = t.src AND s.tree = 1 "
        "AND s.kind IN ('delete', 'mkdir') AND s.path != t.path "
        f"WHERE t.target = ? AND t.source = ? AND t.path IN ({marks}) AND t.tree = 1 "
        f"AND t.kind = 'delete' LIMIT {MAX_NAMES})",
        (target, source, *dirs, name, target, source, *dirs, target, source, name,
         target, source, *dirs)).fetchall()
    return [bytes(old) + name[len(new):] for new, old in rows]
