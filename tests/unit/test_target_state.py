"""TargetStates: every transition of the rules in mirrord/target_state.py, on a fake clock."""

from __future__ import annotations

import json
import os
import time

import pytest

from mirrord.journal import TargetBacklog
from mirrord.target_state import (CATCHING_UP, DEGRADED, IN_SYNC, INITIAL_SYNC, STALLED,
                                  TargetStates, ever_in_sync_from)
from tests.fakes import Clock

ROUTES = {"uploads": ["s3", "host"], "images": ["host"]}


@pytest.fixture
def clock() -> Clock:
    return Clock(1_700_000_000.0)


def bl(target: str, pending: int = 0, oldest: float | None = None, failing: int = 0,
       shipped: int = 0, last_at: float | None = None) -> TargetBacklog:
    return TargetBacklog(target, pending=pending, oldest=oldest, failing=failing,
                         extra={"shipped": shipped, "last_at": last_at})


def one(states: TargetStates, clock: Clock, b: TargetBacklog, **kw):
    return states.update({b.target: b}, now=clock.now, **kw)[b.target]


def test_idle_target_is_in_sync_with_zero_lag(clock):
    got = TargetStates(ROUTES).update({}, now=clock.now)
    assert set(got) == {"s3", "host"}
    for s in got.values():
        assert (s.state, s.lag_seconds, s.ever_in_sync) == (IN_SYNC, 0.0, True)
        assert s.reason == "nothing pending"


def test_first_copy_is_initial_sync_then_in_sync_then_catching_up(clock):
    states = TargetStates(ROUTES)
    s = one(states, clock, bl("s3", pending=5000, oldest=clock.now - 2))
    assert (s.state, s.lag_seconds, s.ever_in_sync) == (INITIAL_SYNC, 2.0, False)
    clock.now += 30
    s = one(states, clock, bl("s3", pending=100, oldest=clock.now - 31, shipped=4900))
    assert (s.state, s.lag_seconds) == (INITIAL_SYNC, 31.0)
    clock.now += 5
    s = one(states, clock, bl("s3", shipped=5000))
    assert (s.state, s.lag_seconds, s.ever_in_sync) == (IN_SYNC, 0.0, True)
    clock.now += 60                # a burst later: once in sync, an old backlog is catching up
    s = one(states, clock, bl("s3", pending=800, oldest=clock.now - 6, shipped=5000))
    assert (s.state, s.lag_seconds) == (CATCHING_UP, 6.0)


