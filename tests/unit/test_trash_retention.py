"""Trash retention (mirrord.trash.retention): the pure plan (window, then the size cap
oldest first) and the run on a memory target with a fake clock: batches, pauses, stop,
errors kept in the summary."""

from __future__ import annotations

import logging
import threading

import pytest

from mirrord.errors import RetryableError
from mirrord.targets.memory import MemoryTarget
from mirrord.trash import retention
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import DELETED, Kept, stamp_of, trash_rel
from tests.fakes import Clock

NOW = 1_795_000_000.0
DAY = 86400.0


def kept(path: str, age: float, size: int = 10) -> Kept:
    stamp = stamp_of(NOW - age)
    return Kept(path, stamp, DELETED, size, 0, trash_rel(stamp, DELETED, path))


def fill(target: MemoryTarget, entries: list[Kept]) -> None:
    """Put kept files straight into the memory target's trash, as keep() would."""
    for k in entries:
        target.trash[k.key] = (b"x" * k.size, 1.0)


# ------------------------------------------------------------------ the plan


def test_exactly_the_entries_older_than_the_window_are_purged():
    entries = [kept("new", 1 * DAY), kept("edge", 7 * DAY - 1), kept("old", 7 * DAY + 1),
               kept("older", 30 * DAY)]
    p = retention.plan(entries, now=NOW, window=7 * DAY, cap=None)
    assert [k.path for k in p.purge] == ["older", "old"]
    assert (p.expired, p.over_cap, p.files, p.bytes) == (2, 0, 2, 20)
    assert p.oldest == pytest.approx(NOW - (7 * DAY - 1))


def test_the_cap_purges_the_oldest_first_until_the_rest_fits():
    entries = [kept("a", 1 * DAY, 100), kept("b", 2 * DAY, 100), kept("c", 3 * DAY, 100),
               kept("d", 10 * DAY, 5)]
    p = retention.plan(entries, now=NOW, window=7 * DAY, cap=150)
    assert [k.path for k in p.purge] == ["d", "c", "b"]   # expired first, then oldest first
    assert (p.expired, p.over_cap, p.files, p.bytes) == (1, 2, 1, 100)


def test_under_the_cap_nothing_in_the_window_is_purged():
    entries = [kept("a", 1 * DAY, 100), kept("b", 2 * DAY, 100)]
    p = retention.plan(entries, now=NOW, window=7 * DAY, cap=200)
    assert p.purge == [] and p.bytes == 200 and p.oldest == pytest.approx(NOW - 2 * DAY)


def test_an_empty_trash_plans_nothing():
    p = retention.plan([], now=NOW, window=DAY, cap=0)
    assert p.purge == [] and p.files == 0 and p.oldest is None


# ------------------------------------------------------------------ the run


def test_a_run_purges_the_expired_entries_from_the_target():
    t = MemoryTarget("t")
    fill(t, [kept("keep/me", DAY), kept("gone/1", 8 * DAY), kept("gone/2", 9 * DAY)])
    s = retention.run(t, KeepPolicy(7 * DAY), mirrored_bytes=10**6, clock=Clock(NOW),
                      pause=lambda _s: None)
    assert sorted(k.path for k in t.trash_list()) == ["keep/me"]
    assert (s.files, s.bytes, s.purged, s.purged_bytes, s.over_cap, s.error) == (1, 10, 2, 20, 0, None)
    assert s.oldest == pytest.approx(NOW - DAY)


def test_a_later_run_with_the_clock_moved_purges_what_expired_since():
    t = MemoryTarget("t")
    fill(t, [kept("a", DAY), kept("b", 3 * DAY)])
    clock = Clock(NOW)
    policy = KeepPolicy(2 * DAY)
    assert retention.run(t, policy, mirrored_bytes=0, clock=clock, pause=lambda _s: None).purged == 1
    clock.now += 1.5 * DAY
    assert retention.run(t, policy, mirrored_bytes=0, clock=clock, pause=lambda _s: None).purged == 1
    assert list(t.trash_list()) == []


def test_a_percentage_cap_warns_when_it_purges_entries_in_their_window(caplog):
    t = MemoryTarget("t")
    fill(t, [kept("a", DAY, 300), kept("b", 2 * DAY, 300)])
    with caplog.at_level(logging.WARNING, logger="mirrord.trash"):
        s = retention.run(t, KeepPolicy(7 * DAY, None, 20.0), mirrored_bytes=2000,
                          clock=Clock(NOW), pause=lambda _s: None)
    assert [k.path for k in t.trash_list()] == ["a"] and s.over_cap == 1 and s.bytes == 300
    assert "over its cap" in caplog.text


def test_purges_go_in_batches_with_a_pause_between(monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    t = MemoryTarget("t")
    fill(t, [kept(f"f{i}", 10 * DAY + i) for i in range(5)])
    pauses: list[float] = []
    s = retention.run(t, KeepPolicy(DAY), mirrored_bytes=0, clock=Clock(NOW), pause=pauses.append)
    assert s.purged == 5 and list(t.trash_list()) == []
    assert pauses == [retention.PAUSE, retention.PAUSE]
    assert [c for c in t.calls if c[0] == "trash_purge"] == [("trash_purge", "")] * 3


def test_a_stop_ends_the_run_between_batches_and_counts_what_is_left(monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    t = MemoryTarget("t")
    fill(t, [kept(f"f{i}", 10 * DAY + i) for i in range(5)])
    stop = threading.Event()
    s = retention.run(t, KeepPolicy(DAY), mirrored_bytes=0, clock=Clock(NOW), stop=stop,
                      pause=lambda _s: stop.set())
    assert s.purged == 2 and s.files == 3 and len(list(t.trash_list())) == 3
    assert s.oldest == pytest.approx(NOW - 10 * DAY - 2)


def test_target_trouble_is_in_the_summary_never_raised():
    t = MemoryTarget("t")
    fill(t, [kept("a", 10 * DAY)])
    t.fail_with = RetryableError("ECONNREFUSED")
    s = retention.run(t, KeepPolicy(DAY), mirrored_bytes=0, clock=Clock(NOW))
    assert s.error and "ECONNREFUSED" in s.error and s.purged == 0
    t.fail_with = None
    assert len(list(t.trash_list())) == 1
