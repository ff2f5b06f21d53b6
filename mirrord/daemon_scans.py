"""The daemon's scans: which are queued (catch-up, subtree check, subtree re-send), what
is done with their results (catch-up summaries to the state, then the scan hooks), and
the narrow Host through which the reconcile schedule queues its passes.

At most one catch-up per source and one check per subtree is queued at a time: a
storm of overflows or rescan requests costs one walk each, not hundreds.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import time

from mirrord import daemon_roots
from mirrord.config import SourceConfig
from mirrord.logsetup import hook_name, kv
from mirrord.reconcile import session as reconcile_session
from mirrord.reconcile.result import PassSummary
from mirrord.scanner import catch_up_job, subtree_job
from mirrord.trash import retention

log = logging.getLogger("mirrord.daemon")

# the catch-ups whose deletes [reconcile] max_delete caps (mirrord.catchup: the source's
# file system may be the wrong one); an overflow's rescan follows the live stream's deletes
CAPPED = frozenset({"start", "root-back"})
# the catch-ups after which changes may have gone unread: they compare ctimes with the bound
UNREAD = frozenset({"start", "root-back", "overflow", "cycle-error", "journal-recovered"})
TRASH_SOON = 5.0     # seconds after a keeping target's delete or overwrite: its trash listed
TRASH_EVERY = 60.0   # seconds: at most one such run per target this often


class Scans:
    """Queues scan jobs on a Daemon's (`d`) scanner and takes their results, on the main thread."""

    def __init__(self, daemon):
        self.d = daemon
        self.retention_due: dict[str, float] = {}   # target -> monotonic time of its next run
        self.retention_queued: set[str] = set()
        self.retention_last: dict[str, float] = {}  # target -> monotonic time of its last run
        self._waiting: set[tuple[str, str]] = set()   # (source, reason) of catch-ups not started
        self._walks: dict[str, int] = {}              # source -> catch-ups queued or running
        self._links_said = False                      # hard links elsewhere: said once a run

    def retention(self, _daemon=None) -> None:
        """Queue a trash retention run (mirrord.trash.retention) for each keeping target that
        is due: at start, then every retention.INTERVAL seconds, at most one queued per
        target. A periodic hook (main thread); the run itself is on the scanner thread."""
        now = time.monotonic()
        for name in self.d.keep:
            if name in self.retention_queued or now < self.retention_due.get(name, 0.0):
                continue
            self.retention_queued.add(name)
            self.retention_due[name] = now + retention.INTERVAL
            self.retention_last[name] = now
            target, cfg, stop = self.d.targets[name], self.d.cfg, self.d.stop_requested
            self.d.scanner.add(f"retention:{name}", lambda _emit, t=target: (
                "retention", t.name, retention.run_for(cfg, t, stop=stop)))

    def trash_changed(self, outcomes) -> None:
        """Outcomes just acked (main thread): a delete or an overwrite shipped to a keeping
        target may have kept something, and the trash figures (status, heartbeat, the
        mirrord_trash_* metrics) come from the last retention run, up to INTERVAL old: an
        operator checking after an `rm -rf` read "0 files kept" for minutes (a trial). Such
        a target's next run is brought forward to TRASH_SOON seconds from now, and never
        sooner than TRASH_EVERY after its last (a stream of deletes lists the trash at most
        that often)."""
        now = time.monotonic()
        for out in outcomes:
            name = out.op.target
            if name not in self.d.keep or out.error is not None or out.busy:
                continue
            # a put or move keeps where it replaced a file (which the outcome does not say):
            # a stream of them lists the trash once per TRASH_EVERY at most
            if (out.shipped_kind or out.op.kind) not in ("delete", "put", "move"):
                continue
            soon = max(now + TRASH_SOON, self.retention_last.get(name, 0.0) + TRASH_EVERY)
            if soon < self.retention_due.get(name, float("inf")):
                self.retention_due[name] = soon

    def retention_done(self, name: str, summary: retention.Summary) -> None:
        """Store a run's summary as `trash:{target}` (status; its `base` is the high-water
        mark of a percentage cap: retention.percent_base), for the heartbeat and metrics.
        The daemon's retention runs and its reconcile passes' (a breaker: those were never
        stored, so a tree mirrored and removed between two runs was never in the mark)."""
        self.d.trash[name] = summary
        self.d.set_state(f"trash:{name}", summary.to_state())
        if self.d.metrics is not None:
            self.d.metrics.set_trash(name, files=summary.files, bytes_=summary.bytes,
                                     oldest=summary.oldest, purged=summary.purged)

    def _scan_options(self, src: SourceConfig) -> dict:
        """Per target of `src`: whether it keeps directories and permission bits (a row
        shipped before modes were recorded then counts as different, and gets its mode
        sent once), the rule that keeps deletes below a lost sub-mount back, and the
        source's hard-link index, which every walk teaches (mirrord.hardlinks)."""
        mine = [t for t in src.targets if t in self.d.targets]
        mounts = getattr(self.d, "mounts", {}).get(src.name)
        index = getattr(self.d, "links", None)
        return {"directories": {t: self.d.targets[t].features.directories for t in mine},
                "modes": {t: self.d.targets[t].features.keeps_mode for t in mine},
                "refuse": None if mounts is None else functools.partial(mounts.refusal, scan=True),
                "links": None if index is None else functools.partial(index.learn, src.name)}

    def catch_up(self, src: SourceConfig, *, reason: str) -> None:
        """Walk `src` and compare it with what was shipped (after a start, an inotify queue
        overflow, a root back, ...). A request while one of the same reason waits in the
        queue is that one; a request while one runs queues another, which walks after it:
        the running walk may have passed the directories whose events the new request is
        about (a breaker: an overflow during the overflow's own rescan was dropped, and
        status said in_sync with 212 files missing until a reconcile pass).
        `catchups_pending` holds the source until its last walk is collected."""
        key = (src.name, reason)
        if key in self._waiting:
            return
        self._waiting.add(key)
        self._walks[src.name] = self._walks.get(src.name, 0) + 1
        self.d.catchups_pending.add(src.name)
        rc = self.d.cfg.reconcile
        # where the file system may be the wrong one (mounted by mistake while the daemon
        # was stopped or the root was lost): deletes capped as a reconcile pass's
        cap = (rc.max_delete, rc.max_delete_percent) if reason in CAPPED else None
        if cap is not None and src.name in self.d.roots.moved:   # any delete: a wrong volume?
            cap = (*cap, self.d.roots.moved[src.name])
        # where changes may have gone unread (a stop, a lost root, lost events), files changed
        # after the source's watched-through bound are put even where size and mtime match
        # (it does not move while this walk is queued: mirrord.watched_through); a walk with
        # nothing lost (the links walk, a resume) would only send the latest changes twice
        bound = self.d.watched.get(src.name) if reason in UNREAD else None
        walk = catch_up_job(self.d.cfg.mirrord.journal_path, src, stop=self.d.stop_requested,
                            kind="catchup", detail=reason, cap=cap, changed_after_ns=bound,
                            **self._scan_options(src))

        def job(emit):
            self._waiting.discard(key)   # running now: a new request queues another
            return walk(emit)

        self.d.scanner.add(f"catchup:{src.name}", job)

    def _walk_done(self, source: str) -> bool:
        """One catch-up of `source` collected; True when it was the last one queued."""
        left = self._walks.get(source, 1) - 1
        if left > 0:
            self._walks[source] = left
            return False
        self._walks.pop(source, None)
        return True

    def subtree_check(self, src: SourceConfig, rel: str,
                      targets: tuple[str, ...] | None = None) -> None:
        """Compare one subtree with what was shipped to `targets` (default: all of the
        source's): a directory that is not watched yet, whose events may have been lost, or
        that was just moved on a target. At most one check per subtree and targets waits in
        the queue; a request made while one runs queues another, since the running one may
        have read the shipped rows before whatever asked for the check was recorded."""
        key = (src.name, rel, targets)
        if key in self.d.subtree_checks_pending:
            return
        self.d.subtree_checks_pending.add(key)
        check = catch_up_job(self.d.cfg.mirrord.journal_path, src, stop=self.d.stop_requested,
                             kind="subtree-check", detail=rel, subtree=rel, targets=targets,
                             **self._scan_options(src))

        def job(emit):
            self.d.subtree_checks_pending.discard(key)
            return check(emit)

        self.d.scanner.add(f"subtree-check:{src.name}:{rel}", job)

    def subtree(self, src: SourceConfig, rel: str, targets: tuple[str, ...]) -> None:
        """Re-send a whole directory (a move that could not be kept as a move)."""
        self.d.scanner.add(f"subtree:{src.name}:{rel}", subtree_job(src, rel, targets))

    def rescan(self, out) -> None:
        """An outcome asks for its directory to be walked and re-sent (Pipeline.on_rescan)."""
        self.subtree(self.d.cfg.source(out.op.source), out.op.path, (out.op.target,))

    def check_moved(self, out) -> None:
        """A directory was moved on a target (Outcome.check, Pipeline.on_check): compare
        what lies below its new name with what was shipped there, on that target only."""
        self.subtree_check(self.d.cfg.source(out.op.source), out.op.path, (out.op.target,))

    def journal_lost(self) -> None:
        """Held changes were dropped (the journal was unwritable too long): look again."""
        for src in self.d.cfg.sources:
            self.d.catchups_pending.discard(src.name)
            self.catch_up(src, reason="journal-recovered")

    def collect(self) -> None:
        while True:
            try:
                name, result = self.d.scanner.results.get_nowait()
            except queue.Empty:
                return
            if name.startswith("catchup:"):
                # its last chunks may still wait in the scan queue (put there before the
                # result, after this turn's "record scans"): recorded first, so status never
                # shows no catch-up and nothing pending while proposals are unrecorded. One
                # take empties it: it holds at most SCAN_QUEUE_CHUNKS, what one take records
                self.d._take_proposals()
                self.d.watched.catch_up_done(name.split(":", 1)[1],
                                             ok=not isinstance(result, Exception))
                if self._walk_done(name.split(":", 1)[1]):
                    self.d.catchups_pending.discard(name.split(":", 1)[1])
                    self.d.alarms.catch_up_done(name.split(":", 1)[1])
            if name.startswith("retention:"):
                self.retention_queued.discard(name.split(":", 1)[1])
                if isinstance(result, tuple) and result[2] is not None:
                    self.retention_done(result[1], result[2])
            if isinstance(result, Exception):
                continue
            if isinstance(result, tuple) and result[0] == "catchup":
                _, source, reason, res = result
                log.info(kv(msg="catch-up done", source=source, reason=reason, files=res.files,
                            proposed=json.dumps(res.proposed), refused_deletes=res.refused_deletes,
                            unreadable=len(res.unreadable), changed_in_place=res.by_ctime,
                            seconds=round(res.seconds, 3)))
                self.d.set_state(f"catchup:{source}", {
                    "at": time.time(), "reason": reason, "files": res.files,
                    "proposed": res.proposed, "refused_deletes": res.refused_deletes,
                    "changed_in_place": res.by_ctime,
                    "unreadable": res.unreadable[:20], "seconds": res.seconds})
                if reason == "start" and not self.d.catchups_pending:
                    self._links_elsewhere()
            for hook in self.d.scan_hooks:   # each on its own: one failing must not starve the rest
                self.d._guarded(f"scan hook {hook_name(hook)}", hook, self.d,
                                name, result)


    def _links_elsewhere(self) -> None:
        """Once every start walk is done: say (once a run) how many hard-linked files have
        names outside every source's root or excluded. A write through such a name reaches
        no target until a reconcile, and status stays in_sync meanwhile (a breaker; README,
        "What is mirrored live")."""
        count, sample = self.d.links.elsewhere()
        if count and not self._links_said:
            self._links_said = True
            log.warning(kv(msg="hard-linked files have names outside every source root or "
                               "excluded: a write through those names is mirrored only by "
                               "reconcile", files=count, e_g=", ".join(sample)))


class ReconcileHost:
    """mirrord.reconcile.schedule.Host over a Daemon: nothing else of it is reachable."""

    def __init__(self, daemon):
        self._d = daemon
        self.targets = daemon.targets
        self.stop = daemon.stop_requested

    def backlog_over(self, limit: int) -> bool:
        return self._d.journal.has_more_ops_than(limit)

    def catching_up(self) -> bool:
        return bool(self._d.catchups_pending)

    def add_scan(self, name: str, job) -> None:
        self._d.scanner.add(name, job)

    def record(self, summary: PassSummary) -> None:
        try:
            reconcile_session.record(self._d.journal, summary, metrics=self._d.metrics)
        except Exception as exc:  # noqa: BLE001 - status only; the pass itself is done
            self._d.pipeline.journal_failed(exc)

    def record_trash(self, target: str, summary: retention.Summary) -> None:
        self._d.scans.retention_done(target, summary)

    def refused(self, targets: set[str]) -> None:
        daemon_roots.hold_empty(self._d, "after a reconcile pass", refused=targets)
