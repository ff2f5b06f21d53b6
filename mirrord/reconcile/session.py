"""A reconcile session: passes over one target at a time, shipped through the Pipeline,
under the safety rules that hold in every pass, the command's and the daemon's.

A session runs beside the journal's owner, never as it: on the daemon's scanner
thread, or on the `mirrord reconcile` command's pass thread. It only proposes:
each batch of repairs goes with a Ticket to the `outbox`, and the owner records
it (Pipeline.record), ships it and resolves the ticket from the journal. The
session then waits on the ticket:

- deletes go out only once every repair of the pass succeeded; a failed,
  stopped or timed-out repair refuses them for this pass (the journal still
  retries the repairs). Before this rule held in the daemon too, its scheduled
  passes deleted although repairs had failed.
- the engine's own rules (mirrord.reconcile.deletes): complete pass, readable
  source, same non-empty root, max_delete.

`deleted` and `bytes` count what was done. With no outbox (a dry run) nothing
is proposed: the plan is collected and printed. record() writes the one summary
shape (mirrord.reconcile.result.PassSummary) to the state database.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from mirrord.config import Config, SourceConfig
from mirrord.journal import Change, Journal
from mirrord.logsetup import kv, redact_doc
from mirrord.pipeline import Ticket
from mirrord.reconcile.engine import reconcile_pass
from mirrord.reconcile.result import STATE_KEY, PassSummary, ReconcileResult
from mirrord.targets.base import Target
from mirrord.trash import retention

log = logging.getLogger("mirrord.reconcile")

PLAN_LIMIT = 1000   # plan entries per target kept for --dry-run --json
STOPPED = "stopped before it was shipped"

Outbox = Callable[[list[Change], Ticket], None]


class Session:
    """Passes for one kind of run: `outbox` None is a dry run; `wait` (seconds, None:
    no limit) bounds each wait for the rows of a pass; `stop` ends a pass early
    (then it deletes nothing). `quiet`, when given, is set by the journal's owner once,
    after a stop, no transfer is under way and every outcome is recorded: a stopped pass
    waits for it (at most `grace` seconds) before counting what is left as not shipped.
    Without it, the transfers the workers finished after the stop were counted as not
    shipped (`mirrord reconcile`, Ctrl-C: 18,812 said, 18,182 left)."""

    def __init__(self, cfg: Config, *, outbox: Outbox | None, reason: str,
                 delete: bool | None = None, checksum: bool | None = None,
                 wait: float | None = None, stop: threading.Event | None = None,
                 say: Callable[[str], None] = lambda line: None,
                 quiet: threading.Event | None = None, grace: float | None = None):
        self.cfg, self.outbox, self.reason = cfg, outbox, reason
        self.delete, self.checksum, self.wait = delete, checksum, wait
        self.stop = stop or threading.Event()
        self.quiet, self.grace = quiet, grace
        self.say = say
        self.live: ReconcileResult | None = None   # the pass running now (progress display)
        self.ticket: Ticket | None = None          # the rows it waits for now
        self.trash: dict[str, retention.Summary] = {}   # target -> retention run after its pass

    def run_target(self, target: Target) -> PassSummary:
        """Every source of the opened `target`, one pass each; never raises for target or
        source trouble (it is in the summary's errors)."""
        summary = PassSummary(target.name, self.reason, dry_run=self.outbox is None)
        started = time.monotonic()
        for src in self.cfg.sources_for(target.name):
            if self.stop.is_set():
                summary.errors.append(f"stopped before source {src.name}")
                break
            self._source(target, src, summary)
        if self.outbox is not None and not self.stop.is_set():   # every real pass purges too
            kept = retention.run_for(self.cfg, target, stop=self.stop)
            if kept is not None:
                self.trash[target.name] = kept
        summary.finish(time.monotonic() - started)
        return summary

    def _source(self, target: Target, src: SourceConfig, summary: PassSummary) -> None:
        repairs = self.ticket = Ticket(target.name)
        deletes: list[Change] = []
        result = reconcile_pass(self.cfg, target, src, emit=lambda ch: self._propose(ch, repairs, summary),
                                emit_deletes=deletes.extend, delete=self.delete,
                                checksum=self.checksum, stop=self.stop,
                                progress=self._progress)
        summary.add(result)
        if self.outbox is None:
            self._plan_deletes(target.name, result, deletes, summary)
            return
        settled = self._settle(repairs)
        summary.bytes += repairs.bytes
        summary.errors.extend(_condensed(repairs))
        if not deletes:
            return
        why = None
        if self.stop.is_set():
            why = "the pass was stopped"
        elif repairs.failed:
            why = f"{len(repairs.failed)} repairs failed"
        elif not settled:
            why = "the repairs did not finish (stopped, or still queued)"
        if why is not None:
            swaps = sum(c.kind != "delete" for c in deletes)   # mirrord.type_swaps
            also = (f", nor sending the {swaps} repairs that replace what they remove"
                    if swaps else "")
            summary.refuse(result.deleted, f"{why} on target {target.name!r}: not deleting "
                                           f"{result.deleted} extra entries this pass{also}")
            return
        removals = self.ticket = Ticket(target.name)
        for i in range(0, len(deletes), 500):
            self._propose(deletes[i:i + 500], removals, summary)
        self._settle(removals)
        summary.deleted += max(0, result.deleted - removals.failed_deletes)
        summary.errors.extend(_condensed(removals))

    def _propose(self, changes: list[Change], ticket: Ticket, summary: PassSummary) -> None:
        if self.outbox is None:   # dry run: the plan only
            room = PLAN_LIMIT - len(summary.would_send)
            summary.would_send.extend(describe(c) for c in changes[:max(0, room)])
            for c in changes:
                self.say(f"would send {ticket.target}: {describe(c)}")
            return
        ticket.propose(changes)
        self.outbox(changes, ticket)

    def _plan_deletes(self, target: str, result: ReconcileResult, deletes: list[Change],
                      summary: PassSummary) -> None:
        summary.bytes += result.bytes
        summary.deleted += result.deleted
        # the deletes, and the repairs that replace what they remove (mirrord.type_swaps)
        removals = [c for c in deletes if c.kind == "delete"]
        swaps = [c for c in deletes if c.kind != "delete"]
        summary.would_delete.extend(describe(c) for c in removals[:PLAN_LIMIT])
        for c in removals:
            self.say(f"would delete {target}: {describe(c)}")
        room = PLAN_LIMIT - len(summary.would_send)
        summary.would_send.extend(describe(c) for c in swaps[:max(0, room)])
        for c in swaps:
            self.say(f"would send {target}: {describe(c)} (replacing what is deleted there)")
        # what a real run would refuse (its reason is in delete_refusal, printed with the
        # summary): a dry run saying only 'differs' promised deletes the real run refuses
        room = PLAN_LIMIT - len(summary.would_refuse)
        summary.would_refuse.extend(result.refused[:max(0, room)])
        for path in result.refused:
            self.say(f"would refuse to delete {target}: {path}")

    def _settle(self, ticket: Ticket) -> bool:
        """Wait for the ticket's rows; on stop or timeout the rest count as failed (after a
        stop, once the transfers under way have ended and been recorded: `quiet`)."""
        if ticket.wait(self.wait, self.stop):
            return True
        if self.stop.is_set() and self.quiet is not None:
            ticket.wait(self.grace, self.quiet)
        ticket.give_up(STOPPED if self.stop.is_set() else
                       f"still queued after {self.wait:.0f}s (left in the journal; shipped later)")
        return False

    def _progress(self, res: ReconcileResult) -> None:
        self.live = res


def _condensed(ticket: Ticket) -> list[str]:
    """A ticket's failures as error lines, those with the same cause (the error text with
    the failing path left out: errors.cause_of) in one line, the first one's text shown: a
    target that went down in a repair of thousands of files (or a run stopped early) printed and
    stored one identical error per file, the first 20 of them on the terminal."""
    by_cause: dict[str, list[tuple[str, str]]] = {}
    for cause, what, why in ticket.causes:   # cause: the error without its own path
        by_cause.setdefault(cause, []).append((what, why))
    out = []
    for cause, failures in by_cause.items():
        what, why = failures[0]
        if cause == STOPPED:
            out.append(f"stopped: {len(failures)} changes not shipped yet (they stay queued in "
                       f"the journal: the daemon or the next reconcile ships them)")
        elif len(failures) == 1:
            out.append(f"{what}: {why}")
        else:
            out.append(f"{len(failures)} changes failed (first: {what}): {why}")
    return out


def describe(change: Change) -> str:
    """A change as the plan prints it: the path, '/' after a directory."""
    return change.path + ("/" if change.tree or change.kind == "mkdir" else "")


def record(journal: Journal, summary: PassSummary, *, metrics=None) -> None:
    """Write the summary as `reconcile:{target}` (the one shape status reads), log it, and
    count it in metrics. Journal errors propagate (the caller holds the journal). Stored
    with any credential in its strings masked (logsetup.redact_doc), as status shows it:
    an rsync target's ssh error could quote its ssh_command's password, and the state
    database kept it whole (a review, helper-144)."""
    doc = redact_doc(summary.to_state())
    journal.set_state(STATE_KEY.format(target=summary.target), doc)
    level = logging.INFO if summary.in_sync else logging.WARNING
    log.log(level, kv(msg="reconcile pass done", target=summary.target, reason=summary.reason,
                      seconds=round(summary.duration, 3), **summary.counts,
                      errors=len(summary.errors),
                      delete_refusal="; ".join(summary.delete_refusal) or ""))
    if metrics is not None:
        counts = {k: summary.counts[k] for k in ("compared", "missing", "changed", "extra",
                                                 "deleted", "bytes")}
        metrics.reconcile_done(summary.target, summary.finished_at, summary.duration,
                               dict(counts, errors=len(summary.errors)))
