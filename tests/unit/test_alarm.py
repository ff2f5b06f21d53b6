"""The mass-change alarm's arithmetic on a fake clock: threshold, window slide, re-arm,
bounded memory; and the [source:NAME] alarm keys."""

from __future__ import annotations

import pytest

from mirrord.alarm import BUCKET, AlarmSettings, SlidingCount, SourceAlarm
from mirrord.config import load
from mirrord.errors import ConfigError
from tests.fakes import Clock


def test_fires_only_when_the_count_goes_over_the_threshold_and_only_once():
    clock = Clock()
    alarm = SourceAlarm("up", AlarmSettings(threshold=10, window=60.0), clock=clock)
    fired = [alarm.add(1) for _ in range(10)]
    assert fired == [False] * 10 and not alarm.active        # exactly 10 is not "more than 10"
    assert alarm.add(1) is True and alarm.active             # the 11th fires
    assert [alarm.add(1) for _ in range(100)] == [False] * 100   # one edge, not one per delete
    assert alarm.fired == 1 and alarm.count() == 111
    assert alarm.to_json()["state"] == "alarm"


def test_a_reset_forgets_the_count_and_fires_again_on_the_next_mass_change():
    """resume-deletes re-arms the alarm (a breaker: still over the threshold after a
    resume, it never fired again and a second rm -rf went out unheld)."""
    clock = Clock()
    alarm = SourceAlarm("up", AlarmSettings(threshold=10, window=600.0), clock=clock)
    assert alarm.add(50) is True
    alarm.reset()
    assert not alarm.active and alarm.count() == 0 and alarm.fired == 1
    assert alarm.add(10) is False and alarm.add(1) is True and alarm.fired == 2


def test_a_batch_counts_all_its_changes_at_once():
    clock = Clock()
    alarm = SourceAlarm("up", AlarmSettings(threshold=10, window=60.0), clock=clock)
    assert alarm.add(50) is True and alarm.count() == 50


def test_changes_spread_wider_than_the_window_never_fire():
    clock = Clock()
    alarm = SourceAlarm("up", AlarmSettings(threshold=10, window=60.0), clock=clock)
    for _ in range(100):           # 1 delete every 7 s: at most 9 in any 60 s
        assert alarm.add(1) is False
        clock.now += 7.0
    assert alarm.fired == 0 and alarm.count() <= 9


def test_the_alarm_clears_when_the_window_slides_below_and_rearms():
    clock = Clock()
    alarm = SourceAlarm("up", AlarmSettings(threshold=5, window=60.0), clock=clock)
    assert alarm.add(6) is True
    clock.now += 30.0
    assert alarm.update() is False and alarm.active            # still within the window
    clock.now += 30.0                                           # the 6 are 60 s old: gone
    assert alarm.update() is True and not alarm.active and alarm.count() == 0
    assert alarm.update() is False                              # cleared once
    assert alarm.to_json()["state"] == "ok"
    assert [alarm.add(1) for _ in range(6)] == [False] * 5 + [True]   # re-armed
    assert alarm.fired == 2


def test_the_window_slides_partially():
    clock = Clock()
    count = SlidingCount(10.0, clock=clock)
    count.add(3)
    clock.now += 6.0
    count.add(4)
    assert count.count() == 7
    clock.now += 4.0               # the first 3 are exactly 10 s old: out
    assert count.count() == 4
    clock.now += 6.0
    assert count.count() == 0


def test_memory_is_bounded_by_the_window_not_the_number_of_events():
    clock = Clock()
    count = SlidingCount(60.0, clock=clock)
    for _ in range(100_000):
        count.add(1)
        clock.now += 0.001
    # the last 60 s of 100 s, plus at most one bucket's worth still counted: never fewer
    assert 60_000 <= count.count() <= 60_000 + BUCKET / 0.001
    assert len(count._buckets) <= 60.0 / BUCKET + 1


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        SlidingCount(0)


def _cfg(tmp_path, extra: str):
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "mirrord.ini"
    path.write_text(f"[mirrord]\nstate_dir = ./state\n\n[source:up]\npath = ./src\ntargets = t\n"
                    f"{extra}\n[target:t]\ntype = local\npath = ./mirror\n")
    return path


def test_alarm_keys_default_and_parse(tmp_path):
    src = load(_cfg(tmp_path, "")).source("up")
    assert (src.alarm_deletes, src.alarm_window, src.pause_on_alarm) == (1000, 60.0, False)
    src = load(_cfg(tmp_path, "alarm_deletes = 10\nalarm_window = 30s\npause_on_alarm = yes\n")).source("up")
    assert (src.alarm_deletes, src.alarm_window, src.pause_on_alarm) == (10, 30.0, True)


