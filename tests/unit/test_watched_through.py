"""mirrord.watched_through: when a source's ctime bound moves, and when it must not.

The bound says every change of the source up to it is in the journal; a catch-up puts
only files changed after it when their size, mtime and mode match. A bound moved past a
change that was missed (an overflow's lost events, an unwatched directory, a lost root, a
catch-up not yet collected or failed, changes held unwritten) would hide that change at
the next start for good, so each of those holds it where it is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirrord.watch.read_lag import ReadLag
from mirrord.watched_through import MARGIN_NS, STATE_KEY, WatchedThrough

T = 1_800_000_000_000_000_000


def daemon(drained: int | None = T, **health):
    lag = ReadLag(wall=lambda: 0)
    lag.drained_at_ns = drained
    stored: dict = {}
    d = SimpleNamespace(
        watchers={"up": SimpleNamespace(read_lag=lag)},
        pipeline=SimpleNamespace(unwritten=[]), catchups_pending=set(),
        set_state=lambda key, value: stored.__setitem__(key, value))
    d.health = {"up": {"state": "ok", "events_unread_for": 0.0, **health}}
    d.source_health = lambda: d.health
    d.stored = stored
    return d


def test_a_clean_source_moves_to_its_latest_empty_read_less_the_margin():
    w, d = WatchedThrough(None), daemon()
    assert w.get("up") is None
    assert w.advance(d) is True
    assert w.get("up") == T - MARGIN_NS and d.stored[STATE_KEY] == {"up": T - MARGIN_NS}
    d.watchers["up"].read_lag.drained_at_ns = T + 5
    w.advance(d)
    assert w.get("up") == T + 5 - MARGIN_NS


@pytest.mark.parametrize("why", ["degraded", "lost", "behind", "never drained", "catch-up",
                                 "failed catch-up", "unwritten", "no pipeline"])
def test_nothing_moves_while_a_change_may_have_been_missed(why):
    w = WatchedThrough({"up": T - 10 * MARGIN_NS})
    d = daemon(None if why == "never drained" else T)
    if why in ("degraded", "lost"):
        d.health["up"]["state"] = why
    elif why == "behind":
        d.health["up"]["events_unread_for"] = 0.5
    elif why == "catch-up":
        d.catchups_pending.add("up")
    elif why == "failed catch-up":
        w.catch_up_done("up", ok=False)
    elif why == "unwritten":
        d.pipeline.unwritten = ["a change"]
    elif why == "no pipeline":
        d.pipeline = None
    assert w.advance(d) is False
    assert w.get("up") == T - 10 * MARGIN_NS and d.stored == {}


def test_a_later_catch_up_that_succeeds_lets_it_move_again():
    w, d = WatchedThrough(None), daemon()
    w.catch_up_done("up", ok=False)
    assert w.advance(d) is False
    w.catch_up_done("up", ok=True)
    assert w.advance(d) is True


def test_it_never_moves_back():
    w, d = WatchedThrough({"up": T}), daemon(T - 5)
    assert w.advance(d) is False and w.get("up") == T


@pytest.mark.parametrize("stored", [None, "x", [1, 2], {"up": "1"}, {"up": 1.5}, {"up": True}])
def test_a_stored_value_of_another_shape_is_no_bound(stored):
    assert WatchedThrough(stored).get("up") is None


def test_read_lag_keeps_the_time_taken_before_the_read():
    lag = ReadLag(wall=lambda: 42)
    assert lag.drained_at_ns is None
    lag.drained(7)
    assert lag.drained_at_ns == 7
    lag.left_unread()
    assert lag.drained_at_ns == 7      # a read that left events does not move it
    lag.drained()
    assert lag.drained_at_ns == 42
