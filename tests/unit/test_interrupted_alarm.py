"""The start-up tree removals of mirrord.interrupted pass the mass-change alarm first
(daemon_lifecycle.undo_interrupted, daemon_alarm.AlarmWatch.observe_start): a real journal
left with a row in flight, a real source directory; no target, no daemon."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirrord.config import SourceConfig
from mirrord.daemon_alarm import AlarmWatch
from mirrord.daemon_lifecycle import undo_interrupted
from mirrord.journal import Change, Journal, Outcome

FILES = 12


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def crashed(tmp_path):
    """`big/` with FILES files shipped to t, a put into big/new/ in flight when the daemon
    died, then `big/` moved out of the source: the daemon's parts as undo_interrupted and
    AlarmWatch read them."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "keep.jpg").write_bytes(b"k")
    src = SourceConfig("up", root, ("t",), alarm_deletes=5, pause_on_alarm=True)
    path = tmp_path / "j.db"
    j = Journal(path, {"up": ("t",)}, claimer="0:0")   # pid 0: the run that was killed
    j.enqueue([Change("up", f"big/f{i:02}.jpg", "put") for i in range(FILES)])
    j.ack([Outcome(op, "put", size=1) for op in j.claim("t", 1000, now=1e12)])
    j.enqueue([Change("up", "big/new/x.jpg", "put")])
    assert len(j.claim("t", 1000, now=1e12)) == 1   # in flight: the kill -9 comes here
    j.close()
    journal = Journal(path, {"up": ("t",)}, reset_claims=False)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=None, next_heartbeat=9e9,
                        pipeline=SimpleNamespace(journal_failed=lambda exc: None))
    d.alarms = AlarmWatch(d, clock=Clock(), wall=lambda: 1234.0)
    yield d
    journal.close()


def test_a_start_up_removal_over_the_threshold_is_held_before_it_is_queued(crashed):
    d = crashed
    undo_interrupted(d)
    # the shipped files, and big/new/x.jpg: its put was in flight when the daemon died, so
    # it may be on the target (done, not acked) and the removal takes it too
    assert d.alarms.alarms["up"].count() == FILES + 1
    assert d.journal.held_sources() == {"up"}
    # the removal of big/ is held; the re-run put below it waits for the removal
    assert [(op.path, op.kind) for op in d.journal.claim("t", 100, now=1e12)] == []
    d.journal.resume_deletes("up")
    assert [(op.path, op.kind, op.tree) for op in d.journal.claim("t", 100, now=1e12)] == [
        ("big", "delete", True)]


def test_the_start_catch_up_does_not_count_the_same_files_again(crashed):
    d = crashed
    undo_interrupted(d)
    scan = [Change("up", f"big/f{i:02}.jpg", "delete", targets=("t",)) for i in range(FILES)]
    d.alarms.observe_scan(scan)
    assert d.alarms.alarms["up"].count() == FILES + 1      # counted once, at the removal
    d.alarms.catch_up_done("up")
    d.alarms.observe_scan([Change("up", "other/a.jpg", "delete", targets=("t",)),
                           Change("up", "big/f00.jpg", "delete", targets=("t",))])
    # a later catch-up counts what it finds; not a file below big/, whose removal is still
    # queued (held): the removal counted it
    assert d.alarms.alarms["up"].count() == FILES + 2


def test_rows_under_the_starting_daemons_own_id_are_a_previous_lifes(tmp_path):
    """A power loss, then a boot: the daemon started by systemd can get the pid and start
    time (clock ticks since boot) the last one had, so the rows that one left in flight
    carry the new daemon's own claimer id. It has claimed nothing yet: they are undone and
    run again, not left in flight (never shipped) until the next restart."""
    from mirrord import claimer

    root = tmp_path / "src"
    root.mkdir()
    src = SourceConfig("up", root, ("t",))
    path = tmp_path / "j.db"
    before = Journal(path, {"up": ("t",)}, claimer=claimer.me())   # the same id, last boot
    before.enqueue([Change("up", "a.jpg", "put")])
    assert len(before.claim("t", 10, now=1e12)) == 1
    before.close()
    journal = Journal(path, {"up": ("t",)}, reset_claims=False)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=None, next_heartbeat=9e9,
                        pipeline=SimpleNamespace(journal_failed=lambda exc: None))
    d.alarms = AlarmWatch(d, clock=Clock(), wall=lambda: 1234.0)
    try:
        assert undo_interrupted(d, at_start=True) == 1
        assert [op.path for op in journal.claim("t", 10, now=1e12)] == ["a.jpg"]
    finally:
        journal.close()