def test_bad_alarm_keys_name_file_section_and_key(tmp_path):
    path = _cfg(tmp_path, "alarm_deletes = 0\nalarm_window = soon\npause_on_alarm = maybe\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    text = "\n".join(str(p) for p in err.value.problems)
    for key in ("alarm_deletes", "alarm_window", "pause_on_alarm"):
        assert key in text
    assert str(path) in text and "source:up" in text


# ------------------------------------------------------------ the daemon's side (daemon_alarm)

from types import SimpleNamespace  # noqa: E402

from mirrord.config import SourceConfig  # noqa: E402
from mirrord.daemon_alarm import AlarmWatch  # noqa: E402
from mirrord.journal import Change, Journal, Outcome  # noqa: E402
from mirrord.metrics import Metrics  # noqa: E402


@pytest.fixture
def watch(tmp_path):
    clock = Clock()
    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10, alarm_window=60.0,
                       pause_on_alarm=True)
    journal = Journal(tmp_path / "j.db", {"up": ("t",)}, clock=clock)
    errors: list[Exception] = []
    compared: list[tuple[str, str]] = []   # catch-ups asked for: (source, reason)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=Metrics(), roots=SimpleNamespace(lost={}),
                        schedule_catch_up=lambda s, reason: compared.append((s.name, reason)),
                        compared=compared,
                        pipeline=SimpleNamespace(journal_failed=errors.append), next_heartbeat=9e9)
    w = AlarmWatch(d, clock=clock, wall=lambda: 1234.0)
    yield w, src, journal, clock
    journal.close()


def _ship(journal: Journal, *paths: str) -> None:
    journal.enqueue([Change("up", p, "put") for p in paths])
    journal.ack([Outcome(op, "put", size=1) for op in journal.claim("t", 1000, now=1e12)])


def _metric(w: AlarmWatch, name: str) -> float:
    return w.d.metrics.registry.get_sample_value(name, {"source": "up"})


def test_counts_deletes_overwrites_and_tree_removals_not_new_files_or_attrs(watch):
    w, src, journal, _ = watch
    _ship(journal, "old.jpg", "d/a", "d/b", "d/c")
    w.observe(src, [Change("up", "new.jpg", "put"), Change("up", "old.jpg", "attr"),
                    Change("up", "old.jpg", "put")])
    assert w.alarms["up"].count() == 1                   # only the overwrite
    w.observe(src, [Change("up", "d/a", "delete"), Change("up", "d", "delete", tree=True)])
    assert w.alarms["up"].count() == 1 + 1 + 2           # d/a, then d's d/b and d/c
    w.observe(src, [Change("up", "gone", "delete", tree=True)])
    assert w.alarms["up"].count() == 5                   # nothing known below: 1
    assert not w.alarms["up"].active and journal.held_sources() == set()


def test_firing_holds_the_source_before_the_batch_is_recorded_and_clears_later(watch, caplog):
    w, src, journal, clock = watch
    batch = [Change("up", f"f{i}", "delete") for i in range(11)]
    with caplog.at_level("ERROR", logger="mirrord.daemon"):
        w.observe(src, batch)
    assert journal.held_sources() == {"up"} and w.d.next_heartbeat == 0.0
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "mass-change alarm" in caplog.records[0].message
    journal.enqueue(batch)
    assert journal.claim("t", 100, now=1e12) == []       # the whole batch is held
    assert _metric(w, "mirrord_mass_change_alarm") == 1
    assert _metric(w, "mirrord_mass_change_alarms_total") == 1
    assert _metric(w, "mirrord_deletes_held") == 1
    assert w.to_json()["up"]["state"] == "alarm" and w.to_json()["up"]["deletes_held"]
    clock.now += 61
    w.tick()                                             # the window slid: the alarm clears...
    assert _metric(w, "mirrord_mass_change_alarm") == 0
    assert _metric(w, "mirrord_mass_changes_in_window") == 0
    assert _metric(w, "mirrord_deletes_held") == 1       # ...the hold stays until resumed
    journal.resume_deletes("up")
    clock.now += 2
    w.tick()
    assert _metric(w, "mirrord_deletes_held") == 0 and w.to_json()["up"]["state"] == "ok"
    # resumed: the source is compared again without the cap, so deletes a capped comparison
    # refused (never queued) go out too (a breaker: they stayed, and every restart held again)
    assert w.d.compared == [("up", "resumed")]
