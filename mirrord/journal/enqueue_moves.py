"""The journal's enqueue side for renames: a rename in, recorded as a move row plus a
delete row that waits for it, or, with pending work in the way, as a delete and a
re-send (a directory's: a tree removal, a mkdir and its rows in flight run again).
Split out of mirrord.journal.enqueue, whose _upsert it records through; mixed into
Journal (mirrord.journal.writer); only the daemon's main thread calls it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

from mirrord.journal.records import _b, _prefix_upper


class MoveEnqueueMixin:
    """Journal's rename methods; Journal provides db, clock, transaction(), targets_of,
    _upsert, _covering_barrier and _waits_on (EnqueueMixin)."""

    db: sqlite3.Connection
    clock: Callable[[], float]
    _upsert: Callable[..., int]
    _covering_barrier: Callable[..., int | None]
    _waits_on: Callable[[int, int], bool]
    targets_of: Callable[..., tuple[str, ...]]

    def _pending_at_or_below(self, target: str, source: str, path: bytes, is_dir: bool) -> bool:
        """Whether a move at `path` cannot be kept as a move: a row at the path or below it,
        or a directory barrier over it.

        For a file, a row in flight (claimed) does not count: the move is recorded and
        claim() holds it back until that op is acked; the ack records what it shipped, which
        the move then checks against the source (Op.src_shipped), so the result is exact
        whatever the op did. Counting it turned a file renamed right after it reached the
        target, before its ack was recorded, into a delete and a second send (found by
        tests/e2e/test_operations.py under load, with either watcher backend). A directory
        has no such check for what lies below it, so any row there still counts."""
        in_flight_ok = "" if is_dir else " AND claimed = 0"
        if self.db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ?"
                           + in_flight_ok, (target, source, path)).fetchone():
            return True
        if is_dir and self.db.execute(
                "SELECT 1 FROM ops WHERE target = ? AND source = ? AND path > ? AND path < ? LIMIT 1",
                (target, source, path + b"/", _prefix_upper(path))).fetchone():
            return True
        return self._covering_barrier(target, source, path, None) is not None

    def enqueue_move(self, source: str, src: str, dst: str, *, is_dir: bool,
                     when: float | None = None, targets: tuple[str, ...] | None = None,
                     as_move: bool = True) -> list[str]:
        """Record a rename inside the tree. Returns the targets on which it could not be kept
        as a move (pending work in the way, or `as_move` False: the caller knows the targets'
        copy cannot be reused, e.g. excludes that depend on the path): for those, src is
        deleted and dst must be re-sent — the caller scans dst when it is a directory."""
        when = when or self.clock()
        bsrc, bdst = _b(src), _b(dst)
        fallback: list[str] = []
        with self.transaction():
            for target in self.targets_of(targets, source):
                busy = (not as_move or self._pending_at_or_below(target, source, bsrc, is_dir)
                        or self._pending_at_or_below(target, source, bdst, is_dir))
                self._bound_for(target, source, bsrc, bdst, is_dir)
                if busy:
                    fallback.append(target)
                    if not is_dir:
                        self._file_fallback(target, source, bsrc, bdst, when)
                        continue
                    # carries the new name: mirrord.trash.moved_trees drops what it keeps
                    # of the files the re-send puts back there (a rotation through a temp name)
                    self._upsert(target, source, bsrc, "delete", tree=True, is_dir=True,
                                 size=0, when=when, src=bdst)
                    self._upsert(target, source, bdst, "mkdir", tree=False, is_dir=True,
                                 size=0, when=when)
                    self._rerun_in_flight(target, source, bdst, when)
                    continue
                mid = self._upsert(target, source, bdst, "move", tree=False, is_dir=is_dir,
                                   size=0, when=when, src=bsrc)
                # a file's source end carries the new name too: a move the shipper cannot
                # make (ship_moves: the target's copy is not what dst holds, e.g. a chmod
                # in flight at the rename) sends dst whole, and this delete then keeps
                # nothing where dst holds the very bytes (keeper.lives_on)
                self._upsert(target, source, bsrc, "delete", tree=is_dir, is_dir=is_dir, size=0,
                             when=when, wait_for=mid, src=None if is_dir else bdst)
        return fallback

    def _file_fallback(self, target: str, source: str, bsrc: bytes, bdst: bytes,
                       when: float) -> None:
        """A file's rename that cannot be kept as a move: a delete of `bsrc` and a put of
        `bdst`. The delete carries the new name (its row's src: SyncItem.moved_to) and
        waits for the put (wait_for), so that when it runs the target normally holds the
        file's bytes under the new name and keeper.lives_on finds nothing to keep: before,
        every target kept the old name as 'deleted' (`mirrord trash` listed a rename,
        `undelete` made a duplicate). Waiting costs no safety: a delete that runs without
        the put done (a cycle the wait would make, the row waiting for something else
        already) finds the new name not holding the version and keeps, as before. A put
        that fails permanently (a name the target cannot hold) lets the delete go at once
        (claims._failed), which then keeps."""
        # a directory is bound for the file's old name (its move or mkdir pending there): a
        # directory exchanged with a file or symlink, read by inotify as two renames, the
        # directory's first. A plain delete over that row made the target's copy a bare
        # mkdir, the directory's contents never sent (a breaker: every run). A tree delete
        # clears the name and, the source holding a directory there, re-sends what lies
        # below it (ship_rules.outcome: rescan)
        bound = self.db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                                "AND is_dir = 1 AND kind IN ('move', 'mkdir')",
                                (target, source, bsrc)).fetchone() is not None
        # the put first: recorded over a's pending delete while b's row is still the move
        # from a, it learns where a's bytes went (_went_to: `mv --exchange a b`)
        pid = self._upsert(target, source, bdst, "put", tree=False, is_dir=False, size=0,
                           when=when)
        did = self._upsert(target, source, bsrc, "delete", tree=bound, is_dir=bound, size=0,
                           when=when, src=bdst)
        if not self._waits_on(pid, did):
            self.db.execute("UPDATE ops SET wait_for = ? WHERE id = ? AND wait_for IS NULL",
                            (pid, did))

    def _bound_for(self, target: str, source: str, bsrc: bytes, bdst: bytes,
                   is_dir: bool) -> None:
        """A file (a directory: `is_dir`, its tree removals) renamed from `bsrc` to `bdst`:
        the deletes whose bytes were bound for `bsrc` carry `bdst` now. In a chain
        `a -> b -> c` faster than the first move ran, b's row is the move from a, and a's
        delete (its source end) waits for it; or a's delete is an earlier fallback's,
        carrying b. Either way a's bytes end at c: if the move a -> b is not made on the
        target, c is sent whole and a's delete, run after b's row and so after c's, finds
        them there (keeper.lives_on; a tree's: trash.moved_trees); if it is made, a is gone
        and nothing is kept. Called before the rename's own rows are recorded."""
        if is_dir:   # tree rows naming bsrc need no wait link to it (ops_tree_src index)
            self.db.execute("UPDATE ops SET src = ? WHERE target = ? AND source = ? AND tree = 1 "
                            "AND src = ? AND kind IN ('delete', 'mkdir') AND path != ?",
                            (bdst, target, source, bsrc, bdst))
        row = self.db.execute("SELECT id, kind, src FROM ops WHERE target = ? AND source = ? "
                              "AND path = ?", (target, source, bsrc)).fetchone()
        if row is None:
            return
        # both kinds of delete wait for bsrc's row (ops_wait index: no scan of the backlog),
        # and a longer chain's earlier deletes wait for those (a -> b -> c -> d: a's for b's)
        moved_from = bytes(row[2]) if row[1] == "move" and row[2] is not None else None
        waited = [row[0]]
        for _ in range(1000):   # a chain as long as the wait links' own bound (WAIT_CHAIN_LIMIT)
            found = [rid for (rid,) in self.db.execute(
                f"SELECT id FROM ops WHERE wait_for IN ({','.join('?' * len(waited))}) "
                "AND kind IN ('delete', ?) AND tree = ? AND (src = ? OR path = ?) AND path != ?",
                (*waited, "mkdir" if is_dir else "delete", int(is_dir), bsrc, moved_from, bdst))]
            if not found:
                return
            self.db.executemany("UPDATE ops SET src = ? WHERE id = ?",
                                [(bdst, rid) for rid in found])
            waited, moved_from = found[:500], None

    def _rerun_in_flight(self, target: str, source: str, path: bytes, when: float) -> None:
        """Every row in flight below `path`, a directory that another one just took the
        place of, runs once more after its ack (its seq moves on), a directory's as a tree
        op (cleared on the target, made, its contents re-sent).

        The subtree re-send after a move that could not be kept compares the source with
        `shipped`, which does not hold yet what these rows are sending: a row that looked
        at the source before the rename shipped the old directory's file or subdirectory,
        and its ack then recorded it as shipped where the source has something else or
        nothing, for good (`mv --exchange D1 D2` while D2/sub was being sent left D2/sub
        and D2/sub/deep.txt on the targets: tests/e2e/test_exchange_in_flight.py).
        Run again, each row does what the source holds now."""
        rows = self.db.execute(
            "SELECT path, kind, src, is_dir, size FROM ops WHERE target = ? AND source = ? "
            "AND claimed != 0 AND path > ? AND path < ?",
            (target, source, path + b"/", _prefix_upper(path))).fetchall()
        for row_path, kind, src, is_dir, size in rows:
            self._upsert(target, source, row_path, kind, tree=bool(is_dir) and kind != "move",
                         is_dir=bool(is_dir), size=size, when=when, src=src)
