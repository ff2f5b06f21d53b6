"""Clock skew between two hosts: tolerated up to max_clock_skew, flagged beyond, both ways."""

from __future__ import annotations

import json
from datetime import timedelta

from mirrord.failover import heartbeat, replica, skew
from mirrord.failover.result import WARN
from tests.unit.test_failover_replica import NOW, by_name, status

T = 1_800_000_000.0


def hb(unix: float) -> heartbeat.Heartbeat:
    return heartbeat.parse(json.dumps({"version": 1, "unix": unix, "time": "t", "host": "primary",
                                       "target": "mirror", "pending": 0}).encode())


def test_a_heartbeat_an_hour_in_the_future_is_flagged_with_the_measured_skew():
    age = heartbeat.judge(hb(T + 3599.5), "", target="mirror", now=T, max_age=60,
                          severity=WARN)[0]
    assert not age.ok and age.status == "WARN"
    assert "clock skew" in age.message and "3599.5s in the future" in age.message
    assert "max_clock_skew 5s" in age.message
    assert age.value == "dated 3599.5s ahead" and age.data["age"] is None


def test_a_heartbeat_slightly_ahead_is_tolerated_as_age_zero():
    age = heartbeat.judge(hb(T + 2.0), "", target="mirror", now=T, max_age=60)[0]
    assert age.ok and age.value.startswith("0.0s (dated 2.0s ahead")
    assert age.data["age"] == 0.0


def test_the_tolerance_is_the_configured_max_clock_skew():
    assert heartbeat.judge(hb(T + 2.0), "", target="mirror", now=T, max_age=60,
                           max_skew=1.0)[0].ok is False
    assert heartbeat.judge(hb(T + 9.0), "", target="mirror", now=T, max_age=60,
                           max_skew=10.0)[0].ok is True


def test_a_clock_behind_reads_as_old_and_fails_the_age_limit():
    age = heartbeat.judge(hb(T - 3600), "", target="mirror", now=T, max_age=60)[0]
    assert not age.ok and "3600.0s old" in age.message


def test_skew_age_arithmetic():
    assert skew.age(100.0, 90.0, 5) == skew.Age(10.0, 0.0)
    assert skew.age(100.0, 104.0, 5) == skew.Age(0.0, 4.0)
    assert skew.age(100.0, 106.0, 5).skewed()


def test_offset_is_measured_against_the_midpoint_of_the_round_trip():
    off, unc = skew.offset(remote=1010.0, sent=1000.0, received=1000.2)
    assert round(off, 6) == 9.9 and round(unc, 6) == 0.1


def test_a_replayed_commit_dated_in_the_future_is_skew_not_lag_zero():
    st = status(receive_lsn=0x3000200, replay_lsn=0x3000100, last_replay=NOW + timedelta(hours=1))
    lag = by_name(replica.judge(st, max_lag=30))["replica.replay_lag"]
    assert not lag.ok and "clock skew" in lag.message and "3600.0s in the future" in lag.message


def test_a_replayed_commit_a_little_ahead_is_lag_zero():
    st = status(receive_lsn=0x3000200, replay_lsn=0x3000100, last_replay=NOW + timedelta(seconds=2))
    lag = by_name(replica.judge(st, max_lag=30))["replica.replay_lag"]
    assert lag.ok and lag.value == "0.0s"


def test_a_database_clock_off_in_either_direction_is_a_warning():
    for remote, side in ((T + 30, "ahead of"), (T - 30, "behind")):
        check = skew.clock_check("clock.primary", "db", remote, T - 0.01, T + 0.01, 5.0)
        assert not check.ok and check.severity == WARN
        assert f"30.0s {side} this host's" in check.message
    assert skew.clock_check("clock.primary", "db", T + 1, T - 0.01, T + 0.01, 5.0).ok
