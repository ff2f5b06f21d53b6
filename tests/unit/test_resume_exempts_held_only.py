"""A resume made while the daemon is stopped lets go what was held then, not what comes after
(a breaker: alarm_deletes 10; 11 held, the daemon stopped, `resume-deletes`, then a script
deleted 24 more files; the next start counted none of them and all 24 went out)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirrord.config import SourceConfig
from mirrord.daemon_alarm import AlarmWatch
from mirrord.journal import Change, Journal, Outcome
from mirrord.journal.holds import release
from tests.fakes import Clock


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "j.db", {"up": ("t",)}, clock=Clock())
    yield j
    j.close()


def _watch(tmp_path, journal: Journal) -> AlarmWatch:
    """A freshly started daemon's AlarmWatch over `journal` (nothing looked at yet)."""
    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10, alarm_window=60.0,
                       pause_on_alarm=True)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=None, roots=SimpleNamespace(lost={}),
                        schedule_catch_up=lambda s, reason: None,
                        pipeline=SimpleNamespace(journal_failed=print), next_heartbeat=9e9)
    return AlarmWatch(d, clock=Clock(), wall=lambda: 1234.0)


def _ship(journal: Journal, paths) -> None:
    journal.enqueue([Change("up", p, "put") for p in paths])
    journal.ack([Outcome(op, "put", size=1) for op in journal.claim("t", 1000, now=1e12)])


def _scan(paths) -> list[Change]:
    """A catch-up's proposal: one delete per target per gone file."""
    return [Change("up", p, "delete", targets=("t",)) for p in paths]


def test_deletes_made_after_a_resume_while_stopped_are_counted(tmp_path, journal):
    _ship(journal, [f"x/f{i}" for i in range(1, 41)])
    journal.hold_deletes("up", reason="mass-change alarm")
    held = [f"x/f{i}" for i in range(1, 12)]
    journal.enqueue([Change("up", p, "delete") for p in held])   # held rows
    assert release(journal.db, "up")                 # resume-deletes, daemon stopped
    w = _watch(tmp_path, journal)                    # the next start
    later = [f"x/f{i}" for i in range(12, 36)]       # deleted after the resume
    w.observe_scan(_scan(held + later))
    assert w.alarms["up"].count() == 24 and w.alarms["up"].active
    assert journal.held_sources() == {"up"}


def test_what_was_held_is_not_counted_again(tmp_path, journal):
    """The released rows, and files below a released directory removal, are let go."""
    _ship(journal, [f"x/f{i}" for i in range(40)] + [f"d/f{i}" for i in range(30)])
    journal.hold_deletes("up", reason="mass-change alarm")
    journal.enqueue([Change("up", f"x/f{i}", "delete") for i in range(40)]
                    + [Change("up", "d", "delete", tree=True)])
    release(journal.db, "up")
    w = _watch(tmp_path, journal)
    w.observe_scan(_scan([f"x/f{i}" for i in range(40)] + [f"d/f{i}" for i in range(30)]))
    assert w.alarms["up"].count() == 0 and journal.held_sources() == set()


@pytest.mark.parametrize("later, fires", [(5, False), (11, True)])
def test_a_capped_holds_refused_deletes_are_let_go_up_to_their_number(tmp_path, journal,
                                                                       later, fires):
    _ship(journal, [f"x/f{i}" for i in range(100)])
    journal.hold_deletes("up", reason="capped comparison", exempt=50)   # refused, not queued
    release(journal.db, "up")
    w = _watch(tmp_path, journal)
    w.observe_scan(_scan([f"x/f{i}" for i in range(50 + later)]))
    assert w.alarms["up"].count() == later and w.alarms["up"].active == fires


def test_a_resume_seen_while_running_lets_its_comparison_go(tmp_path, journal):
    _ship(journal, [f"x/f{i}" for i in range(40)])
    w = _watch(tmp_path, journal)
    w.tick()                                         # the first look: nothing resumed
    journal.hold_deletes("up", reason="capped comparison", exempt=40)
    w.held.add("up")
    release(journal.db, "up")
    w._next_check = 0.0
    w.tick()                                         # noticed while running
    w.observe_scan(_scan([f"x/f{i}" for i in range(40)]))
    assert w.alarms["up"].count() == 0
