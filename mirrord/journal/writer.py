"""The Journal object: the one writer of the state database, and what it is built from.

Opening a Journal checks and migrates the database (schema.py), forgets the
claims of a previous run and reloads the directory barriers (barriers.py). Its
methods come from two mixins split by job, enqueue (enqueue.py) and claim / ack
(claims.py), plus the small kv state and the read-side calls on its own
connection kept here; the mass-change alarm's questions are a mixin of their own
(alarm_reads.py). Only the daemon's main thread writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from mirrord import claimer as claimer_mod
from mirrord.compare import ShippedRow   # (key, size, mtime_ns, token, mode): see iter_shipped
from mirrord.journal import holds, opening, read, schema, shipped, wait_cycles
from mirrord.journal.alarm_reads import AlarmReadsMixin
from mirrord.journal.barriers import load_barriers
from mirrord.journal.claim_owners import ClaimOwnersMixin
from mirrord.journal.claims import ClaimAckMixin
from mirrord.journal.enqueue import EnqueueMixin
from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.enqueue_moves import MoveEnqueueMixin
from mirrord.journal.proposals import InFlightProposals
from mirrord.journal.records import RowState, TargetBacklog


class Journal(EnqueueMixin, MoveEnqueueMixin, ClaimAckMixin, ClaimOwnersMixin, AlarmReadsMixin):
    """The write side of the state database, used by one thread (the daemon's main loop)."""

    def __init__(self, path: Path, routes: dict[str, tuple[str, ...]], *,
                 clock=time.time, check: bool = True, reset_claims: bool = True,
                 claimer: str | None = None):
        """Open (create, check, migrate) the state database at `path`. `claimer`: the id
        recorded on the rows this Journal claims (mirrord.claimer; None: this process's);
        `reset_claims`: release at once the claims of processes that are gone. Raises
        JournalError when the database is damaged or newer."""
        self.path = Path(path)
        self.routes = dict(routes)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        emptied = opening.emptied_with_log(self.path)   # before create(): a log stays a log
        if emptied is not None:
            raise emptied
        if not self.path.exists():
            schema.create(self.path)   # readers never see it without its tables
        self.db = schema.connect(self.path)
        if existed and check:
            schema.check_integrity(self.db, self.path)
        schema.migrate(self.db, self.path)
        self.claimer = claimer or claimer_mod.me()
        self._proposals = InFlightProposals(self.claimer)   # mirrord.journal.proposals
        # the puts in flight and first copies, for the alarm (mirrord.journal.first_copies)
        self.first_copies = FirstCopies()
        if reset_claims:  # False: the caller reads them first (mirrord.interrupted)
            self.release_claims()   # a live process's (a running daemon's) stay its own
        self._barriers = load_barriers(self.db)
        self._seen_version = self._data_version()
        if existed and wait_cycles.cycles(self.db):
            with self.transaction():   # a cycle left by an older version (wait_cycles)
                wait_cycles.undo(self.db)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ transactions
    def transaction(self) -> schema._Txn:
        """BEGIN IMMEDIATE ... COMMIT (schema.transaction). Once the write lock is held, the
        directory barriers are reloaded if another connection committed since this one last
        looked: `mirrord reconcile` queues its repairs (tree removals and directory moves
        among them) into a running daemon's journal, and the daemon's in-memory barriers,
        loaded at open, did not know them, so a put below a tree removal the command
        queued could run beside it (and be removed by it). PRAGMA data_version changes
        exactly when another connection commits (SQLite: "PRAGMA data_version"); read under
        the write lock, nothing can commit between the reload and this transaction's use."""
        return _FreshTxn(self)

    def _data_version(self) -> int:
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def _refresh_barriers(self) -> None:
        version = self._data_version()
        if version != self._seen_version:
            self._barriers = load_barriers(self.db)
            self._seen_version = version

    # ------------------------------------------------------------ rows
    def row_states(self, target: str, source: str, paths: Iterable[bytes], *,
                   held: bool = True) -> dict[bytes, RowState]:
        """Where the rows of `target` / `source` at `paths` (path bytes) stand; a path with no
        row is absent from the answer (acked: done); `held` False skips the look for rows
        held behind held deletes (read.row_states)."""
        return read.row_states(self.db, target, source, paths, held=held)

    def claimed_rows(self, claimers: set[str | None]) -> list[tuple[str, str, str, str]]:
        """(target, source, path, kind) of the rows in flight whose claimer is one of
        `claimers` (gone_claimers(): what a crash or a kill left in flight,
        mirrord.interrupted)."""
        return [row[:4] for row in read.claimed_rows(self.db) if row[4] in claimers]

    def set_shipped_aside(self, target: str, source: str, location: str) -> int:
        """Move the record of what `source` shipped to `target` aside under `location`
        (the place it describes; it changed: mirrord.locations); returns how many rows."""
        return shipped.set_aside(self.db, target, source, location)

    def mark_in_flight_unsure(self, target: str, source: str) -> int:
        """Mark in the pair's record what its rows in flight may have changed on the target
        (shipped.mark_in_flight_unsure); returns how many rows were in flight."""
        return shipped.mark_in_flight_unsure(self.db, target, source)

    def restore_shipped(self, target: str, source: str, location: str) -> int:
        """Make the record set aside for `location` the pair's record again (it is back
        there); returns how many rows."""
        return shipped.restore_aside(self.db, target, source, location)

    def drop_shipped_aside(self, target: str, source: str, location: str) -> int:
        """Forget the record set aside for `location`; returns how many rows went."""
        return shipped.drop_aside(self.db, target, source, location)

    # ------------------------------------------------------------ state
    def set_state(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_state(self, key: str, default: object = None) -> object:
        return read.read_state(self.db, key, default)

    def has_more_ops_than(self, limit: int) -> bool:
        """Whether more than `limit` operations are queued or in flight (any target),
        not counting ones that already failed (they wait out a backoff, maybe for hours)
        nor deletes held by a mass-change alarm (holds.HELD_SQL: they wait for
        `resume-deletes`; counted, the walk for hard links' other names, and a scheduled
        reconcile pass, waited for another source's resume: a review, helper-137).
        Stops counting at limit + 1: cheap even with a backlog of millions. Held rows are
        read past one by one (300,000 of them: 44 ms a call); it is asked only while a
        walk or a pass is due and waits, once per turn of the main loop."""
        row = self.db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM ops WHERE attempts = 0 "
                              f"AND {holds.HELD_SQL} LIMIT ?)", (limit + 1,)).fetchone()
        return row[0] > limit

    def backlog(self, now: float | None = None) -> dict[str, TargetBacklog]:
        return read.read_backlog(self.db, list(dict.fromkeys(t for ts in self.routes.values() for t in ts)))

    def shipped_entries(self, target: str, source: str) -> Iterator[ShippedRow]:
        return read.iter_shipped(self.db, target, source)

    # ------------------------------------------------------------ held deletes (alarm)
    def hold_deletes(self, source: str, *, reason: str, since: float | None = None,
                     exempt: int = 0) -> bool:
        """Hold `source`'s deletes until resume_deletes() (mirrord.journal.holds; `exempt`:
        deletes it stands for that are not queued); False when they already were. Raises
        sqlite3.Error when the hold cannot be written."""
        return holds.hold(self.db, source, since=self.clock() if since is None else since,
                          reason=reason, exempt=exempt)

    def resume_deletes(self, source: str | None = None) -> list[holds.Hold]:
        """Lift the hold on `source` (None: all); returns what was lifted."""
        return holds.release(self.db, source)

    def held_sources(self) -> set[str]:
        return holds.held_sources(self.db)

    def hold_reasons(self) -> dict[str, str]:
        """Each held source -> why (holds.hold_reasons)."""
        return holds.hold_reasons(self.db)

    def take_resumed(self) -> dict[str, int]:
        """The sources resume-deletes released since the last call -> the deletes each hold
        stood for that were never queued (holds.take_resumed)."""
        return holds.take_resumed(self.db)

    def queued_tree_removals(self, target: str, source: str) -> set[str]:
        """Directories whose removal is queued for `target` / `source` (read)."""
        return read.queued_tree_removals(self.db, target, source)

    def rows_at_or_below(self, source: str, path: str) -> bool:
        """Whether a row of `source` at or below `path` is queued or in flight for any of
        its targets (read)."""
        return read.rows_at_or_below(self.db, self.routes.get(source, ()), source, os.fsencode(path))

    def shipped_version(self, source: str, path: str,
                        target: str | None = None) -> tuple[int, int] | None:
        """(size, mtime_ns) of the file `target` (None: the source's first) holds at `path`
        by its `shipped` row; None when it has none (read)."""
        target = target or next(iter(self.routes.get(source, ())), None)
        meta = None if target is None else read.shipped_meta(self.db, target, source,
                                                              os.fsencode(path))
        return None if meta is None else (meta[0], meta[1])

class _FreshTxn(schema._Txn):
    """schema.transaction for a Journal: the outermost one reloads its barriers when another
    connection committed (Journal.transaction)."""

    def __init__(self, journal: Journal):
        super().__init__(journal.db)
        self.journal = journal

    def __enter__(self):
        super().__enter__()
        if self.outer:
            try:
                self.journal._refresh_barriers()
            except BaseException:
                self.db.execute("ROLLBACK")   # __exit__ is not called when __enter__ raises
                raise
        return self

    def __exit__(self, exc_type, exc, tb):
        """As schema._Txn; a transaction that does not commit (an error inside it, or a
        COMMIT that fails: a full disk) makes the next one reload the barriers. The
        enqueue had noted barriers in memory for rows the rollback took away, and SQLite
        gives the same ids to the rows written again: each found its own id covering its
        path and waited for itself, for good (this session's rehearsal: a state disk
        filled and freed left two tree removals stalled on every target)."""
        committed = False
        try:
            super().__exit__(exc_type, exc, tb)
            committed = exc_type is None
        finally:
            if self.outer and not committed:
                self.journal._seen_version = None   # _refresh_barriers reloads next time
        return False

