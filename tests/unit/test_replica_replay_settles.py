"""WAL received but not yet replayed is given a moment before it counts as lag
(replica.read_status, replica.settle).

A test run refused a failover with "replay lag 60.0s" and 96 B unreplayed, right after
the replica was caught up: the primary was idle, its last commit a minute old, and the
reading fell in the milliseconds between the receipt of one of the primary's own small
records (a running-xacts snapshot) and its replay. The lag, the repmgr way, was then the
age of that commit. A scripted connection plays the replica's answers, so the window is
hit every time; the real PostgreSQL pair keeps the genuine-lag cases (an apply delay:
tests/integration/test_failover_procedure.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg

from mirrord.failover import replica
from mirrord.failover.replica import format_lsn, judge, read_status

NOW = datetime(2026, 12, 6, 21, 0, 0, tzinfo=timezone.utc)
COMMIT = NOW - timedelta(seconds=60)        # the last replayed commit: a minute old
RECEIVED, REPLAYED = 0x3000160, 0x3000100   # 96 B received, not yet replayed
POLL = replica._POLL_SQL


class Replica:
    """A connection answering as a standby: the status statement once, then `polls`
    (replay LSN, last replayed commit time, now), the last one repeated."""

    def __init__(self, polls: list[tuple], *, pause: str = "not paused", fail_poll=False):
        self.polls, self.pause, self.fail_poll, self.sql = list(polls), pause, fail_poll, []

    def execute(self, sql: str, params=None):
        self.sql.append(sql)
        if "pg_is_in_recovery()" in sql:
            row = (True, format_lsn(RECEIVED), format_lsn(REPLAYED), NOW, COMMIT, 150000)
        elif sql == POLL:
            if self.fail_poll:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            lsn, last, now = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
            row = (format_lsn(lsn), last, now)
        elif "pause_state" in sql:
            row = (self.pause,)
        else:   # pg_stat_wal_receiver
            row = (4242, "streaming")
        return _Cursor(row)


class _Cursor:
    def __init__(self, row):
        self.row = row

    def fetchone(self):
        return self.row


def lag(status):
    return {c.name: c for c in judge(status, 30.0)}["replica.replay_lag"]


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_record_replayed_within_the_moment_without_a_commit_is_no_lag():
    conn = Replica([(REPLAYED, COMMIT, at(0.02)), (REPLAYED + 0x20, COMMIT, at(0.04)),
                    (RECEIVED, COMMIT, at(0.06))])
    st = read_status(conn)
    assert st.replay_lsn == RECEIVED and st.receive_lsn == RECEIVED
    check = lag(st)
    assert check.ok and check.value == "0.0s", check
    assert conn.sql.count(POLL) == 3


def test_commits_replayed_while_waiting_are_measured_by_the_newest():
    """A review: a replica whose WAL receiver is the bottleneck (a slow link, a
    reconnect) keeps replay level with what arrived, so "replay reached what was
    received" alone would have read its real lag as 0. The commits replayed while
    waiting carry their age: 40 s behind, whatever replay reached."""
    newest = NOW - timedelta(seconds=40)
    conn = Replica([(RECEIVED, newest, at(0.02))])
    st = read_status(conn)
    check = lag(st)
    assert not check.ok and check.value == "40.0s", check


def test_a_fresh_commit_replayed_while_waiting_is_no_lag_worth_the_name():
    """An active primary: the gap held a commit made a moment ago, not the old one."""
    conn = Replica([(RECEIVED, at(-0.01), at(0.02))])
    check = lag(read_status(conn))
    assert check.ok and float(check.value.rstrip("s")) < 0.1, check


def test_replay_that_does_not_reach_what_was_received_is_lag_as_before():
    conn = Replica([(REPLAYED, COMMIT, at(0.02))])
    st = read_status(conn, settle_for=0.1)
    assert st.replay_lsn == REPLAYED and st.now == NOW    # the first reading stands whole
    check = lag(st)
    assert not check.ok and check.value == "60.0s", check


def test_replay_that_moves_but_stays_behind_keeps_the_first_reading():
    conn = Replica([(REPLAYED + 0x10, COMMIT, at(0.02)), (REPLAYED + 0x20, COMMIT, at(0.04))])
    st = read_status(conn, settle_for=0.1)
    assert st.replay_lsn == REPLAYED and lag(st).value == "60.0s"


def test_a_paused_replay_is_not_waited_for():
    conn = Replica([(RECEIVED, COMMIT, at(0.02))], pause="paused")
    st = read_status(conn)
    assert POLL not in conn.sql and st.replay_lsn == REPLAYED


def test_a_failing_poll_keeps_the_first_reading():
    conn = Replica([], fail_poll=True)
    st = read_status(conn)
    assert st.replay_lsn == REPLAYED and lag(st).value == "60.0s"


def test_a_caught_up_reading_asks_nothing_more():
    class CaughtUp(Replica):
        def execute(self, sql, params=None):
            if "pg_is_in_recovery()" in sql:
                self.sql.append(sql)
                return _Cursor((True, format_lsn(RECEIVED), format_lsn(RECEIVED), NOW, COMMIT,
                                150000))
            return super().execute(sql, params)
    conn = CaughtUp([(RECEIVED, COMMIT, NOW)])
    assert lag(read_status(conn)).value == "0.0s"
    assert POLL not in conn.sql


def test_the_wait_is_bounded_by_its_seconds():
    ticks = iter(range(1000))
    slept = []
    first = replica.ReplicaStatus(True, RECEIVED, REPLAYED, NOW, COMMIT, "not paused", 1,
                                  "streaming")
    st = replica.settle(Replica([(REPLAYED, COMMIT, NOW)]), first, seconds=0.5,
                        monotonic=lambda: next(ticks) * 0.1, sleep=slept.append)
    assert st == first and 4 <= len(slept) <= 6
