"""The journal's enqueue side: changes and renames in, coalesced into one row per path.

A later change to a path updates its row (seq moves on) instead of adding one;
an 'attr' change never weakens a pending op. A rename becomes a move row plus a
delete row that waits for it (wait_for), or, with pending work in the way, a
delete and a re-send. Rows below a pending directory barrier wait for it, and
a tree removal makes the rows below it queued before it wait for it too.
Mixed into Journal (mirrord.journal.writer), whose db, routes, clock and
barriers it uses; only the daemon's main thread calls it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable, Iterator

from mirrord.journal.barriers import _Barriers, barrier_paths
from mirrord.journal.holds import PARKED, is_held
from mirrord.journal.proposals import InFlightProposals, Seen
from mirrord.journal.records import Change, _b, _prefix_upper


class EnqueueMixin:
    """Journal's enqueue methods; Journal provides db, routes, clock, _barriers, transaction()."""

    db: sqlite3.Connection
    routes: dict[str, tuple[str, ...]]
    clock: Callable[[], float]
    _barriers: _Barriers
    _proposals: InFlightProposals

    def targets_of(self, change_targets: tuple[str, ...] | None, source: str) -> tuple[str, ...]:
        routed = self.routes.get(source, ())
        if change_targets is None:
            return routed
        return tuple(t for t in change_targets if t in routed)

    def enqueue(self, changes: Iterable[Change]) -> int:
        """Record changes durably (one transaction); returns how many rows were touched."""
        n = 0
        notes = []   # mirrord.journal.proposals, kept only once the transaction commits
        with self.transaction():
            for ch in changes:
                for target in self.targets_of(ch.targets, ch.source):
                    path = _b(ch.path)
                    if ch.repair and self._in_flight_kind(target, ch.source, path) not in (None, "attr"):
                        continue
                    seen = ch.seen if ch.kind in ("put", "attr") and not ch.tree else None
                    self._upsert(target, ch.source, path, ch.kind, tree=ch.tree,
                                 is_dir=ch.tree or ch.kind == "mkdir", size=ch.size,
                                 when=ch.time or self.clock(), delay=ch.delay,
                                 seen=seen, notes=notes)
                    n += 1
        for note in notes:
            self._proposals.note(*note)
        return n

    def _in_flight_kind(self, target: str, source: str, path: bytes) -> str | None:
        """The kind of the row at `path` when an op of it is in flight (claimed), else None.
        A row waiting to run is not skipped: recording over it costs no second send, and it
        takes a row out of a failure's backoff (a reconcile re-queues the held backlog at
        once: tests/reliability/test_targets.py, the bucket deleted under the daemon)."""
        row = self.db.execute("SELECT kind FROM ops WHERE target = ? AND source = ? AND path = ? "
                              "AND claimed != 0", (target, source, path)).fetchone()
        return row[0] if row else None

    def _covering_barrier(self, target: str, source: str, path: bytes, own: int | None) -> int | None:
        return self._barriers.covering(target, source, path, own)

    def _waits_on(self, start: int, row: int) -> bool:
        """True when `start` (transitively) waits for `row`: linking row -> start would cycle."""
        return row in self._wait_chain(start)

    def _wait_chain(self, start: int) -> Iterator[int]:
        """`start`, then the row it waits for, and so on (wait_for links), at most 1,000."""
        cur: int | None = start
        for _ in range(1000):
            if cur is None:
                return
            yield cur
            found = self.db.execute("SELECT wait_for FROM ops WHERE id = ?", (cur,)).fetchone()
            cur = found[0] if found else None

    def _upsert(self, target: str, source: str, path: bytes, kind: str, *, tree: bool,
                is_dir: bool, size: int, when: float, delay: float = 0.0,
                src: bytes | None = None, wait_for: int | None = None,
                seen: Seen | None = None, notes: list | None = None) -> int:
        # A new path (most of a burst) is one INSERT; a path with a row already (the INSERT
        # did nothing) is read and coalesced into it. `seen` (a catch-up's look at a file)
        # over a put this process has in flight appends its note to `notes`, which the
        # caller keeps once its transaction commits (mirrord.journal.proposals).
        barrier = self._covering_barrier(target, source, path, None)
        cur = self.db.execute(
            "INSERT INTO ops (target, source, path, kind, src, is_dir, tree, tree_seq, seq, "
            "wait_for, next_try, first_seen, event_time, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) "
            "ON CONFLICT (target, source, path) DO NOTHING",
            (target, source, path, kind, src, int(is_dir), int(tree), 1 if tree else 0,
             wait_for if wait_for is not None else barrier,
             self._due(source, kind, tree, when, delay), when, when, size))
        tree_after = tree
        if cur.rowcount:
            oid = cur.lastrowid
            self._proposals.forget(oid)   # an id used again: nothing of the old row applies
        else:
            (oid, seq, waits, old_tree, old_kind, old_src, old_dir, old_size, claimed,
             claimer) = self.db.execute(
                "SELECT id, seq, wait_for, tree, kind, src, is_dir, size, claimed, claimer "
                "FROM ops WHERE target = ? AND source = ? AND path = ?",
                (target, source, path)).fetchone()
            tree_after = tree or bool(old_tree)  # a pending tree removal stays (MAX(tree, ?))
            self._proposals.forget(oid)   # whatever changed now is sent, shipped or not
            if seen is not None and notes is not None and self._proposals.unchanged_put_in_flight(
                    seq, claimed, old_kind, bool(old_tree), claimer):
                notes.append((oid, path, seq + 1, seen))
            if kind == "attr" and old_kind != "attr":
                # a pending put / move / delete / mkdir is stronger and state-based anyway: it
                # ships the mode and mtime too. seq still moves on, so an op of the row that
                # is in flight (it may have looked before the chmod) runs once more.
                kind, src, is_dir, size = old_kind, old_src, bool(old_dir), old_size
            elif kind == "put" and src is None and old_kind == "delete" and not old_tree:
                src = self._went_to(path, old_src, waits)
            elif src is None and kind in ("delete", "mkdir") and old_tree and old_kind != "move":
                src = old_src   # a tree removal's new name (enqueue_move) outlives a mkdir over it
            next_try = self._due(source, kind, tree_after, when, delay)
            barrier = self._covering_barrier(target, source, path, oid)
            if wait_for is not None:   # a move's source end (its row was in flight): the move
                waits = wait_for
            elif barrier is not None and barrier > oid and waits is None and not self._waits_on(barrier, oid):
                waits = barrier
            self.db.execute(
                "UPDATE ops SET kind = ?, src = ?, is_dir = ?, tree = MAX(tree, ?), "
                "tree_seq = CASE WHEN ? THEN seq + 1 ELSE tree_seq END, seq = seq + 1, "
                "wait_for = ?, attempts = 0, busy = 0, next_try = ?, event_time = ?, size = ? WHERE id = ?",
                (kind, src, int(is_dir), int(tree), int(tree), waits, next_try, when, size, oid))
        # barriers.py: why a tree put is one, and a file move over its old name
        paths = barrier_paths(path, src, kind=kind, is_dir=is_dir, tree=tree_after)
        if paths:
            self._barriers.set(oid, target, source, paths)
            if tree:
                self._wait_below(target, source, path, oid)
        else:
            self._barriers.drop(oid)
        return oid

    def _went_to(self, path: bytes, old_src: bytes | None, waits: int | None) -> bytes | None:
        """Where the bytes the target holds at `path` went, for a put recorded over the
        pending delete of the file `path` (the row's src, SyncItem.moved_to): the new name
        of the move that delete is the source end of (its wait_for row: a move from
        `path`), else the name that delete carried (a rename's fallback). An exchange
        (renameat2 RENAME_EXCHANGE, `mv --exchange a b`) arrives so: a move a -> b, then
        a put of a (fanotify) or a rename back that cannot be a move (inotify), and the
        put of a overwrites on the target the bytes now at b. Only a hint:
        mirrord.trash.swaps checks the target before it drops anything."""
        if waits is not None:
            row = self.db.execute("SELECT path, kind, src FROM ops WHERE id = ?",
                                  (waits,)).fetchone()
            if row is not None and row[1] == "move" and row[2] is not None and bytes(row[2]) == path:
                return bytes(row[0])
        return None if old_src is None or bytes(old_src) == path else bytes(old_src)

    def _wait_below(self, target: str, source: str, path: bytes, oid: int) -> None:
        """Rows below `path` queued before its tree removal (row `oid`) wait for it, as rows
        queued after it do (their wait_for; those waiting for something else keep that).

        An op is state-based: it ships what the source holds when its worker looks, which
        may be what came after the removal (`rm d/x; rmdir d; mkdir d; echo > d/x`: the
        delete of d/x, queued first and claimed first, sent the NEW d/x ahead of d's tree
        removal, which then kept it with its directory as 'dir-removed'; the row's next op
        sent it again and its later removal kept it a second time: issue 17's dir flip,
        tests/integration/test_tree_removal_waits_below.py). Run after the removal, such an
        op finds the target cleared below `path` and does what the source needs now. A row
        `oid` waits for (transitively) is left alone: linking it would be a cycle."""
        ahead = set(self._wait_chain(oid))   # oid itself is not below `path`: harmless
        ids = [rid for (rid,) in self.db.execute(
            "SELECT id FROM ops WHERE target = ? AND source = ? AND path > ? AND path < ? "
            "AND wait_for IS NULL", (target, source, path + b"/", _prefix_upper(path)))
            if rid not in ahead]
        for i in range(0, len(ids), 500):   # SQLite's host-parameter limit: 999 on older builds
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            self.db.execute(f"UPDATE ops SET wait_for = ? WHERE id IN ({marks})", (oid, *chunk))

    def _due(self, source: str, kind: str, tree: bool, when: float, delay: float) -> float:
        """A row's next_try: now (0), after its delay, or PARKED while it is a delete of a
        source whose deletes are held after a mass-change alarm (holds.py: out of the way
        of claim()'s index scan; read in this transaction, so a concurrent resume-deletes
        either comes first or un-parks the row itself)."""
        if (kind == "delete" or tree) and is_held(self.db, source):
            return PARKED
        return when + delay if delay else 0

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
        for _ in range(1000):   # a chain as long as the wait links' own bound (_wait_chain)
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
