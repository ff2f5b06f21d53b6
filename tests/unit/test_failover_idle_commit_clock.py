"""An idle primary (everything received is replayed) has lag 0 whatever the stamps say;
a last replayed commit dated an hour in the future of the replica's now() was then
passed without a word, although it shows the primary's clock is an hour ahead."""

from __future__ import annotations

from datetime import timedelta

from mirrord.failover import replica
from mirrord.failover.result import WARN
from tests.unit.test_failover_replica import NOW, by_name, status


def test_an_idle_primarys_commit_an_hour_ahead_is_a_warning_lag_stays_zero():
    st = status(receive_lsn=0x3000100, replay_lsn=0x3000100, last_replay=NOW + timedelta(hours=1))
    checks = by_name(replica.judge(st, max_lag=30))
    assert checks["replica.replay_lag"].ok and checks["replica.replay_lag"].value == "0.0s"
    clock = checks["replica.commit_clock"]
    assert not clock.ok and clock.severity == WARN and not clock.refuses
    assert "clock skew" in clock.message and "3600.0s in the future" in clock.message


def test_an_idle_primarys_commit_within_max_clock_skew_says_nothing_more():
    for ahead in (timedelta(seconds=4), timedelta(0), -timedelta(hours=5)):
        st = status(receive_lsn=0x3000100, replay_lsn=0x3000100, last_replay=NOW + ahead)
        assert "replica.commit_clock" not in by_name(replica.judge(st, max_lag=30))
