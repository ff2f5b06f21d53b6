"""The journal's enqueue side: changes and renames in, coalesced into one row per path.

A later change to a path updates its row (seq moves on) instead of adding one;
an 'attr' change never weakens a pending op (renames: mirrord.journal.enqueue_moves,
which records through _upsert here). Rows below a pending directory barrier wait for it, and
a tree removal makes the rows below it queued before it wait for it too.
Mixed into Journal (mirrord.journal.writer), whose db, routes, clock and
barriers it uses; only the daemon's main thread calls it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable

from mirrord.journal.barriers import _Barriers, barrier_paths
from mirrord.journal.holds import PARKED, is_held
from mirrord.journal.proposals import InFlightProposals, Seen
from mirrord.journal.records import Change, _b, _prefix_upper

# how far a chain of wait_for links is followed before a link that could close it is not
# made (_waits_on): each step is a primary-key read
WAIT_CHAIN_LIMIT = 1000


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
                    if ch.kind == "attr" and ch.is_dir:
                        self.retry_below(target, ch.source, path)
                        if not path:   # the source root's own mode, owner or ACL: never
                            continue   # mirrored (each target's root is its own): no row
                    if ch.repair and self._in_flight_kind(target, ch.source, path) not in (None, "attr"):
                        continue
                    if ch.repair and ch.kind == "attr" and not ch.is_dir:
                        # a comparison found the target's mode (or mtime) other than the
                        # source's: what `shipped` says it holds is wrong, and the shipper
                        # would skip an attr that matches it (ship_rules.meta_only). NULL:
                        # not known (a helper's trial: `chmod 600` on the mirror, every
                        # pass said changed 1 and in sync, the mode stayed)
                        self.db.execute("UPDATE shipped SET mode = NULL WHERE target = ? AND "
                                        "source = ? AND key = ?", (target, ch.source, path))
                    seen = ch.seen if ch.kind in ("put", "attr") and not ch.tree else None
                    self._upsert(target, ch.source, path, ch.kind, tree=ch.tree,
                                 is_dir=ch.tree or ch.kind == "mkdir", size=ch.size,
                                 when=ch.time or self.clock(), delay=ch.delay,
                                 seen=seen, notes=notes, proposed=ch.proposed or ch.repair)
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
        """True when `start` (transitively) waits for `row`, so linking row -> start would
        cycle; True too when `start`'s chain is longer than WAIT_CHAIN_LIMIT (not followed
        to its end, it may reach `row`): the caller then does not link. Answered False
        there, a rotation of 1,100 numbered files (`mv f1100 f1101; ...; mv f1101 f1`)
        made a cycle of 1,101 rows, never claimed (a review, helper-146)."""
        chain, whole = self._wait_chain(start)
        return row in chain or not whole

    def _wait_chain(self, start: int) -> tuple[set[int], bool]:
        """`start` and the rows it waits for through wait_for links, and whether the chain
        was followed to its end (False: longer than WAIT_CHAIN_LIMIT rows, or a cycle)."""
        seen: set[int] = set()
        cur: int | None = start
        while cur is not None:
            if cur in seen or len(seen) >= WAIT_CHAIN_LIMIT:
                return seen, False
            seen.add(cur)
            found = self.db.execute("SELECT wait_for FROM ops WHERE id = ?", (cur,)).fetchone()
            cur = found[0] if found else None
        return seen, True

    def _upsert(self, target: str, source: str, path: bytes, kind: str, *, tree: bool,
                is_dir: bool, size: int, when: float, delay: float = 0.0,
                src: bytes | None = None, wait_for: int | None = None,
                seen: Seen | None = None, notes: list | None = None,
                proposed: bool = False) -> int:
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
             claimer, landed) = self.db.execute(
                "SELECT id, seq, wait_for, tree, kind, src, is_dir, size, claimed, claimer, landed "
                "FROM ops WHERE target = ? AND source = ? AND path = ?",
                (target, source, path)).fetchone()
            tree_after = tree or bool(old_tree)  # a pending tree removal stays (MAX(tree, ?))
            self._proposals.forget(oid)   # whatever changed now is sent, shipped or not
            if seen is not None and notes is not None and self._proposals.unchanged_put_in_flight(
                    seq, claimed, old_kind, bool(old_tree), claimer):
                notes.append((oid, path, seq + 1, seen))
            # a put none of which was sent: the target still holds the bytes its src names
            unsent_put = old_kind == "put" and not old_tree and not claimed and not landed
            if (kind == "attr" and old_kind != "attr") or (
                    kind == "mkdir" and not tree and old_kind == "move" and old_dir
                    and not claimed):
                # a pending put / move / delete / mkdir is stronger and state-based anyway: it
                # ships the mode and mtime too. seq still moves on, so an op of the row that
                # is in flight (it may have looked before the chmod) runs once more.
                # A mkdir over a directory's queued move (a comparison that saw the new name
                # before the move reached the target) is one too: made a mkdir, the row lost
                # what the move carries, and the move's source end then removed the old
                # name whole, keeping as 'directory removed' what lives on at the new one
                # (tests/integration/test_dir_rotation_keeps_nothing.py)
                kind, src, is_dir, size = old_kind, old_src, bool(old_dir), old_size
            elif kind == "put" and src is None and old_kind == "delete" and not old_tree:
                src = self._went_to(path, old_src, waits)
            elif kind == "put" and src is None and unsent_put and old_src is not None:
                # where the bytes the target holds at `path` went outlives another put over
                # it while none of it was sent. A start or scheduled pass that compared
                # mid-exchange (its put first, the live write after it) cleared it, and both
                # names stayed kept as 'overwritten'
                # (tests/unit/test_rename_fallback_keeps_nothing.py, a comparison during ...)
                src = old_src
            elif src is None and kind in ("delete", "mkdir") and old_tree and old_kind != "move":
                src = old_src   # a tree removal's new name (enqueue_move) outlives a mkdir over it
            elif src is None and kind == "delete" and proposed and (
                    old_kind == "delete" or unsent_put):   # a tree row's: the branch above
                # a comparison's delete keeps the new name (Change.proposed), also over a
                # put not sent that carries it (`mv a t; mv c a; mv t c` compared after the
                # second rename: c's put, a fallback's, names a)
                src = old_src
            if kind != "move" and old_kind == "move" and old_dir and claimed and old_src:
                self._hand_on_new_name(target, source, path, bytes(old_src), oid)
            next_try = self._due(source, kind, tree_after, when, delay)
            barrier = self._covering_barrier(target, source, path, oid)
            if wait_for is not None and not self._waits_on(wait_for, oid):
                # a move's source end (its row was in flight): the move. Not when the move
                # already waits, through any chain, for this row: the two then waited for
                # each other and neither was ever claimed, the target wrong for good and
                # no reconcile able to help (a breaker: `echo $i > a; mv a b; mv b a` 30
                # times, tests/unit/test_journal_wait_cycles.py). Unlinked, the delete may
                # run first, and the move then finds no source on the target and sends
                # the file whole (ship_moves): exact either way
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

    def _hand_on_new_name(self, target: str, source: str, path: bytes, old: bytes,
                          oid: int) -> None:
        """Row `oid` at `path` was the move of the directory `old` to it, in flight, and is
        made something else now (a comparison's mkdir of `path`, read after the rename and
        before the move's ack). Its source end, the tree removal of `old` waiting for it,
        found its new name through that row (_bound_for, moved_trees); it carries `path`
        itself now, as a fallback's removal does. Else `mv d1 x; mv d2 d1; mv x d2` with the
        move in flight and the start's catch-up in between kept all of d1 as 'directory
        removed' while its bytes lived on at d2
        (tests/integration/test_exchange_then_proposals_keep_nothing.py). Only a hint:
        moved_trees checks the target before it drops anything."""
        self.db.execute(
            "UPDATE ops SET src = ? WHERE target = ? AND source = ? AND path = ? AND wait_for = ? "
            "AND tree = 1 AND kind IN ('delete', 'mkdir') AND src IS NULL",
            (path, target, source, old, oid))

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
        `oid` waits for (transitively) is left alone: linking it would be a cycle; and all
        are when that chain is too long to follow (_waits_on): run before the removal, a row
        may be kept once more, never lost."""
        ahead, whole = self._wait_chain(oid)   # oid itself is not below `path`: harmless
        if not whole:
            return
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
