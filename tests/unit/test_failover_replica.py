"""Pure replica and heartbeat judgement: LSN arithmetic, repmgr-style lag, checks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from mirrord.failover import heartbeat, replica
from mirrord.failover.replica import ReplicaStatus, judge, parse_lsn, replay_lag_bytes, \
    replay_lag_seconds
from mirrord.failover.result import WARN

NOW = datetime(2026, 11, 23, 14, 0, 0, tzinfo=timezone.utc)


def status(**kw) -> ReplicaStatus:
    base = dict(in_recovery=True, receive_lsn=0x3000100, replay_lsn=0x3000100, now=NOW,
                last_replay=NOW - timedelta(hours=2), pause_state="not paused",
                receiver_pid=1234, receiver_status="streaming")
    return ReplicaStatus(**{**base, **kw})


def by_name(checks):
    return {c.name: c for c in checks}


def test_lsn_parse_and_format_round_trip():
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert replica.format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn(None) is None and parse_lsn("") is None


def test_lag_is_zero_when_everything_received_is_replayed_however_old_the_last_xact():
    assert replay_lag_seconds(100, 100, NOW, NOW - timedelta(days=3)) == 0.0
    assert replay_lag_seconds(90, 100, NOW, NOW - timedelta(days=3)) == 0.0   # receiver restarted


def test_lag_is_now_minus_last_replayed_transaction_when_wal_is_waiting():
    assert replay_lag_seconds(200, 100, NOW, NOW - timedelta(seconds=42.5)) == 42.5
    assert replay_lag_seconds(None, 100, NOW, NOW - timedelta(seconds=7)) == 7.0
    assert replay_lag_seconds(200, 100, NOW, None) is None
    assert replay_lag_seconds(200, 100, NOW, NOW + timedelta(seconds=3)) == 0.0   # clock skew


def test_lag_in_bytes():
    assert replay_lag_bytes(0x3000200, 0x3000100) == 0x100
    assert replay_lag_bytes(100, 200) == 0
    assert replay_lag_bytes(None, 100) is None


def test_healthy_idle_replica_passes_every_check():
    checks = judge(status(), max_lag=30)
    assert all(c.ok for c in checks)
    assert by_name(checks)["replica.replay_lag"].value == "0.0s"


def test_each_failure_has_its_own_check_with_value_and_limit():
    checks = by_name(judge(status(receive_lsn=0x3000200, last_replay=NOW - timedelta(seconds=45),
                                  pause_state="paused", receiver_status="waiting"), max_lag=30))
    assert not checks["replica.replay_paused"].ok and checks["replica.replay_paused"].value == "paused"
    assert not checks["replica.wal_receiver"].ok and checks["replica.wal_receiver"].value == "waiting"
    lag = checks["replica.replay_lag"]
    assert not lag.ok and lag.value == "45.0s" and lag.limit == "30s"
    assert "above max_replay_lag 30s" in lag.summary()
    assert checks["replica.replay_lag_bytes"].value == "256 B"


def test_no_receiver_and_unknown_lag_refuse():
    checks = by_name(judge(status(receiver_pid=None, receiver_status=None, receive_lsn=0x3000200,
                                  last_replay=None), max_lag=30))
    assert checks["replica.wal_receiver"].refuses and checks["replica.wal_receiver"].value == "none"
    assert checks["replica.replay_lag"].refuses and checks["replica.replay_lag"].value == "unknown"


def test_hidden_receiver_status_is_accepted_and_explained():
    check = by_name(judge(status(receiver_status=None), max_lag=30))["replica.wal_receiver"]
    assert check.ok and "pg_read_all_stats" in check.value


def test_a_promoted_database_is_only_reported_as_not_in_recovery():
    checks = judge(status(in_recovery=False), max_lag=30)
    assert [c.name for c in checks] == ["replica.in_recovery"] and checks[0].refuses


def test_force_and_warnings_do_not_refuse():
    check = by_name(judge(status(pause_state="paused"), max_lag=30))["replica.replay_paused"]
    assert check.refuses and check.status == "FAIL"
    check.forced = True
    assert not check.refuses and check.status == "FAIL (forced)"


def test_describe_never_shows_the_password():
    info = "host=10.0.0.5 port=5433 dbname=wiki user=mirrord password=hunter2hunter2"
    assert replica.describe(info) == "10.0.0.5:5433/wiki user=mirrord"
    replica.protect(info)
    from mirrord.logsetup import redact
    assert "hunter2hunter2" not in redact("oops hunter2hunter2")


# ------------------------------------------------------------------ heartbeat


def hb_bytes(**kw) -> bytes:
    doc = {"version": 1, "time": "2026-11-23T14:00:00.123Z", "unix": 1795442400.123,
           "host": "web1", "target": "s3", "pending": 0, "oldest_pending_age": 0.0, "interval": 5.0}
    return json.dumps({**doc, **kw}).encode()


def test_heartbeat_parse_and_fresh():
    hb = heartbeat.parse(hb_bytes())
    checks = by_name(heartbeat.judge(hb, "", target="s3", now=hb.unix + 4, max_age=60))
    assert checks["heartbeat.age"].ok and checks["heartbeat.age"].value == "4.0s"
    assert checks["heartbeat.pending"].ok


def test_heartbeat_time_used_when_unix_is_missing():
    doc = json.loads(hb_bytes())
    del doc["unix"]
    assert heartbeat.parse(json.dumps(doc).encode()).unix == pytest.approx(1795442400.123)


def test_stale_heartbeat_and_pending_are_warnings_for_failover():
    hb = heartbeat.parse(hb_bytes(pending=3, oldest_pending_age=0.4))
    checks = by_name(heartbeat.judge(hb, "", target="s3", now=hb.unix + 90, max_age=60,
                                     severity=WARN))
    assert checks["heartbeat.age"].status == "WARN" and checks["heartbeat.age"].value == "90.0s"
    assert checks["heartbeat.pending"].value == "3 (oldest 0.4s)"
    assert not any(c.refuses for c in checks.values())


def test_stale_heartbeat_refuses_by_default_and_missing_one_is_named():
    hb = heartbeat.parse(hb_bytes())
    assert by_name(heartbeat.judge(hb, "", target="s3", now=hb.unix + 90, max_age=60))[
        "heartbeat.age"].refuses
    (missing,) = heartbeat.judge(None, "", target="s3", now=0, max_age=60)
    assert missing.refuses and "no heartbeat.json on target s3" in missing.message


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"version": 2}', b'{"version": 1}'])
def test_malformed_heartbeat_raises_value_error(data):
    with pytest.raises(ValueError):
        heartbeat.parse(data)


def test_describe_never_shows_the_rest_of_a_password_with_a_raw_at_sign():
    # libpq ends the userinfo at the first '@': "S3cr3tTail@127.0.0.1" became the host
    # (the config refuses such a URI: tests/unit/test_config_secret_echo.py)
    got = replica.describe("postgresql://wiki:Tr0ub4dor@S3cr3tTail@127.0.0.1:58101/wiki")
    assert "S3cr3tTail" not in got and "Tr0ub4dor" not in got, got
    assert got.startswith("(host not shown")
