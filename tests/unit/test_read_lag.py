"""ReadLag (mirrord.watch.read_lag): seconds since a watcher last found its kernel event
queue empty, on a fake clock."""

from __future__ import annotations

from mirrord.watch.read_lag import ReadLag
from tests.fakes import Clock


def test_counts_from_the_first_read_that_left_events_until_one_finds_the_queue_empty():
    clock = Clock(100.0)
    lag = ReadLag(clock)
    assert lag.seconds() == 0.0
    lag.left_unread()
    clock.now += 3
    lag.left_unread()           # still behind: counted from the first such read
    clock.now += 4
    assert lag.seconds() == 7.0
    lag.drained()
    assert lag.seconds() == 0.0
    lag.left_unread()
    clock.now += 1
    assert lag.seconds() == 1.0


def test_a_clock_stepped_back_reads_zero():
    clock = Clock(100.0)
    lag = ReadLag(clock)
    lag.left_unread()
    clock.now -= 10
    assert lag.seconds() == 0.0
