"""What the daemon does about mass changes on a source: count them, raise the alarm, hold deletes.

The daemon's event router hands every batch of live changes to `observe()`
before it is recorded. Counted per source (mirrord.alarm keeps the sliding
window):

- a delete of a file: 1 (an `rm -rf` arrives as one delete per file, then one
  per directory);
- a directory removal (a tree delete): the files the journal's `shipped` table
  knows below it whose own delete is not queued or in this batch, at least 1 -
  so `rm -rf d` counts each file once and `mv d /elsewhere` (one event for the
  whole subtree) counts the files it takes away, also those a rename not done yet
  brings there (mirrord.journal.old_names) and those a re-sent rename left the targets
  without (mirrord.daemon_alarm_resend);
- an overwrite: a write (`put`, not an attribute change) to a file a target of
  the source already holds and will not lose first to a delete counted before (its own,
  or a directory's removal above it: mirrord.journal.held_files), and that is not the
  write's own version: a put that reads the file after the write, or that read it or
  sent it as the target's first copy exactly as it is now (a comparison or a retry that
  sent the file before its event was read: mirrord.journal.first_copies) - index lookups at
  record time, before anything is shipped (at ack time the damage would already
  be on the target). A rename over a file a target holds counts the same (1): it
  replaces that version on every target, and write-to-temp-then-rename-over is how
  ransomware and scripts rewrite a tree as often as a write in place is.

A catch-up's deletes (changes made while the daemon was stopped, or lost in an overflow)
are counted too, through `observe_scan()`: a maintenance script run with mirrord stopped
is the same mistake as one run live, and nothing else would hold its deletes. Its
rewrites are not: it cannot tell a touch from a rewrite without reading the file.
The tree removals queued at start for ops the last run left in flight (mirrord.interrupted)
are counted too, through `observe_start()`, before they are recorded: each the files its
target's `shipped` rows hold below it. Such a removal goes out while the catch-up still
walks, so counted only by the catch-up's deletes of the same files (the directory was
removed or renamed while the daemon was stopped) its hold came after that target had lost
them all; the catch-up's deletes below it are then not counted a second time.
Reconcile passes are not counted: reconcile has `max_delete`.
When the count goes over `alarm_deletes` within `alarm_window` the alarm fires:
one error line, a metric, a status line; with `pause_on_alarm = yes` the
source's deletes are held in the journal (mirrord.journal.holds) before the
batch that fired it is recorded, so at most `alarm_deletes` deletes got through.
The alarm clears itself once the window slides back under the threshold; a hold
stays until `mirrord resume-deletes`, which another process writes: `tick()`
notices it (once a second) and logs one line. The windows span a restart: saved at every
heartbeat and at a clean stop, restored at start (mirrord.alarm_window). The counting of
comparisons lives in mirrord.daemon_alarm_scan. Runs on the main thread only.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from mirrord import alarm_window
from mirrord.alarm import AlarmSettings, SourceAlarm
from mirrord.alarm_batch import count_batch
from mirrord.alarm_moved import MovedNames
from mirrord.alarm_replaced import Replaced
from mirrord.config import SourceConfig
from mirrord.daemon_alarm_resend import Resends
from mirrord.daemon_alarm_scan import CatchUpCounting
from mirrord.journal import Change
from mirrord.logsetup import kv

log = logging.getLogger("mirrord.daemon")

HOLDS_CHECK = 1.0   # seconds between looks at the journal for holds lifted by resume-deletes


class AlarmWatch(CatchUpCounting):
    """The mass-change alarms of a Daemon (`d`): one SourceAlarm per source, and the holds."""

    def __init__(self, daemon, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 clocks: alarm_window.Clocks | None = None):
        self.d = daemon
        self.clock, self.wall = clock, wall
        self.clocks = clocks or alarm_window.Clocks(wall=wall)   # for the window's save
        self.alarms = {s.name: SourceAlarm(s.name, AlarmSettings(s.alarm_deletes, s.alarm_window,
                                                                 s.pause_on_alarm), clock=clock)
                       for s in daemon.cfg.sources}
        self.fired_at: dict[str, float] = {}   # source -> Unix time of the last firing
        self.held: set[str] = set()            # sources whose deletes are held, as last seen
        self._looked = False                   # the journal's holds read once (after a restart)
        self.unwritten: set[str] = set()       # holds the journal could not take yet
        self._next_check = 0.0
        # source -> directories whose files observe_start counted: the start's catch-up
        # proposes those files' deletes too, and they count once (until it is done)
        self.counted_below: dict[str, set[str]] = {}
        # sources resumed (mirrord resume-deletes) while this daemon ran, whose comparison
        # after the resume has not ended: what it proposes was let go by the operator and
        # counts for nothing (the live stream counted what came meanwhile)
        self.resuming: set[str] = set()
        # sources resumed while no daemon ran -> how many deletes their next comparison may
        # propose uncounted: only what the hold stood for and never queued (a capped
        # comparison's refused deletes), not what a script deleted after the resume
        self.exempt: dict[str, int] = {}
        self._resumes_read = False
        self.replaced = Replaced()   # held versions counted as overwritten (once each)
        # directories renamed and re-sent: what their removal takes before the re-send lands
        self.resends = Resends(lambda *at: self.d.journal.files_removed_with(*at),
                               lambda *at: self.d.journal.rows_at_or_below(*at), clock)
        self.moved = MovedNames(clock)   # renames lately: where deleted files went

    # ------------------------------------------------------------ across a restart
    def restore_window(self) -> None:
        """At start, once the journal is open and before anything is counted: count again
        what the last run counted within each window (mirrord.alarm_window)."""
        restored = alarm_window.restore(self.alarms, self.d.journal.get_state(
            alarm_window.STATE_KEY), self.clocks)
        for source, n in sorted(restored.items()):
            log.info(kv(msg="mass-change alarm: counts of the last run still in the window",
                        source=source, count=n))
        # the resumes made while stopped first (they re-arm from 0), then an alarm still
        # over its threshold fires now, as any count would: its hold is written (with
        # pause_on_alarm) before the start's first change is counted (a review: restored
        # active without firing, a restart that turned pause on held nothing)
        self._first_look()
        held = self.d.journal.held_sources()
        for source, alarm in sorted(self.alarms.items()):
            if source in held and alarm.count() > alarm.settings.threshold:
                alarm.active = True     # it fired before the stop, and its hold stands
            elif alarm.add(0):
                self._fired(self.d.cfg.source(source), alarm)
            self._publish(source)

    def save_window(self) -> None:
        """At every heartbeat and at a clean stop: keep what each window holds (a journal
        error is counted: status only)."""
        self.d.set_state(alarm_window.STATE_KEY, alarm_window.snapshot(self.alarms, self.clocks))

    # ------------------------------------------------------------ counting
    def observe(self, src: SourceConfig, changes: list[Change]) -> None:
        """Count a batch of live changes of `src` before it is recorded; fire when over."""
        self._write_holds()
        alarm = self.alarms.get(src.name)
        if alarm is None or not changes:
            return
        self._recheck(src.name)
        n = count_batch(self.d.journal, self.resends, src.name, changes, root=str(src.path),
                        replaced=self.replaced, moved=self.moved)
        if n and alarm.add(n):
            self._fired(src, alarm)
        self._publish(src.name)

    def _recheck(self, source: str) -> None:
        """Before counting changes of a source taken as held while its alarm fires: look at
        the journal now, not at the next second's look, so that a hold lifted meanwhile
        re-arms the alarm before these count (a breaker's second rm -rf, made as soon as
        the released deletes had shipped, counted into the still-firing alarm and went
        out unheld). A read of the holds, only while both hold."""
        alarm = self.alarms.get(source)
        if alarm is not None and alarm.active and source in self.held:
            self._check_holds()

    def _first_look(self) -> None:
        """Once, before the first count: the resumes made while the daemon was stopped."""
        if not self._resumes_read:
            self._resumes_read = True
            self._take_resumed(running=False)

    def _take_resumed(self, *, running: bool = True) -> None:
        """Take the holds resume-deletes lifted (Journal.take_resumed): each source's alarm
        re-arms from 0 (a breaker: resumed while still over alarm_deletes, it never fired
        again and a second rm -rf went through unheld). A resume seen while this daemon
        runs (`running`): the comparison it schedules counts nothing (a resume's own
        comparison fired the alarm again); the live stream counts what comes meanwhile. A
        resume made while no daemon ran (taken at the first look): the start's comparison
        lets go only what the hold stood for - its released rows are queued and not counted
        again anyway, and a capped comparison's refused deletes up to their number - and
        counts the rest: a breaker's script deleting 24 files after such a resume went
        out unheld when the whole comparison counted nothing."""
        for source, unqueued in sorted(self.d.journal.take_resumed().items()):
            alarm = self.alarms.get(source)
            if alarm is None:
                continue
            alarm.reset()
            if running:
                self.resuming.add(source)
            else:
                self.exempt[source] = self.exempt.get(source, 0) + unqueued
            self._publish(source)

    def observe_move(self, src: SourceConfig, dst: str, *, is_dir: bool) -> None:
        """Count a live rename of `src` onto `dst` (a path below the source root) before it
        is recorded: an overwrite when a target of the source holds a file at `dst`. A
        directory can only be renamed over an empty one (rename(2)): nothing replaced."""
        self._write_holds()
        alarm = self.alarms.get(src.name)
        if alarm is None or is_dir or not self.d.journal.overwrites(src.name, dst):
            return
        if alarm.add(1):
            self._fired(src, alarm)
        self._publish(src.name)

    def renamed(self, src: SourceConfig, old: str, new: str, *, is_dir: bool, resent: bool) -> None:
        """A live rename of `src` recorded; `resent`: a directory's, not kept as a move
        (mirrord.daemon_alarm_resend)."""
        if src.name in self.alarms:
            self.resends.renamed(src.name, old, new, resent=resent, is_dir=is_dir)
            self.moved.renamed(src.name, old, new)

    def _fired(self, src: SourceConfig, alarm: SourceAlarm) -> None:
        s = alarm.settings
        self.fired_at[src.name] = self.wall()
        action = (f"deletes held until `mirrord resume-deletes --source {src.name}`" if s.pause
                  else "deletes go on (pause_on_alarm = no)")
        log.error(kv(msg="mass-change alarm: too many deletes or overwrites", source=src.name,
                     count=alarm.count(), alarm_deletes=s.threshold, alarm_window=f"{s.window:g}s",
                     action=action))
        if self.d.metrics is not None:
            self.d.metrics.alarm_fired(src.name)
        if s.pause:
            self.unwritten.add(src.name)
            self._write_holds()
        self.d.next_heartbeat = 0.0    # the status row shows it at the end of this cycle

    def _write_holds(self) -> None:
        """Write the holds not yet in the journal; a journal error is counted and retried."""
        for source in sorted(self.unwritten):
            alarm = self.alarms[source]
            reason = (f"mass-change alarm: {alarm.count()} deletes or overwrites within "
                      f"{alarm.settings.window:g}s (alarm_deletes = {alarm.settings.threshold})")
            try:
                self.d.journal.hold_deletes(source, reason=reason, since=self.fired_at.get(source))
            except Exception as exc:  # noqa: BLE001 - disk full: keep trying, deletes flow meanwhile
                if self.d.pipeline is not None:   # None at start (restore_window): next look
                    self.d.pipeline.journal_failed(exc)
                return
            self.unwritten.discard(source)
            self.held.add(source)

    # ------------------------------------------------------------ each cycle
    def tick(self) -> None:
        """Slide the windows (an alarm clears by itself), and once a second notice holds
        lifted by `mirrord resume-deletes` (another process)."""
        self._write_holds()
        for name, alarm in self.alarms.items():
            if alarm.update():
                log.warning(kv(msg="mass-change alarm cleared", source=name, count=alarm.count(),
                               alarm_deletes=alarm.settings.threshold))
        now = self.clock()
        if now >= self._next_check:
            self._next_check = now + HOLDS_CHECK
            self._check_holds()
            self.resends.settle()
        for name in self.alarms:
            self._publish(name)

    def _check_holds(self) -> None:
        self._first_look()
        reasons = self.d.journal.hold_reasons()
        held = set(reasons)
        if not self._looked:   # first look: holds that outlived a restart
            self._looked = True
            for source in sorted(held - self.held):
                # the reason names the cause: a mass-change alarm, or a comparison over
                # [reconcile] max_delete (daemon_roots), which this line used to call an alarm
                log.error(kv(msg="deletes are held", source=source, reason=reasons[source],
                             action=f"mirrord resume-deletes --source {source}"))
        else:
            self._take_resumed()
            for source in sorted(self.held - held - self.unwritten):
                log.warning(kv(msg="deletes resumed (mirrord resume-deletes); comparing the "
                                   "source with what was shipped, uncapped", source=source))
                # a hold set by a capped comparison (daemon_roots.Roots.compared): the
                # deletes over [reconcile] max_delete were refused, never queued; resuming
                # says they are meant, so compare again without the cap. Before, they stayed
                # on the target and every restart's comparison held the source again
                known = any(src.name == source for src in self.d.cfg.sources)
                if known and source not in self.d.roots.lost:   # a lost one is compared when back
                    self.d.schedule_catch_up(self.d.cfg.source(source), reason="resumed")
        self.held = held

    def holds(self, source: str) -> bool:
        """Whether `source`'s deletes are held (as last seen, or waiting to be written); read
        by the shipper's worker threads (a set membership test: safe without a lock)."""
        return source in self.held or source in self.unwritten

    def _publish(self, source: str) -> None:
        if self.d.metrics is not None:
            alarm = self.alarms[source]
            self.d.metrics.set_alarm(source, active=alarm.active, count=alarm.count(),
                                     held=source in self.held or source in self.unwritten)

    def to_json(self) -> dict:
        """Per source, for the daemon's state row: state ('alarm' or 'ok'), count in the window,
        settings, times fired, last firing (Unix seconds) and whether deletes are held."""
        out = {}
        for name, alarm in self.alarms.items():
            doc = alarm.to_json()
            doc["fired_at"] = self.fired_at.get(name)
            doc["deletes_held"] = name in self.held or name in self.unwritten
            out[name] = doc
        return out