def test_live_changes_younger_than_the_threshold_are_in_sync(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"})
    s = one(states, clock, bl("s3", pending=3, oldest=clock.now - 5.0))
    assert (s.state, s.lag_seconds) == (IN_SYNC, 5.0)     # at the threshold: still in sync
    s = one(states, clock, bl("s3", pending=3, oldest=clock.now - 5.5))
    assert s.state == CATCHING_UP and "5.5" not in s.reason and "6s old" in s.reason


def test_threshold_is_configurable(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"}, catching_up_after=30)
    assert one(states, clock, bl("s3", pending=3, oldest=clock.now - 20)).state == IN_SYNC
    assert one(states, clock, bl("s3", pending=3, oldest=clock.now - 31)).state == CATCHING_UP


def test_failing_changes_are_degraded_until_they_ship(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"})
    s = one(states, clock, bl("s3", pending=4, oldest=clock.now - 1, failing=2))
    assert s.state == DEGRADED and s.reason.startswith("2 of 4 pending changes failed")
    clock.now += 10
    s = one(states, clock, bl("s3", shipped=4, last_at=clock.now))
    assert s.state == IN_SYNC


def test_unwatched_directories_degrade_only_the_targets_of_that_source(clock):
    states = TargetStates(ROUTES)
    health = {"uploads": {"unwatched_directories": 0}, "images": {"unwatched_directories": 3}}
    got = states.update({}, now=clock.now, sources=health)
    assert got["host"].state == DEGRADED
    assert got["host"].reason == "source images: 3 directories not watched (rescanned every few seconds)"
    assert got["s3"].state == IN_SYNC
    health["images"]["unwatched_directories"] = 0
    assert states.update({}, now=clock.now + 5, sources=health)["host"].state == IN_SYNC


def test_nothing_shipped_while_a_backlog_waits_is_stalled(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"}, stalled_after=60)
    start = clock.now
    one(states, clock, bl("s3", shipped=10, last_at=start - 3600))   # idle for an hour: fine
    clock.now += 10
    s = one(states, clock, bl("s3", pending=2, oldest=start + 10, shipped=10, failing=2,
                               last_at=start - 3600))
    assert s.state == DEGRADED                       # just queued: failing, not yet stalled
    clock.now += 60
    s = one(states, clock, bl("s3", pending=2, oldest=start + 10, shipped=10, failing=2,
                               last_at=start - 3600))
    assert s.state == DEGRADED                       # waited exactly 60 s: not more than 60
    clock.now += 1
    s = one(states, clock, bl("s3", pending=2, oldest=start + 10, shipped=10, failing=2,
                               last_at=start - 3600))
    assert (s.state, s.lag_seconds) == (STALLED, 61.0)
    assert s.reason == "2 changes pending and nothing shipped for 61s (limit 60s)"
    clock.now += 5                                   # one change went out: progress again
    s = one(states, clock, bl("s3", pending=1, oldest=start + 10, shipped=11, failing=1,
                               last_at=start - 3600))
    assert s.state == DEGRADED


def test_a_rising_shipped_count_is_progress_even_without_last_at(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"}, stalled_after=60)
    oldest = clock.now
    for shipped in range(0, 500, 50):                # a long catch-up that keeps shipping
        clock.now += 30
        s = one(states, clock, bl("s3", pending=10_000, oldest=oldest, shipped=shipped))
        assert s.state == CATCHING_UP
    clock.now += 61
    assert one(states, clock, bl("s3", pending=10_000, oldest=oldest, shipped=450)).state == STALLED


def test_a_daemon_that_just_started_is_not_stalled_by_an_old_backlog(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"}, stalled_after=60)
    old = bl("s3", pending=50, oldest=clock.now - 7200, shipped=3, last_at=clock.now - 7000)
    s = one(states, clock, old)
    assert (s.state, s.lag_seconds) == (CATCHING_UP, 7200.0)
    clock.now += 61
    assert one(states, clock, old).state == STALLED


def test_a_catch_up_walk_keeps_its_targets_out_of_in_sync(clock):
    states = TargetStates(ROUTES)
    got = states.update({}, now=clock.now, scanning={"images"})
    assert got["host"].state == INITIAL_SYNC
    assert got["host"].reason == "catch-up walk of source images under way"
    assert got["s3"].state == IN_SYNC
    clock.now += 5
    got = states.update({}, now=clock.now)
    assert got["host"].state == IN_SYNC
    got = states.update({}, now=clock.now + 5, scanning={"images"})   # e.g. after an overflow
    assert got["host"].state == CATCHING_UP


def test_a_hard_link_walk_due_keeps_its_targets_out_of_in_sync(clock):
    # a write through a name of a hard-linked file whose other names are not known yet
    # reaches them on the targets only with the walk LinkWalks makes at most every 30 s;
    # status said in_sync meanwhile (a review, helper-136)
    states = TargetStates(ROUTES, ever_in_sync={"s3", "host"})
    got = states.update({}, now=clock.now, linking={"images"})
    assert got["host"].state == CATCHING_UP and "hard link" in got["host"].reason
    assert got["s3"].state == IN_SYNC
    got = states.update({}, now=clock.now, scanning={"images"}, linking={"images"})
    assert got["host"].reason == "catch-up walk of source images under way"
    assert states.update({}, now=clock.now + 1)["host"].state == IN_SYNC


def test_a_watcher_reading_behind_keeps_its_targets_out_of_in_sync(clock):
    """pending 0 is not caught up while the watcher has not emptied the kernel's queue for
    longer than catching_up_after (mirrord.watch.read_lag): the unread changes are in no
    backlog. A few seconds behind, a burst being read, is still the live stream."""
    states = TargetStates(ROUTES, ever_in_sync={"s3", "host"})
    behind = {"images": {"events_unread_for": 5.0}, "uploads": {"events_unread_for": 0.0}}
    got = states.update({}, now=clock.now, sources=behind)
    assert got["host"].state == IN_SYNC         # at the threshold: still the live stream
    behind["images"]["events_unread_for"] = 90.4
    got = states.update({}, now=clock.now, sources=behind)
    assert got["host"].state == CATCHING_UP and got["host"].lag_seconds == 0.0
    assert got["host"].reason == ("source images: the watcher has not emptied the kernel's "
                                  "event queue for 90s (changes not yet read are not in "
                                  "the backlog)")
    assert got["s3"].state == IN_SYNC           # fed by uploads alone, which keeps up
    behind["uploads"]["events_unread_for"] = 6.0
    got = states.update({}, now=clock.now, sources=behind)
    assert got["s3"].state == CATCHING_UP and "source uploads" in got["s3"].reason
    assert "source images" in got["host"].reason and "source uploads" in got["host"].reason
    got = states.update({}, now=clock.now, sources=behind, scanning={"images"})
    assert got["host"].reason == "catch-up walk of source images under way"   # the walk says
    fresh = TargetStates(ROUTES).update({}, now=clock.now, sources=behind)
    assert fresh["s3"].state == INITIAL_SYNC    # never in sync: rule 3
    got = states.update({}, now=clock.now, sources={"images": {"events_unread_for": 0.0},
                                                    "uploads": {}})
    assert got["host"].state == got["s3"].state == IN_SYNC


def test_a_target_no_source_feeds_is_reported_too(clock):
    got = TargetStates({"uploads": ["s3"]}, targets={"s3": None, "spare": None}).update(
        {}, now=clock.now)
    assert list(got) == ["s3", "spare"] and got["spare"].state == IN_SYNC


def test_lag_never_negative_after_a_clock_step_back(clock):
    states = TargetStates(ROUTES, ever_in_sync={"s3"})
    s = one(states, clock, bl("s3", pending=1, oldest=clock.now + 30))
    assert (s.state, s.lag_seconds) == (IN_SYNC, 0.0)


def test_ever_in_sync_survives_a_restart_through_the_state_document(clock):
    first = TargetStates(ROUTES)
    first.update({}, now=clock.now)
    doc = {"pid": 1, "target_states": first.to_json()}
    assert doc["target_states"]["s3"] == {"state": IN_SYNC, "lag_seconds": 0.0,
                                          "reason": "nothing pending", "ever_in_sync": True}
    restarted = TargetStates(ROUTES, ever_in_sync=ever_in_sync_from(doc))
    s = one(restarted, clock, bl("s3", pending=9, oldest=clock.now - 40))
    assert s.state == CATCHING_UP                    # not a new initial_sync
    assert ever_in_sync_from(None) == set() and ever_in_sync_from({"pid": 1}) == set()
    assert ever_in_sync_from({"target_states": {"s3": {"state": "in_sync"}}}) == set()


# ------------------------------------------------- `mirrord status` reads what the daemon stores


def _status_env(tmp_path):
    from mirrord import config, journal

    (tmp_path / "src").mkdir()
    ini = tmp_path / "mirrord.ini"
    ini.write_text("[mirrord]\nstate_dir = ./state\n\n[source:uploads]\npath = ./src\n"
                   "targets = s3, host\n\n[target:s3]\ntype = local\npath = ./m1\n\n"
                   "[target:host]\ntype = local\npath = ./m2\n")
    cfg = config.load(ini)
    jr = journal.Journal(cfg.mirrord.journal_path, {"uploads": ("s3", "host")})
    return cfg, jr


def test_status_shows_each_targets_state_and_lag(tmp_path, clock):
    from mirrord import locks
    from mirrord.cli import status

    cfg, jr = _status_env(tmp_path)
    states = TargetStates({"uploads": ["s3", "host"]}, ever_in_sync={"s3", "host"})
    states.update({"s3": bl("s3", pending=7, oldest=clock.now - 42)}, now=clock.now)
    jr.set_state("daemon", {"pid": os.getpid(), "updated": time.time(),
                            "target_states": states.to_json()})
    jr.close()
    with locks.take(cfg.mirrord.state_dir, locks.DAEMON):
        doc = status.collect(cfg)
        assert doc["targets"]["s3"]["state"] == CATCHING_UP
        assert doc["targets"]["s3"]["lag_seconds"] == 42.0
        assert doc["targets"]["s3"]["state_reason"].startswith("7 changes pending, oldest 42s old")
        assert doc["targets"]["host"]["state"] == IN_SYNC
        json.dumps(doc)                                     # what --json prints
        text = status.render(doc)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if line[:1].strip()}
    assert rows["TARGET"][:3] == ["TARGET", "STATE", "LAG"]
    assert rows["s3"][1:3] == [CATCHING_UP, "42.0s"]
    assert rows["host"][1:3] == [IN_SYNC, "0.0s"]
    assert "catching_up: 7 changes pending, oldest 42s old (in_sync once none is older than 5s)" in text


def test_status_says_unknown_when_the_daemon_is_not_running(tmp_path, clock):
    from mirrord.cli import status

    cfg, jr = _status_env(tmp_path)
    states = TargetStates({"uploads": ["s3"]})
    states.update({}, now=clock.now)
    jr.set_state("daemon", {"pid": 1, "updated": clock.now, "target_states": states.to_json()})
    jr.close()
    doc = status.collect(cfg)
    s3 = doc["targets"]["s3"]
    assert (s3["state"], s3["lag_seconds"]) == ("unknown", None)   # a stored state is stale
    assert s3["state_reason"] == "daemon not running; last known in_sync"
    assert doc["targets"]["host"]["state_reason"] == "daemon not running"
    assert "s3           unknown" in status.render(doc)


def test_status_calls_a_target_no_source_lists_unused(tmp_path, clock):
    """A [target:NAME] no source names is never opened by the daemon (the example s3 and
    rsync sections of the shipped mirrord.ini): status showed it as in_sync all the same."""
    from mirrord import config, journal, locks
    from mirrord.cli import status

    (tmp_path / "src").mkdir()
    ini = tmp_path / "mirrord.ini"
    ini.write_text("[mirrord]\nstate_dir = ./state\n\n[source:uploads]\npath = ./src\n"
                   "targets = local\n\n[target:local]\ntype = local\npath = ./m1\n\n"
                   "[target:spare]\ntype = rsync\nhost = mirror.example.org\npath = /srv/m\n")
    cfg = config.load(ini)
    jr = journal.Journal(cfg.mirrord.journal_path, {"uploads": ("local",)})
    states = TargetStates({"uploads": ["local"]}, targets=cfg.targets, ever_in_sync={"local"})
    states.update({}, now=clock.now)
    jr.set_state("daemon", {"pid": os.getpid(), "updated": time.time(),
                            "target_states": states.to_json()})
    jr.close()
    with locks.take(cfg.mirrord.state_dir, locks.DAEMON):
        doc = status.collect(cfg)
    assert doc["targets"]["local"]["state"] == IN_SYNC
    spare = doc["targets"]["spare"]
    assert (spare["state"], spare["lag_seconds"]) == ("unused", None)
    text = status.render(doc)
    assert "spare        unused" in text
    assert "unused: no [source:*] lists it in targets: never opened" in text


def test_held_deletes_are_degraded_even_with_nothing_pending(clock):
    """A capped comparison (start, a root back) holds the source's deletes and queues none
    of them: the target keeps what the source no longer holds while nothing is pending.
    It was `in_sync` (the signal /ready and other tools act on) though the reconcile line
    said NOT in sync. Only the targets the held source feeds."""
    states = TargetStates(ROUTES, ever_in_sync={"s3", "host"})
    got = states.update({}, now=clock.now, sources={"images": {"deletes_held": True}})
    assert got["s3"].state == IN_SYNC
    assert got["host"].state == DEGRADED
    assert got["host"].reason == ("source images: deletes held (the target keeps what the "
                                  "source no longer holds) until `mirrord resume-deletes "
                                  "--source images`")
    got = states.update({}, now=clock.now, sources={"images": {"deletes_held": False}})
    assert got["host"].state == IN_SYNC


def test_held_deletes_waiting_long_are_not_a_stall(clock):
    """Deletes held by an alarm are pending rows that wait on purpose: past stalled_after
    with nothing else shipped, the state says they are held, not that the target stalled.
    A lost root (which holds its source's deletes too) says why first."""
    states = TargetStates(ROUTES, ever_in_sync={"s3", "host"})
    b = bl("s3", pending=500, oldest=clock.now)
    one(states, clock, b)       # the daemon's first look: its watch starts here
    clock.now += 600
    assert one(states, clock, b).state == STALLED
    held = {"uploads": {"deletes_held": True}}
    got = one(states, clock, b, sources=held)
    assert (got.state, got.reason.startswith("source uploads: deletes held")) == (DEGRADED, True)
    held["uploads"]["root_lost"] = "emptied"
    got = one(states, clock, b, sources=held)
    assert got.state == DEGRADED and got.reason.startswith("source uploads: root lost (emptied)")


def test_a_target_whose_heartbeat_cannot_be_written_is_degraded_with_nothing_pending(clock):
    """A deleted bucket, a removed mirror root, a rotated secret: every heartbeat write fails
    while nothing is pending. It was `in_sync` (a breaker: status, /ready and the metrics
    all said so until a new change failed). Only that target; back to in_sync once a
    heartbeat is written; a stall still says stalled."""
    states = TargetStates(ROUTES, ever_in_sync={"s3", "host"})
    got = states.update({}, now=clock.now, unwritable={"s3": "NoSuchBucket (HTTP 404)"})
    assert (got["s3"].state, got["s3"].reason) == (DEGRADED, "heartbeat not written: "
                                                             "NoSuchBucket (HTTP 404)")
    assert got["host"].state == IN_SYNC
    assert states.update({}, now=clock.now, unwritable={})["s3"].state == IN_SYNC
    b = bl("s3", pending=5, oldest=clock.now)
    one(states, clock, b)
    clock.now += 600
    assert one(states, clock, b, unwritable={"s3": "refused"}).state == STALLED


def test_status_calls_a_stale_state_document_unknown(tmp_path, clock):
    """The daemon runs but its state document is old (it cannot write the state database:
    a full disk, another process holding its lock): what it last wrote says nothing now."""
    from mirrord import locks
    from mirrord.cli import status

    cfg, jr = _status_env(tmp_path)
    states = TargetStates({"uploads": ["s3", "host"]}, ever_in_sync={"s3", "host"})
    states.update({}, now=clock.now)
    jr.set_state("daemon", {"pid": os.getpid(), "updated": time.time() - 60,
                            "target_states": states.to_json()})
    jr.close()
    with locks.take(cfg.mirrord.state_dir, locks.DAEMON):
        doc = status.collect(cfg)
    for name in ("s3", "host"):
        t = doc["targets"][name]
        assert t["state"] == "unknown" and "last update is 60s old" in t["state_reason"], t
        assert t["state_reason"].endswith("last known in_sync")


def test_changes_held_in_memory_degrade_every_target():
    """The backlog read from the state database does not count what the pipeline holds
    while it cannot be written: every target is degraded, whatever the backlog says."""
    states = TargetStates({"uploads": ["s3", "host"]}, ever_in_sync={"s3", "host"})
    got = states.update({}, now=1_700_000_000.0, journal_held=105)
    for name in ("s3", "host"):
        assert got[name].state == DEGRADED
        assert "105 changes held in memory" in got[name].reason
    assert states.update({}, now=1_700_000_001.0)["s3"].state == IN_SYNC
