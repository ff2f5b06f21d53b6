"""The mass-change alarm's window spans a restart (mirrord.alarm_window): a breaker's 8 deletes
live, a restart, 8 more while stopped made 16 within seconds with alarm_deletes 10, and no
alarm: the restart had emptied the window."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirrord import alarm_window
from mirrord.alarm import AlarmSettings, SlidingCount, SourceAlarm
from mirrord.config import SourceConfig
from mirrord.daemon_alarm import AlarmWatch
from mirrord.journal import Change, Journal, Outcome
from tests.fakes import Clock


def _alarm(clock) -> SourceAlarm:
    return SourceAlarm("up", AlarmSettings(10, 60.0, True), clock=clock)


class Clocks(alarm_window.Clocks):
    def __init__(self, wall=1_000_000.0, boot=500.0, boot_id="boot-1"):
        self.w, self.b, self.id = wall, boot, boot_id
        super().__init__(wall=lambda: self.w, boot=lambda: self.b, boot_id=lambda: self.id)


def test_ages_and_seed_round_trip():
    clock = Clock(100.0)
    w = SlidingCount(60.0, clock=clock)
    w.add(3)
    clock.now += 20
    w.add(5)
    assert w.ages() == [(20.0, 3), (0.0, 5)]
    later = SlidingCount(60.0, clock=Clock(7.0))
    assert later.seed([(a + 30, n) for a, n in w.ages()]) == 8   # 50 s and 30 s old
    later.clock.now += 11
    assert later.count() == 5                                     # the 50 s one slid out


def _saved(clocks, n=8, age=2.0) -> dict:
    clock = Clock(100.0)
    alarm = _alarm(clock)
    alarm.add(n)
    clock.now += age
    return alarm_window.snapshot({"up": alarm}, clocks)


@pytest.mark.parametrize("wall_step", [0.0, -3600.0, +86400.0])
def test_same_boot_measures_the_absence_on_the_boot_clock_whatever_the_wall_clock(wall_step):
    clocks = Clocks()
    doc = _saved(clocks)
    clocks.b += 5.0                   # 5 s away, by the boot clock
    clocks.w += 5.0 + wall_step       # the wall clock stepped back an hour / ahead a day
    alarm = _alarm(Clock(9.0))
    assert alarm_window.restore({"up": alarm}, doc, clocks) == {"up": 8}
    assert alarm.add(8) and alarm.active                          # 16 > 10: fires


def test_after_a_reboot_the_wall_clock_decides_and_a_step_back_keeps_the_counts():
    clocks = Clocks()
    doc = _saved(clocks)
    clocks.id, clocks.b = "boot-2", 30.0
    clocks.w -= 3600.0                # stepped back: no time passed, counts kept
    assert alarm_window.restore({"up": _alarm(Clock(9.0))}, doc, clocks) == {"up": 8}
    clocks.w += 3600.0 + 61.0         # really a minute later: slid out of the window
    assert alarm_window.restore({"up": _alarm(Clock(9.0))}, doc, clocks) == {}


def test_restored_over_the_threshold_is_left_for_the_caller_to_fire():
    """restore() counts; restore_window() fires (below): set active without firing, a
    restart that turned pause_on_alarm on held nothing (a review)."""
    clocks = Clocks()
    doc = _saved(clocks, n=11)
    alarm = _alarm(Clock(9.0))
    alarm_window.restore({"up": alarm}, doc, clocks)
    assert not alarm.active and alarm.count() == 11 and alarm.add(0) and alarm.fired == 1


def _daemon(src, journal, clocks):
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=None, roots=SimpleNamespace(lost={}),
                        schedule_catch_up=lambda s, reason: None, next_heartbeat=9e9,
                        pipeline=None, set_state=journal.set_state)
    d.alarms = AlarmWatch(d, clock=Clock(50.0), clocks=clocks)
    return d


def test_a_window_restored_over_the_threshold_fires_and_holds_at_start(tmp_path):
    """pause_on_alarm turned on across the restart (or alarm_deletes lowered): the counts
    still in the window fire the alarm at start, and its hold is written before anything
    of the start is counted (a review: restored active, nothing held, all went out)."""
    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10, alarm_window=60.0,
                       pause_on_alarm=True)
    clocks = Clocks()
    j = Journal(tmp_path / "j.db", {"up": ("t",)})
    try:
        j.set_state(alarm_window.STATE_KEY, _saved(clocks, n=15))
        d = _daemon(src, j, clocks)
        d.alarms.restore_window()
        assert d.alarms.alarms["up"].active and j.held_sources() == {"up"}
    finally:
        j.close()


@pytest.mark.parametrize("doc", [None, {}, {"sources": []}, {"sources": {"up": [["x", 1]]}},
                                 {"sources": {"other": [[1, 5]]}}])
def test_a_missing_or_malformed_document_restores_nothing(doc):
    assert alarm_window.restore({"up": _alarm(Clock(9.0))}, doc, Clocks()) == {}


def test_the_daemon_saves_at_a_beat_and_counts_on_after_a_restart(tmp_path):
    """AlarmWatch.save_window / restore_window through a real journal: 8 live, a restart, 8
    proposed by the start's catch-up: the alarm fires and holds."""
    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10, alarm_window=60.0,
                       pause_on_alarm=True)
    clocks = Clocks()

    def daemon(journal):
        d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                            journal=journal, metrics=None, roots=SimpleNamespace(lost={}),
                            schedule_catch_up=lambda s, reason: None, next_heartbeat=9e9,
                            pipeline=SimpleNamespace(journal_failed=print),
                            set_state=journal.set_state)
        d.alarms = AlarmWatch(d, clock=Clock(50.0), clocks=clocks)
        return d

    j = Journal(tmp_path / "j.db", {"up": ("t",)})
    j.enqueue([Change("up", f"x/f{i}", "put") for i in range(40)])
    j.ack([Outcome(op, "put", size=1) for op in j.claim("t", 1000, now=1e12)])
    d = daemon(j)
    d.alarms.restore_window()
    d.alarms.observe(src, [Change("up", f"x/f{i}", "delete") for i in range(8)])
    d.alarms.save_window()                     # the stop
    j.close()
    clocks.b += 4.0
    j = Journal(tmp_path / "j.db", {"up": ("t",)})
    try:
        d = daemon(j)
        d.alarms.restore_window()
        assert d.alarms.alarms["up"].count() == 8
        d.alarms.observe_scan([Change("up", f"x/f{i}", "delete", targets=("t",))
                               for i in range(8, 16)])
        assert d.alarms.alarms["up"].count() == 16 and j.held_sources() == {"up"}
    finally:
        j.close()


def test_a_resume_while_stopped_forgets_the_restored_counts(tmp_path):
    """The operator let what was counted go: the start's first look re-arms from 0."""
    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10, alarm_window=60.0,
                       pause_on_alarm=True)
    clocks = Clocks()
    j = Journal(tmp_path / "j.db", {"up": ("t",)})
    try:
        d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                            journal=j, metrics=None, roots=SimpleNamespace(lost={}),
                            schedule_catch_up=lambda s, reason: None, next_heartbeat=9e9,
                            pipeline=SimpleNamespace(journal_failed=print), set_state=j.set_state)
        j.set_state(alarm_window.STATE_KEY, _saved(clocks, n=11))
        j.hold_deletes("up", reason="alarm")
        j.resume_deletes("up")                     # while stopped
        w = AlarmWatch(d, clock=Clock(50.0), clocks=clocks)
        w.restore_window()                         # takes the resume before it fires
        assert w.alarms["up"].count() == 0 and not w.alarms["up"].active
        assert j.held_sources() == set()
    finally:
        j.close()
