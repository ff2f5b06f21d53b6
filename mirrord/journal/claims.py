"""The journal's shipping side: claim ready rows for workers, ack what they did.

claim() marks a row in flight with its seq; ack() deletes it only when its seq
is unchanged, so a change that arrived while the op was in flight is kept and
runs next. A failure backs off (mirrord.journal.failures). The deletes of
a source on hold (mirrord.journal.holds) are not claimed at all until resumed.
Who holds rows in flight, and releasing a dead process's claims: mirrord.journal.
claim_owners. Mixed into Journal (mirrord.journal.writer); only the daemon's main thread
calls it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable

from mirrord.journal.barriers import (InFlight, _Barriers, barrier_paths, moved_from,
                                      overlaps_inflight)
from mirrord.journal.failures import RetryMixin
from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.key_overlaps import KeysInFlight
from mirrord.journal.holds import HELD_SQL
from mirrord.journal.read import recorded_below, shipped_meta
from mirrord.journal.records import Op, Outcome, _b, _prefix_upper, _s
from mirrord.journal.shipped import record_shipped

# An op a worker may take now (parameters: target, now): what claim() hands out and
# count_ready() counts, so the two can never disagree. Served by the ops_ready index;
# the deletes of a source on hold (a mass-change alarm: holds.py) are left where they are.
_READY = f"target = ? AND claimed = 0 AND next_try <= ? AND wait_for IS NULL AND {HELD_SQL}"


class ClaimAckMixin(RetryMixin):
    """Journal's claim / ack methods; Journal provides db, clock, _barriers, transaction()."""

    db: sqlite3.Connection
    first_copies: FirstCopies
    clock: Callable[[], float]
    _barriers: _Barriers
    claimer: str   # this process (mirrord.claimer.me()): recorded on every row it claims
    _upsert: Callable[..., int]          # EnqueueMixin's (journal/enqueue.py): _clear_below
    _wait_below: Callable[..., None]
    _seen_version: int   # PRAGMA data_version when the barriers were last loaded (writer.py)

    def count_ready(self, target: str, limit: int, *, now: float | None = None) -> int:
        """How many ops claim() would hand out for `target` now, counting at most `limit`."""
        now = self.clock() if now is None else now
        return self.db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM ops WHERE {_READY} LIMIT ?)",
                               (target, now, limit)).fetchone()[0]

    def claim(self, target: str, limit: int, *, now: float | None = None,
              directories: bool = True) -> list[Op]:
        """Up to `limit` ready ops for one target, marked in flight. `directories`: the
        target has them (Features.directories): then no op is handed out while another at
        one of its path's ancestors or below it is in flight (barriers.InFlight says why);
        without them, only while one that may write or delete the object at one of its
        path's ancestors, or (one that may write its own) one below it, is
        (key_overlaps.KeysInFlight: SeaweedFS lost a put beside either)."""
        now = self.clock() if now is None else now
        rows, inflight = self._claimable(target, now, limit, directories)
        ops: list[Op] = []
        if not rows:   # nothing ready: no empty write transaction (BEGIN IMMEDIATE + COMMIT)
            return ops
        seen = self._seen_version
        with self.transaction():
            if self._seen_version != seen:
                # another process (a reconcile, the daemon) committed after the read above:
                # it may have claimed these rows or queued a removal holding them back, so
                # they are read again under the write lock (else shipped twice, side by side)
                rows, inflight = self._claimable(target, now, limit, directories)
            for (oid, seq, source, path, kind, src, is_dir, tree, attempts, event_time, landed,
                 first_seen) in rows:
                barrier = bool(tree or (is_dir and kind == "move"))
                if self._overlaps_inflight(oid, target, source, bytes(path), src, barrier):
                    continue
                if kind == "move" and src is not None and self._in_flight(target, source, bytes(src)):
                    continue   # what was at src is still being shipped: move it once it has been
                if inflight is not None and not inflight.take(
                        self.db, target, source, bytes(path), moved_from(kind, src), kind,
                        landed=bool(landed)):
                    continue
                self.db.execute("UPDATE ops SET claimed = ?, claimer = ?, claimed_kind = ?, "
                                "claimed_src = ? WHERE id = ?", (seq, self.claimer, kind, src, oid))
                src_shipped = shipped = None
                if kind == "move" and src is not None and not is_dir:
                    src_shipped = self._shipped_meta(target, source, bytes(src))
                elif kind == "attr":
                    shipped = self._shipped_meta(target, source, bytes(path))
                ops.append(Op(oid, seq, target, source, _s(path), kind,
                              _s(src) if src is not None else None, bool(is_dir), bool(tree),
                              attempts, event_time, src_shipped, shipped, first_seen))
        return ops

    def _claimable(self, target: str, now: float, limit: int,
                   directories: bool) -> tuple[list[tuple], InFlight | KeysInFlight | None]:
        """The ready rows (_ready_rows) and what is in flight on the target (InFlight, or on
        a target without directories KeysInFlight): read only when something is ready (an
        idle claim stays one read), and the rows read again without those InFlight holds
        back when it holds back any."""
        rows = self._ready_rows(target, now, limit, None)
        if not rows:
            return rows, None
        if not directories:
            return rows, KeysInFlight(self.db, target)
        inflight = InFlight(self.db, target)
        if inflight.holds_back(rows):
            rows = self._ready_rows(target, now, limit, inflight)
        return rows, inflight

    def _ready_rows(self, target: str, now: float, limit: int,
                    inflight: InFlight | None) -> list[tuple]:
        """The rows claim() may hand out now, oldest retry first (at most `limit`), none
        that `inflight` holds back (InFlight.sql)."""
        skip, args = inflight.sql() if inflight is not None else ("", [])
        return self.db.execute(
            "SELECT id, seq, source, path, kind, src, is_dir, tree, attempts, event_time, landed, "
            "first_seen FROM ops "
            f"WHERE {_READY}{skip} ORDER BY next_try, id LIMIT ?",
            (target, now, *args, limit)).fetchall()

    def _overlaps_inflight(self, oid: int, target: str, source: str, path: bytes,
                           src: bytes | None, barrier: bool) -> bool:
        """Whether the row must wait for work in flight on an overlapping path (the rule
        and why: mirrord.journal.barriers.overlaps_inflight)."""
        return overlaps_inflight(self.db, self._barriers, oid, target, source, path, src, barrier)

    def _in_flight(self, target: str, source: str, path: bytes) -> bool:
        """Whether the row at `path` is claimed: an op on it is at a worker (a move's source
        end whose put was in flight when the rename was recorded: enqueue_move)."""
        return self.db.execute("SELECT 1 FROM ops WHERE target = ? AND source = ? AND path = ? "
                               "AND claimed != 0", (target, source, path)).fetchone() is not None

    def _shipped_meta(self, target: str, source: str, key: bytes) -> tuple[int, int, int | None] | None:
        """(size, mtime_ns, mode) of the file `key` as last shipped, None if never shipped."""
        return shipped_meta(self.db, target, source, key)

    def ack(self, outcomes: Iterable[Outcome]) -> None:
        """Record what the workers did, in one transaction."""
        now = self.clock()
        shipped: dict[str, tuple[int, Outcome]] = {}   # target -> (ops done, the last one)
        finished: list[int] = []   # rows deleted: whoever waited for them waits no more
        clear: list[tuple[Op, int | None]] = []   # tree removals to queue (_clear_below)
        settled: list[tuple[Outcome, tuple | None]] = []   # first_copies, once committed
        with self.transaction():
            for out in outcomes:
                settled.append((out, self.first_copies.first_of(
                    out, lambda op: shipped_meta(self.db, op.target, op.source, _b(op.path)),
                    self._landed_at)))
                if out.error is None:
                    if self._done(out, clear):
                        finished.append(out.op.id)
                    count = shipped.get(out.op.target, (0, out))[0]
                    shipped[out.op.target] = (count + 1, out)
                else:
                    self._proposals.forget(out.op.id)   # the row is sent again, as recorded
                    self._failed(out, now)
            self._release_waiters(finished)
            # after the release: a row inserted here can get a finished row's id back (no
            # AUTOINCREMENT), and the release would free the rows it made wait (_wait_below)
            for op, newer in clear:
                self._clear_below(op, newer)
            for target, (count, last) in shipped.items():   # one row update per batch, not per op
                self.db.execute(
                    "INSERT INTO target_stats (target, shipped, last_path, last_kind, last_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                    "shipped = shipped + excluded.shipped, last_path = excluded.last_path, "
                    "last_kind = excluded.last_kind, last_at = excluded.last_at",
                    (target, count, _b(last.op.path), last.shipped_kind or last.op.kind, now))
        for out, first in settled:
            self.first_copies.settled(out, first)

    def _done(self, out: Outcome, clear: list[tuple[Op, int | None]]) -> bool:
        """Record one op done; True when its row is gone (no change arrived meanwhile).
        Appends to `clear` the path whose tree removal the ack must queue (_clear_below)
        with the row that changed meanwhile (None: the row is gone)."""
        op = out.op
        record_shipped(self.db, out)
        below = out.clear_below and recorded_below(self.db, op.target, op.source, _b(op.path))
        # one statement for the usual case (the row unchanged since claim: delete it); the
        # SELECT is needed only when it was not deleted
        gone = self.db.execute("DELETE FROM ops WHERE id = ? AND seq = ?", (op.id, op.seq)).rowcount
        row = None
        if not gone:
            row = self.db.execute("SELECT seq FROM ops WHERE id = ?", (op.id,)).fetchone()
            if row is not None and self._proposals.satisfied(out, row[0]):
                # moved on only by a catch-up's proposal that saw what this op shipped
                # (mirrord.journal.proposals): done, as if unchanged
                gone = self.db.execute("DELETE FROM ops WHERE id = ?", (op.id,)).rowcount
        if gone:
            self._barriers.drop(op.id)
            if below:
                clear.append((op, None))
            if op.tree and op.kind == "delete":
                self._due_below(op)
            return True
        if row is not None:
            # changed again while in flight: keep the newer change, drop what is now done
            # (what the target holds at the path is recorded now: nothing landed unrecorded).
            # A put that sent its bytes used its hint (src: where the bytes it overwrote
            # went): what the row sends next overwrites bytes that live at no other name,
            # so the hint goes unless a change since named another (held_files counts a
            # write over a put with src as no overwrite). A put that failed keeps it.
            self.db.execute(
                "UPDATE ops SET claimed = 0, landed = 0, src = CASE WHEN kind IN ('move', 'delete') "
                "THEN src WHEN kind = 'put' AND NOT (? AND src IS ?) THEN src ELSE NULL END, "
                "tree = CASE WHEN tree_seq <= ? THEN 0 ELSE tree END WHERE id = ?",
                (op.kind == "put" and out.shipped_kind == "put",
                 _b(op.src) if op.src is not None else None, op.seq, op.id))
            if not self.db.execute("SELECT tree FROM ops WHERE id = ?", (op.id,)).fetchone()[0]:
                self._barriers.drop(op.id)
            if below:
                clear.append((op, op.id))
        return False

    def _due_below(self, op: Op) -> None:
        """`op`, a tree removal, is done: the rows below its path that wait out a failure's
        backoff run now, state-based (what they find at the source decides: gone, they are
        done). Their failure was at what the removal took away. Before, they waited for
        it: a change refused for good (PERMANENT_RETRY, 600 s: a name the target cannot
        hold, another source's area, a file unreadable at the source) kept the target
        degraded for 10 minutes after its directory was gone (`mkdir -p src/.mirrord/x`,
        then `mv src/.mirrord src/m`: found by trying it as a user). One range search of
        the ops key."""
        path = _b(op.path)
        self.db.execute("UPDATE ops SET next_try = 0 WHERE target = ? AND source = ? AND path > ? "
                        "AND path < ? AND claimed = 0 AND attempts > 0",
                        (op.target, op.source, path + b"/", _prefix_upper(path)))

    def _clear_below(self, op: Op, newer: int | None) -> None:
        """A delete found nothing at the source, but the record still names files or
        directories below the path: the target held a directory there, which a delete
        that is no tree op removes only when empty (LocalTarget: rmdir; rsync alike), and
        the record forgot it all the same. It stayed on the target for good, no row and
        no record naming it, while status said in_sync (tests/unit/
        test_exchange_properties.py: a directory exchanged twice, the first exchange's
        subtree check proposing a subdirectory the second took away; its mkdir ran as a
        delete before the delete of its file). The path gets a tree removal: a barrier
        (mirrord.journal.barriers), claimed once nothing below is in flight, held with
        the source's deletes, and state-based like any op (a directory there again by
        then is made and re-sent: ship_rules.outcome). `newer`: the path's row, changed
        while the op was in flight: that change runs as a tree op, its kind, time and
        delay kept; a move is left as it is (ship_moves moves, it removes no tree): what
        lies below stays recorded, for a reconcile to remove."""
        t, s, path = op.target, op.source, _b(op.path)
        if newer is None:
            self._upsert(t, s, path, "delete", tree=True, is_dir=True, size=0,
                         when=self.clock())
            return
        kind, src, is_dir = self.db.execute("SELECT kind, src, is_dir FROM ops WHERE id = ?",
                                            (newer,)).fetchone()
        if kind == "move":
            return
        self.db.execute("UPDATE ops SET tree = 1, tree_seq = seq WHERE id = ?", (newer,))
        self._barriers.set(newer, t, s, barrier_paths(path, src, kind=kind,
                                                      is_dir=bool(is_dir), tree=True) or ())
        self._wait_below(t, s, path, newer)

    def _release_waiters(self, ids: list[int]) -> None:
        """Rows that waited for the deleted rows `ids` (wait_for) are free to go: one
        statement per 500 ids (SQLite's host-parameter limit is 999 on older builds)
        instead of one per op, in the ack's transaction."""
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            self.db.execute(f"UPDATE ops SET wait_for = NULL WHERE wait_for IN "
                            f"({','.join('?' * len(chunk))})", chunk)

    def _landed_at(self, op: Op) -> bool:
        """Whether the target may hold a version at `op`'s path no `shipped` row names
        (ops.landed of its row, read before its ack is recorded): set by a put the target
        stored though the file changed while it was sent (errors.ChangedWhileSent) or by
        a claim cut short (release_claims), cleared by the row's next op done; another
        process's (`mirrord reconcile`) counts too. A primary-key search."""
        row = self.db.execute("SELECT landed FROM ops WHERE id = ?", (op.id,)).fetchone()
        return row is not None and bool(row[0])
