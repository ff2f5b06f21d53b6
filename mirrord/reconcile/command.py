"""The reconcile command's run: the lock, the journal, and each target's pass driven
through the shipping Pipeline (mirrord.pipeline), as the daemon drives it.

A Session runs the pass on a pass thread and only proposes; this module's main
thread records the proposals, ships them (with its own Shipper when no daemon
holds the daemon lock; otherwise the daemon ships and we wait up to
DAEMON_WAIT seconds; a daemon that starts meanwhile takes over: handover.py),
honours an outcome's request to re-send a directory, and
holds changes while the journal cannot be written (up to JOURNAL_PATIENCE
seconds; then they count as failed repairs, and no delete goes out).

interrupt() (the command's SIGTERM / SIGINT handler calls it) ends the run early
but cleanly: the pass stops merging, nothing is deleted, no further work is
claimed, what the workers hold is finished and recorded, the summary is stored
and printed, and targets not reached yet are reported as not compared.
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import threading
import time

from mirrord import locations, locks, submounts, targets as target_registry
from mirrord.catchup import resend_subtree
from mirrord.cli.output import print_or_drop, raw
from mirrord.config import Config
from mirrord.errors import MirrordError
from mirrord.journal import Journal, Outcome
from mirrord.pipeline import Pipeline, Ticket
from mirrord.progress import Progress
from mirrord.reconcile import session as session_mod
from mirrord.reconcile.empty_root import refuse_empty_root
from mirrord.reconcile.handover import DaemonHandover
from mirrord.reconcile.listings import open_readonly
from mirrord.reconcile.result import PassSummary
from mirrord.shipper import Shipper, SourceGuard
from mirrord.trash import keeper

DAEMON_WAIT = 900.0      # seconds to wait for a running daemon to ship our rows
SETTLE_GRACE = 600.0     # seconds our workers may take to finish what they hold at the end
JOURNAL_PATIENCE = 60.0  # seconds changes are held for an unwritable journal before giving up


class Command(DaemonHandover):
    """One `mirrord reconcile` run: the reconcile lock and the journal, then the targets one
    after another. `run(names)` returns one PassSummary per target (and has stored it
    as `reconcile:{target}` unless a dry run); close() releases the lock and journal.
    Raises MirrordError when another reconcile holds the lock, JournalError when the
    journal is damaged."""

    def __init__(self, cfg: Config, *, dry_run: bool, delete: bool, checksum: bool, quiet: bool):
        self.cfg, self.dry_run, self.delete, self.checksum, self.quiet = cfg, dry_run, delete, checksum, quiet
        # mirrord's own text with its \r redraws: not through the escaping stream
        self.progress = Progress(raw(sys.stderr), enabled=None if not quiet else False)
        self.journal: Journal | None = None
        self.lock: locks.Lock | None = None
        self.daemon = False
        self.wake = threading.Event()
        self.stop = threading.Event()     # set by interrupt(): the pass ends without deleting
        self.stopped_by: str | None = None   # what stopped the run ('SIGTERM'), None: not stopped
        self._next_look = 0.0   # monotonic seconds: when to look for a daemon again
        self._handed_over = False   # our shipping went to a daemon that started meanwhile
        self.named = False          # run(named=): the operator named the target

    def close(self) -> None:
        self.progress.close()
        if self.journal is not None:
            self.journal.close()
        if self.lock is not None:
            self.lock.close()

    def run(self, names: list[str], *, named: bool = False) -> list[PassSummary]:
        """`named`: the operator named the target (--target), which may fill a root found
        empty while paths shipped to it are recorded (an emptied mirror refilled on purpose);
        otherwise such a target is refused (refuse_empty_root)."""
        self.named = named
        if not self.dry_run:
            self._open_journal()
        else:
            # a dry run reads the state database per target (engine, listings.open_readonly):
            # one it cannot read is the environment's fault, as for a real run, so
            # JournalUnusable (exit 2) before any target, not one error per target (exit 1)
            conn = open_readonly(self.cfg.mirrord.journal_path)
            if conn is not None:
                conn.close()
        out = []
        for name in names:
            if self.stop.is_set():   # stopped: do not even connect to the next targets
                summary = PassSummary(name, dry_run=self.dry_run)
                summary.errors.append(f"stopped by {self.stopped_by} before target {name} "
                                      f"was compared")
                out.append(summary)
            else:
                out.append(self._target(name))
        return out

    def interrupt(self, why: str) -> None:
        """Stop the run early (safe from a signal handler: it only sets flags); `why` names
        the cause in the summary ('SIGTERM')."""
        if self.stopped_by is None:
            self.stopped_by = why
        self.stop.set()

    def _open_journal(self) -> None:
        state_dir = self.cfg.mirrord.state_dir
        try:
            self.lock = locks.take(state_dir, locks.RECONCILE)
        except locks.Busy as exc:
            raise MirrordError(f"another mirrord reconcile is running on state_dir {state_dir} "
                               f"(pid {exc.pid or '?'})") from None
        self.daemon = locks.holder(state_dir, locks.DAEMON) is not None
        routes = {s.name: s.targets for s in self.cfg.sources}
        # With a daemon running, its claims are its own: never reset them. Without one, they
        # are what the last run left in flight: released only for a target this run passes
        # over (_target), whose pass repairs what they left; the others' stay for the next
        # start of the daemon to undo (mirrord.interrupted), which reads them
        self.journal = Journal(self.cfg.mirrord.journal_path, routes, check=False,
                               reset_claims=False)
        if self.daemon:
            print("mirrord: a daemon is running: queueing repairs for it to ship", file=sys.stderr)
        else:
            # this run ships to the places its config names and records what it sends
            # there: the record must belong to them first, as at the daemon's start. Else
            # a target moved (A -> B) and reconciled before the daemon ran again had B's
            # files recorded as A's record, set aside for A at the daemon's start: a return
            # to A then believed A held files it never got (mirrord.locations)
            locations.check(self.journal, self.cfg)

    def _target(self, name: str) -> PassSummary:
        try:
            target = target_registry.create(self.cfg.targets[name])
            target.open(readonly=self.dry_run)   # a dry run only looks: no sweep, nothing made
        except (MirrordError, OSError) as exc:
            summary = PassSummary(name, dry_run=self.dry_run)
            summary.errors.append(f"cannot open target {name}: {exc}")
            return summary
        refused = None if self.named else refuse_empty_root(self.journal, self.cfg, target)
        if refused:
            target.close()
            summary = PassSummary(name, dry_run=self.dry_run)
            summary.errors.append(refused)
            return summary
        shipper = pipeline = None
        try:
            if self.journal is not None:
                self._look_for_daemon(None, force=True)
                if not self.daemon:
                    # only the rows of processes that are gone (mirrord.claimer): a daemon
                    # that started after the look above ships rows of its own already
                    self.journal.release_claims(name)
                    shipper = self._shipper(name, target)
                pipeline = Pipeline(self.journal, shipper, idle=self._idle,
                                    on_rescan=lambda out: self._rescan(pipeline, rescans, out))
            rescans = Ticket(name)   # directories an outcome asked to walk and re-send
            proposals: queue.Queue = queue.Queue(maxsize=20)
            quiet = threading.Event()   # stopped, and nothing under way is left unrecorded
            session = session_mod.Session(
                self.cfg, outbox=None if pipeline is None else lambda ch, t: proposals.put((ch, t)),
                reason="command", delete=self.delete, checksum=self.checksum, stop=self.stop,
                wait=DAEMON_WAIT if self.daemon else None, say=self._say,
                quiet=quiet, grace=SETTLE_GRACE)
            summary = self._drive(session, target, pipeline, proposals, rescans, quiet)
        finally:
            if shipper is not None:
                shipper.shutdown(wait=True)
            target.close()
            self.progress.close()
        if self.journal is not None:
            try:
                session_mod.record(self.journal, summary)
                if name in session.trash:   # what `mirrord status` shows of the trash
                    self.journal.set_state(f"trash:{name}", session.trash[name].to_state())
            except sqlite3.Error as exc:   # the summary is printed anyway
                print(f"mirrord: cannot store the summary in {self.journal.path}: {exc}",
                      file=sys.stderr)
        return summary

    def _shipper(self, name: str, target) -> Shipper:
        guards, mounts = {}, {}
        for src in self.cfg.sources_for(name):
            try:
                guards[src.name] = SourceGuard(str(src.path))
            except OSError:
                pass  # a missing root: the pass reports it, and deletes are refused
            # the daemon's rule for a file system gone below the root, with what it remembers
            mounts[src.name] = submounts.load(self.journal, src)
        # as the daemon's workers do: a queued put whose file is gone runs as a delete, held
        # while a mass-change alarm holds its source (only the daemon raises alarms, and it
        # is not running: the holds read now stay true for this run)
        held = self.journal.held_sources() if self.journal is not None else set()
        return Shipper({name: target}, self.cfg.sources, {name: self.cfg.targets[name].workers},
                       wake=self.wake.set, guards=guards,
                       keep=keeper.policies(self.cfg, {name: target}),
                       held=lambda source: source in held, mounts=mounts)

    def _drive(self, session, target, pipeline: Pipeline | None, proposals: queue.Queue,
               rescans: Ticket, quiet: threading.Event) -> PassSummary:
        """Run the session on a pass thread; record and ship its proposals here meanwhile,
        and until the re-sends that outcomes asked for are done too. Once stopped, claim
        nothing more, record what the workers finish, and set `quiet` when nothing is
        under way any more (the session then counts the rest as not shipped)."""
        box: dict[str, object] = {}

        def job() -> None:
            try:
                box["summary"] = session.run_target(target)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                box["error"] = exc

        thread = threading.Thread(target=job, name="reconcile", daemon=True)
        thread.start()
        self.progress.restart()
        held_since: float | None = None
        try:
            # stopped: no more waiting for re-sends, and no new claims (the rows stay queued
            # in the journal for the daemon or the next run); the proposals still drain, so
            # the pass thread never blocks on a full queue
            while thread.is_alive() or not proposals.empty() or (
                    not rescans.settled() and not self.stop.is_set()):
                try:
                    changes, ticket = proposals.get(timeout=0.05)
                    pipeline.record(changes, ticket)
                except queue.Empty:
                    pass
                if pipeline is not None:
                    self._look_for_daemon(pipeline)
                    if not self.stop.is_set():
                        pipeline.pump()
                    else:
                        # no transfer under way before this turn: its ack and the ticket
                        # poll after it see every outcome (changes held for an unwritable
                        # journal are _patience's: they do not hold the count back)
                        idle = pipeline.shipper is None or not pipeline.shipper.busy()
                        pipeline.pump(claim=False)
                        if idle and not quiet.is_set():
                            pipeline.poll_tickets(force=True)
                            quiet.set()
                    held_since = self._patience(pipeline, held_since)
                elif self.stop.is_set():
                    quiet.set()
                self._draw(target.name, session)
            if pipeline is not None:
                pipeline.drain(SETTLE_GRACE)   # rows of others our workers took: record them
        except BaseException:
            self.stop.set()
            raise
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        summary: PassSummary = box["summary"]  # type: ignore[assignment]
        summary.errors.extend(rescans.failed)
        return summary

    @staticmethod
    def _patience(pipeline: Pipeline, held_since: float | None) -> float | None:
        """Hold changes for an unwritable journal (disk full) as the daemon does, but not
        for ever: after JOURNAL_PATIENCE seconds they count as failed repairs."""
        if not pipeline.unwritten:
            return None
        now = time.monotonic()
        if held_since is None:
            return now
        if now - held_since > JOURNAL_PATIENCE:
            pipeline.give_up_held(f"not recorded: the journal could not be written for "
                                  f"{JOURNAL_PATIENCE:.0f}s")
            return None
        return held_since

    def _rescan(self, pipeline: Pipeline, rescans: Ticket, out: Outcome) -> None:
        """A directory must be walked and re-sent (a tree op found a directory there again,
        a move could not be kept): as the daemon does, and waited for before the end."""
        src = self.cfg.source(out.op.source)
        for chunk in resend_subtree(src, out.op.path, (out.op.target,)):
            rescans.propose(chunk)
            pipeline.record(chunk, rescans)

    def _idle(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def _draw(self, name: str, session) -> None:
        res, ticket = session.live, session.ticket
        if res is None:
            return
        counts = {"missing": res.missing, "changed": res.changed, "extra": res.extra}
        if ticket is not None and not self.dry_run:
            counts.update(shipped=ticket.done, queued=ticket.pending)
        self.progress.update(f"{name} compared", res.compared, **counts)

    def _say(self, line: str) -> None:
        if not self.quiet:
            self.progress.close()
            print_or_drop(line)   # a closed stdout is no failure of the pass

