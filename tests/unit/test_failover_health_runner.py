"""The health Runner: one run at a time, cached for the interval, bounded by its timeout."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mirrord.health.runner import Runner
from mirrord.health.service import parse_limits


def test_results_are_cached_for_the_interval():
    calls = []
    clock = [100.0]
    runner = Runner(lambda: calls.append(1) or len(calls), interval=2.0, timeout=5.0,
                    monotonic=lambda: clock[0])
    assert runner.get() == (1, "")
    clock[0] += 1.9
    assert runner.get() == (1, "")
    clock[0] += 0.2
    assert runner.get() == (2, "")


def test_concurrent_callers_share_one_run():
    gate = threading.Event()
    calls = []

    def measure():
        calls.append(1)
        gate.wait(10)
        return "m"
    runner = Runner(measure, interval=60, timeout=30)
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(runner.get) for _ in range(20)]
        gate.set()
        assert [f.result() for f in futures] == [("m", "")] * 20
    assert len(calls) == 1 and runner.runs == 1


def test_a_hanging_run_is_reported_after_the_timeout_and_not_started_again():
    gate = threading.Event()
    runner = Runner(lambda: gate.wait(30) and "m", interval=0, timeout=0.2)
    result, why = runner.get()
    assert result is None and "longer than their 0.2s timeout" in why
    assert runner.get()[0] is None and runner.runs == 1      # still hanging: no second thread
    gate.set()
    for _ in range(200):   # bounded poll: the released run ends, the next one answers
        result, _ = runner.get()
        if result == "m":
            break
        time.sleep(0.05)
    assert result == "m"


def test_a_run_that_raises_is_reported_not_raised():
    runner = Runner(lambda: 1 / 0, interval=0, timeout=5)
    result, why = runner.get()
    assert result is None and "ZeroDivisionError" in why


def test_query_limits_are_durations():
    assert parse_limits("max_replay_lag=10s&max_heartbeat_age=1m") == {
        "max_replay_lag": 10.0, "max_heartbeat_age": 60.0}
    with pytest.raises(ValueError, match="unknown query parameter"):
        parse_limits("max_lag=1")


def test_a_limit_given_twice_is_refused_not_loosened():
    """The last one won: `?max_replay_lag=1s&max_replay_lag=100s` loosened a strict probe."""
    with pytest.raises(ValueError, match="'max_replay_lag' given 2 times"):
        parse_limits("max_replay_lag=1s&max_replay_lag=100s")


@pytest.mark.parametrize("query,why", [
    ("max_heartbeat_age=0", "'max_heartbeat_age': must be greater than zero, got '0'"),
    ("max_heartbeat_age=0ms", "'max_heartbeat_age': must be greater than zero, got '0ms'"),
    ("max_heartbeat_age=0.0s", "'max_heartbeat_age': must be greater than zero"),
    ("max_replay_lag=-1s", "'max_replay_lag': not a duration"),
    ("max_replay_lag=%2B1s", "'max_replay_lag': not a duration"),
    ("max_heartbeat_age=99999999999999999999d", "'max_heartbeat_age': too long"),
])
def test_query_limits_follow_the_ini_keys_rules(query, why):
    """`?max_heartbeat_age=0` was accepted (a permanent 503) while the INI refuses 0 for
    the same key: no heartbeat is 0 s old."""
    with pytest.raises(ValueError) as exc:
        parse_limits(query)
    assert why in str(exc.value) and "[failover]" in str(exc.value), exc.value


def test_a_replay_lag_of_zero_is_a_limit_as_in_the_ini():
    assert parse_limits("max_replay_lag=0") == {"max_replay_lag": 0.0}
