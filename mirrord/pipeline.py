"""The one shipping loop: record -> claim -> ship -> ack, for the daemon and `mirrord reconcile`.

A Pipeline is driven by the one thread that owns the journal (the daemon's
main loop, or the reconcile command's). It records changes and moves, holding
them in memory and retrying while the journal cannot be written (disk full,
I/O error); it records the shipper's outcomes the same way, hands a
directory a move could not keep to `on_rescan`, logs one line per distinct
retried error (the text with each op's own path left out), and gives ready rows to the shipper's free workers. Nothing
else claims or acks rows. With no shipper (a daemon is running and ships),
it only records and waits.

A Ticket (mirrord.tickets) names rows someone waits for; the pipeline tracks
it once its changes are recorded and resolves its rows from the journal
(poll_tickets), so a pass on the daemon's scanner thread can wait for rows the
main thread ships (mirrord.reconcile.session).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable

from mirrord.errors import cause_of
from mirrord.journal import Change, Journal, Outcome
from mirrord.logsetup import kv
from mirrord.shipper import Shipper
from mirrord.tickets import MAX_ATTEMPTS, Ticket

__all__ = ["MAX_ATTEMPTS", "MAX_JOURNAL_BACKLOG", "Pipeline", "Ticket", "log_retrying"]

log = logging.getLogger("mirrord.pipeline")

MAX_JOURNAL_BACKLOG = 200_000   # changes held in memory while the journal cannot be written
RETRY_LOG_AT = (0, 3, 10)   # attempts (before this one) whose failure is logged


class Pipeline:
    """Records, ships (when it has a shipper) and acks, on the journal owner's thread."""

    def __init__(self, journal: Journal, shipper: Shipper | None, *,
                 clock: Callable[[], float] = time.monotonic,
                 idle: Callable[[float], None] = time.sleep,
                 on_rescan: Callable[[Outcome], None] = lambda out: None,
                 on_check: Callable[[Outcome], None] = lambda out: None,
                 on_lost: Callable[[], None] = lambda: None,
                 on_journal_error: Callable[[Exception], None] = lambda exc: None):
        """`clock` (seconds, monotonic) paces ticket polls and timeouts; `idle(seconds)`
        waits between turns of wait() (the command: its wake-up event; tests: advance a
        fake clock). `on_rescan(outcome)`: a directory to walk and re-send; `on_check(outcome)`:
        a directory moved on its target, to compare with the source (Outcome.check; the
        daemon queues a subtree check, `mirrord reconcile` needs none: its pass compares the
        whole target listing with the source); `on_lost()`:
        held changes were dropped (a full rescan must follow); `on_journal_error(exc)`:
        count it (status)."""
        self.journal, self.shipper = journal, shipper
        # False: claim no more rows, only record what the workers finish (a reconcile
        # whose shipping a daemon started meanwhile takes over: mirrord.reconcile.command)
        self.claiming = True
        self.clock, self.idle = clock, idle
        self.on_rescan, self.on_lost, self.on_journal_error = on_rescan, on_lost, on_journal_error
        self.on_check = on_check
        self.unwritten: list[Change] = []
        self.unwritten_tickets: list[tuple[Ticket, list[Change]]] = []
        self.unacked: list[Outcome] = []   # outcomes held while the journal cannot be written
        self.tickets: list[Ticket] = []
        self.journal_errors = 0
        self._next_poll = 0.0

    @property
    def holding(self) -> bool:
        """Changes or outcomes wait in memory for the journal."""
        return self.held() > 0

    def held(self) -> int:
        """How many changes and outcomes wait in memory for the journal (0: none)."""
        return len(self.unwritten) + len(self.unacked)

    def busy(self) -> bool:
        return self.holding or (self.shipper is not None and self.shipper.busy())

    # ------------------------------------------------------------ record
    def record(self, changes: list[Change], ticket: Ticket | None = None) -> None:
        """Write changes (and those held before) in one transaction; on a journal error
        hold them and retry next time. Past MAX_JOURNAL_BACKLOG held changes they are
        dropped and `on_lost` asks for a full rescan (memory must stay bounded)."""
        if ticket is not None and changes:
            self.unwritten_tickets.append((ticket, changes))
        if not changes and not self.unwritten:
            return
        pending = self.unwritten + changes
        try:
            self.journal.enqueue(pending)
        except Exception as exc:  # noqa: BLE001 - disk full / I/O error: hold and retry
            self.journal_failed(exc, held=len(pending))
            if len(pending) <= MAX_JOURNAL_BACKLOG:
                self.unwritten = pending
                return
            log.error(kv(msg="journal unwritable too long: dropping held changes; a full "
                             "rescan will follow once it is writable", held=len(pending)))
            self.unwritten = []
            for held_ticket, held in self._take_tickets():
                held_ticket.lost(held, "dropped: the journal could not be written")
            self.on_lost()
            return
        self.unwritten = []
        for held_ticket, held in self._take_tickets():
            held_ticket.recorded(held)
            if held_ticket not in self.tickets:
                self.tickets.append(held_ticket)

    def give_up_held(self, why: str) -> int:
        """Drop the changes held for an unwritable journal (a command that cannot wait
        for ever); their tickets count them as failed. Returns how many were dropped."""
        dropped = len(self.unwritten)
        self.unwritten = []
        for held_ticket, held in self._take_tickets():
            held_ticket.lost(held, why)
        return dropped

    def _take_tickets(self) -> list[tuple[Ticket, list[Change]]]:
        out, self.unwritten_tickets = self.unwritten_tickets, []
        return out

    def record_move(self, source: str, src: str, dst: str, *, is_dir: bool,
                    when: float, as_move: bool = True) -> tuple[str, ...]:
        """Record a rename; returns the targets where it could not be kept as a move (a
        directory there must be walked and re-sent). On a journal error the move is held
        as a delete of `src` plus a put / mkdir of `dst`, for every target. `as_move` False:
        never kept as a move (Journal.enqueue_move)."""
        try:
            return tuple(self.journal.enqueue_move(source, src, dst, is_dir=is_dir, when=when,
                                                   as_move=as_move))
        except Exception as exc:  # noqa: BLE001 - journal full or broken: keep as plain changes
            self.journal_failed(exc, held=len(self.unwritten) + 2)
            self.unwritten.append(Change(source, src, "delete", tree=is_dir, time=when))
            self.unwritten.append(Change(source, dst, "mkdir" if is_dir else "put", time=when))
            return self.journal.targets_of(None, source)

    def journal_failed(self, exc: Exception, *, held: int | None = None) -> None:
        self.journal_errors += 1
        self.on_journal_error(exc)
        n = self.journal_errors
        if n in (1, 10, 100) or n % 1000 == 0:
            log.error(kv(msg="cannot write the journal; holding changes in memory and retrying",
                         error=str(exc), held=len(self.unwritten) if held is None else held))

    def _ack_one_by_one(self, outcomes: list[Outcome], exc: Exception) -> list[Outcome]:
        """A batch whose ack raised what is no I/O trouble (a value SQLite cannot hold: a
        bug, or input no rule foresaw) is acked outcome by outcome, so that the rest of
        the batch is recorded; the one that still fails is recorded as failed instead
        (retried with backoff, its error in status), and only when even that fails does
        its row stay claimed until a restart. Before, the whole batch stayed claimed: no
        later change to any of its paths was shipped (a breaker: a file dated 2300).
        Returns the outcomes as recorded."""
        log.error(kv(msg="cannot record a batch of finished work; recording it op by op",
                     ops=len(outcomes), error=f"{type(exc).__name__}: {exc}"))
        recorded = []
        for i, out in enumerate(outcomes):
            why = ""
            for attempt in (out, None):
                if attempt is None:   # the outcome cannot be recorded: record it as failed
                    attempt = Outcome(out.op, error=f"cannot record the outcome: {why}",
                                      permanent=True)
                try:
                    self.journal.ack([attempt])
                    recorded.append(attempt)
                    break
                except sqlite3.OperationalError as io:   # disk full meanwhile: hold the rest
                    self.journal_failed(io)
                    self.unacked = outcomes[i:]
                    return recorded
                except Exception as one:  # noqa: BLE001 - this op's own trouble
                    why = f"{type(one).__name__}: {one}"
            else:   # not even its failure: the row waits for a restart
                log.error(kv(msg="cannot record finished work; redone after restart",
                             path=out.op.path, target=out.op.target, error=why))
        return recorded

    # ------------------------------------------------------------ outcomes
    def pump(self, *, claim: bool = True) -> None:
        """One turn: retry held changes, record finished work, dispatch (unless `claim` is
        False: a stopped run claims nothing more), resolve tickets."""
        self.record([])
        self.ack(self.shipper.completed() if self.shipper is not None else [])
        if claim:
            self.dispatch()
        self.poll_tickets()

    def ack(self, outcomes: list[Outcome]) -> None:
        """Record outcomes (and those held); rows of a failed ack stay claimed, so they are
        never dispatched twice, until it succeeds (or the next start releases them)."""
        outcomes = self.unacked + outcomes
        if not outcomes:
            return
        try:
            self.journal.ack(outcomes)
            self.unacked = []
        except sqlite3.OperationalError as exc:   # disk full, I/O error: hold and retry
            self.journal_failed(exc)
            self.unacked = outcomes
            return
        except Exception as exc:  # noqa: BLE001 - a bug: never block every later ack on it
            self.journal_failed(exc)
            self.unacked = []
            outcomes = self._ack_one_by_one(outcomes, exc)
        # one line per cause: the error with the op's own path left out (errors.cause_of),
        # the first op's error shown
        failed: dict[tuple[str, int, str], tuple[str, list[str]]] = {}
        for out in outcomes:
            if out.rescan:
                self.on_rescan(out)
            elif out.check:
                self.on_check(out)
            if out.error is not None and not out.busy and out.op.attempts in RETRY_LOG_AT:
                key = (out.op.target, out.op.attempts + 1, cause_of(out.error, out.op.path))
                failed.setdefault(key, (out.error, []))[1].append(out.op.path)
        for (target, attempt, _cause), (error, paths) in failed.items():
            log_retrying(target, attempt, error, paths)

    def dispatch(self) -> None:
        """Hand ready rows to each target's free workers (no shipper, or not claiming:
        nothing to do)."""
        if self.shipper is None or not self.claiming:
            return
        for name in self.shipper.targets:
            try:
                self.shipper.take_work(self.journal, name)
            except Exception as exc:  # noqa: BLE001 - journal unwritable: dispatch next turn
                self.journal_failed(exc)
                return

    # ------------------------------------------------------------ waiting
    def poll_tickets(self, *, force: bool = False) -> None:
        """Resolve the tracked tickets' rows from the journal; paced (every 50 ms plus
        1 ms per 20 rows pending), since a big pass may wait for 100,000 rows."""
        now = self.clock()
        if not self.tickets or (now < self._next_poll and not force):
            return
        wall = self.journal.clock()
        waiting = 0
        try:
            for ticket in self.tickets:
                for source, paths in ticket.recorded_keys().items():
                    ticket.resolve(source, self.journal.row_states(ticket.target, source, paths),
                                   paths, now=wall)
                waiting += ticket.pending
        except sqlite3.Error as exc:
            self.journal_failed(exc)
        self.tickets = [t for t in self.tickets if not t.settled()]
        self._next_poll = now + 0.05 + waiting / 20000

    def wait(self, ticket: Ticket, timeout: float | None = None, *,
             tick: Callable[[], None] = lambda: None) -> bool:
        """On the journal owner's thread: pump until every row of `ticket` settled (True)
        or `timeout` seconds passed (False: the rest count as failed, still queued)."""
        deadline = None if timeout is None else self.clock() + timeout
        while not ticket.settled():
            self.pump()
            self.poll_tickets(force=True)
            if ticket.settled():
                break
            if deadline is not None and self.clock() >= deadline:
                ticket.give_up(f"still queued after {timeout:.0f}s (the daemon will ship it)")
                return False
            tick()
            self.idle(0.05)
        return True

    def drain(self, grace: float) -> None:
        """Before stop: record held changes, let in-flight work finish for up to `grace`
        seconds and record it; what is left is released at close."""
        self.record([])
        if self.shipper is not None:
            deadline = self.clock() + grace
            while self.shipper.busy() and self.clock() < deadline:
                self.idle(0.2)
                self.ack(self.shipper.completed())
            self.ack(self.shipper.completed())
        self.record([])


def log_retrying(target: str, attempt: int, error: str, paths: list[str]) -> None:
    """One warning per distinct error, not per path: a failed batch of 5,000 files (the
    link dropped) is one line naming the count and the first paths, not 5,000 lines.
    `error` is the first path's (the caller groups by errors.cause_of)."""
    if len(paths) == 1:
        log.warning(kv(msg="retrying", target=target, path=paths[0], attempt=attempt, error=error))
    else:
        log.warning(kv(msg="retrying", target=target, ops=len(paths), first=", ".join(paths[:3]),
                       attempt=attempt, error=error))
