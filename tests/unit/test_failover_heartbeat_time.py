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
