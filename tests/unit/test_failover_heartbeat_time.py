"""A heartbeat document without `unix` is dated by its `time`, which is UTC even without
an offset: read as the mirror host's local time, a fresh heartbeat looked an hour old in
Berlin and five hours in the future in New York."""

from __future__ import annotations

import json
import time

import pytest

from mirrord.failover import heartbeat
from mirrord.heartbeat import iso, parse


@pytest.fixture(params=["Europe/Berlin", "America/New_York", "UTC"])
def local_zone(request, monkeypatch):
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("suffix", ["", "Z", "+00:00"])
def test_a_time_without_unix_is_utc_whatever_the_local_zone(local_zone, suffix):
    now = time.time()
    stamp = iso(now)[:-1] + suffix          # "2026-11-30T03:00:00.123" + suffix
    hb = parse(json.dumps({"version": 1, "time": stamp, "host": "primary"}).encode())
    assert abs(hb.unix - now) < 0.01
    age, _pending = heartbeat.judge(hb, "", target="mirror", now=now + 2, max_age=60)
    assert age.ok and age.data["age"] == pytest.approx(2, abs=0.01)


def test_a_wall_clock_stepped_back_during_a_run_leaves_its_duration_positive(monkeypatch):
    """failover.log's duration is measured on the monotonic clock: NTP stepping the wall
    clock back an hour mid-run once made it negative."""
    import time

    from mirrord.failover.result import Run, log_record

    run = Run("failover", dry_run=False)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600.0)
    record = log_record(run, host="mirror")
    assert 0.0 <= record["duration"] < 60.0


@pytest.mark.parametrize("unix", ["1700000000", True, None, [1], 1e308, -5, 1e12])
def test_a_unix_stamp_that_is_no_time_is_a_malformed_heartbeat(unix):
    """mirrord writes `unix` as a number of seconds: a string was taken (while true was
    refused), and 1e308 was shown as a clock skew of 300 digits (a breaker)."""
    doc = {"version": 1, "unix": unix, "time": "2026-12-02T00:00:00Z", "host": "primary"}
    with pytest.raises(ValueError, match="heartbeat field missing or malformed"):
        parse(json.dumps(doc).encode())


def test_a_plausible_unix_stamp_is_taken():
    doc = {"version": 1, "unix": 1_796_000_000.5, "time": "", "host": "primary"}
    assert parse(json.dumps(doc).encode()).unix == 1_796_000_000.5
