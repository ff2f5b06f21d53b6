"""How failback weighs the mirror's database, and what a refusal says --force would do (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mirrord.failover import replica
from mirrord.failover.force import force_hint, forceable
from mirrord.failover.heartbeat import MIRROR_ROOT
from mirrord.failover.replica import Reading, for_failback, judge_reading
from mirrord.failover.result import FAIL, WARN, Check
from tests.unit.test_failover_replica import NOW, status


def failback(reading: Reading, max_lag: float = 30.0) -> dict[str, Check]:
    return {c.name: c for c in for_failback(judge_reading(reading, max_lag=max_lag))}


def test_a_promoted_database_refuses_failback_and_says_why():
    checks = failback(Reading("db:5432/wiki user=m", status(in_recovery=False,
                                                            receiver_pid=None,
                                                            receiver_status=None)))
    check = checks["replica.in_recovery"]
    assert check.refuses and check.severity == FAIL
    assert "promoted" in check.message and "two writable databases" in check.message
    assert "pg_rewind" in check.message and forceable(check)


@pytest.mark.parametrize("st, name", [
    (status(receiver_pid=None, receiver_status=None), "replica.wal_receiver"),
    (status(pause_state="paused"), "replica.replay_paused"),
    (status(receive_lsn=0x3000200, last_replay=NOW - timedelta(minutes=10)),
     "replica.replay_lag"),
    (status(receive_lsn=0x3000200, last_replay=None), "replica.replay_lag"),
])
def test_a_standby_not_current_is_a_warning_at_failback(st, name):
    checks = failback(Reading("db:5432/wiki user=m", st))
    assert not checks[name].ok and checks[name].severity == WARN, checks[name]
    assert not checks[name].refuses
    assert "failback goes ahead" in checks[name].message
    assert not any(c.refuses for c in checks.values())


def test_an_unreachable_database_is_a_warning_at_failback():
    checks = failback(Reading("db:5432/wiki user=m", None, "connection refused"))
    check = checks["replica.connect"]
    assert check.severity == WARN and not check.refuses
    assert check.message.startswith("db:5432/wiki user=m: connection refused")
    assert "cannot take over again" in check.message


def test_a_current_standby_passes_unchanged():
    reading = Reading("db:5432/wiki user=m", status())
    plain = judge_reading(reading, max_lag=30.0)
    weighed = for_failback(judge_reading(reading, max_lag=30.0))
    assert [c.to_json() for c in weighed] == [c.to_json() for c in plain]
    assert all(c.ok for c in weighed)


def test_failover_keeps_refusing_what_failback_only_warns_about():
    """for_failback changes the checks it is given, never the judgement itself."""
    checks = replica.judge(status(pause_state="paused"), 30.0)
    paused = next(c for c in checks if c.name == "replica.replay_paused")
    assert paused.refuses


def _check(name: str, **data) -> Check:
    return Check(name, False, "x", "y", "why", data=data)


def test_force_hint_when_force_accepts_every_refusal():
    assert force_hint("failback", [_check("replica.in_recovery")]) == \
        "; rerun with --force to accept"
    assert force_hint("failover", [_check("replica.wal_receiver"), _check("replica.replay_lag")]) \
        == "; rerun with --force to accept"
    assert force_hint("failover", [_check("heartbeat.age", **{MIRROR_ROOT: "missing"})]) == \
        "; rerun with --force to accept"
    assert force_hint("failback", [_check("hook.pre_failback")]) == \
        "; rerun with --force to accept"


def test_force_hint_names_what_force_would_not_accept():
    """A breaker: the hint said "rerun with --force" beside the primary unreachable at
    failback, which --force does not cover; the rerun was refused again."""
    hint = force_hint("failback", [_check("primary.connect"), _check("replica.in_recovery")])
    assert hint == "; --force would accept replica.in_recovery but not primary.connect"
    hint = force_hint("failover", [_check("replica.wal_receiver"), _check("app.target"),
                                   _check("app.link")])
    assert hint == "; --force would accept replica.wal_receiver but not app.target, app.link"


def test_no_force_hint_when_force_accepts_none_or_for_switchover():
    assert force_hint("failback", [_check("primary.connect")]) == ""
    assert force_hint("failover", [_check("app.target")]) == ""
    assert force_hint("switchover", [_check("replica.in_recovery")]) == ""


def test_a_clock_warning_gets_no_standby_words():
    """A review: every failed check got "cannot take over again until its database is a
    current standby", a clock skew warning on a current standby too."""
    checks = failback(Reading("db:5432/wiki user=m",
                              status(last_replay=NOW + timedelta(minutes=10))))
    clock = checks["replica.commit_clock"]
    assert not clock.ok and clock.severity == WARN
    assert "current standby" not in clock.message
    assert all(c.ok for n, c in checks.items() if n != "replica.commit_clock")
    skewed = failback(Reading("db", status(receive_lsn=0x3000200,
                                           last_replay=NOW + timedelta(minutes=10))))
    lag = skewed["replica.replay_lag"]
    assert not lag.ok and "ahead" in lag.data and "current standby" not in lag.message


def test_the_message_does_not_take_a_promotion_for_granted():
    """The same answer comes from a `database` that names the primary itself: the words
    ask, and name that case, rather than prescribe rebuilding a database as fact."""
    check = failback(Reading("db", status(in_recovery=False)))["replica.in_recovery"]
    assert "promoted during the outage?" in check.message
    assert "Or is [failover] database not the mirror's replica?" in check.message
