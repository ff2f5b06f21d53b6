"""Metrics through the real HTTP endpoint on a loopback port, parsed with prometheus_client.parser."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mirrord import metrics_families
from mirrord.metrics import Metrics
from mirrord.metrics_families import LATENCY_BUCKETS
from mirrord.target_state import CATCHING_UP, IN_SYNC, STATES, TargetState
from tests.fakes import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(1_700_000_000.0)


@pytest.fixture
def served(clock):
    metrics = Metrics(clock=clock)
    host, port = metrics.serve("127.0.0.1", 0)
    yield metrics, f"http://{host}:{port}/metrics"
    metrics.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return parse(text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_serve_binds_a_free_loopback_port(served):
    metrics, url = served
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0/metrics")
    scrape(url)


def test_pending_gauges(served):
    metrics, url = served
    metrics.set_pending("s3", 12, 4096, 3.5)
    metrics.set_pending("host", 0, 0, -1.0)  # a clock step never shows a negative age
    got = scrape(url)
    assert got[("mirrord_pending_operations", (("target", "s3"),))] == 12
    assert got[("mirrord_pending_bytes", (("target", "s3"),))] == 4096
    assert got[("mirrord_oldest_pending_seconds", (("target", "s3"),))] == 3.5
    assert got[("mirrord_oldest_pending_seconds", (("target", "host"),))] == 0


def test_operations_and_latency_histogram(served):
    metrics, url = served
    metrics.shipped("s3", "put", 0.004)
    metrics.shipped("s3", "put", 0.2)
    metrics.shipped("s3", "delete", None)  # no latency known: counted, not observed
    metrics.failed("s3", "move")
    got = scrape(url)
    ops = "mirrord_operations_total"
    assert got[(ops, (("kind", "put"), ("outcome", "shipped"), ("target", "s3")))] == 2
    assert got[(ops, (("kind", "delete"), ("outcome", "shipped"), ("target", "s3")))] == 1
    assert got[(ops, (("kind", "move"), ("outcome", "failed"), ("target", "s3")))] == 1
    lat = "mirrord_replication_latency_seconds"
    assert got[(lat + "_count", (("target", "s3"),))] == 2
    assert got[(lat + "_sum", (("target", "s3"),))] == pytest.approx(0.204)
    assert got[(lat + "_bucket", (("le", "0.005"), ("target", "s3")))] == 1
    assert got[(lat + "_bucket", (("le", "0.25"), ("target", "s3")))] == 2
    assert got[(lat + "_bucket", (("le", "60.0"), ("target", "s3")))] == 2
    assert LATENCY_BUCKETS[0] == 0.005 and LATENCY_BUCKETS[-1] == 60.0


def test_add_target_creates_zero_series(served):
    metrics, url = served
    metrics.add_target("local")
    got = scrape(url)
    for kind in ("put", "delete", "move", "mkdir"):
        for outcome in ("shipped", "failed"):
            key = ("mirrord_operations_total",
                   (("kind", kind), ("outcome", outcome), ("target", "local")))
            assert got[key] == 0
    assert got[("mirrord_pending_operations", (("target", "local"),))] == 0
    assert got[("mirrord_replication_latency_seconds_count", (("target", "local"),))] == 0


def test_watcher_counters(served):
    metrics, url = served
    metrics.overflow()
    metrics.overflow()
    metrics.watch_error()
    metrics.set_watched_dirs(42)
    got = scrape(url)
    assert got[("mirrord_inotify_overflows_total", ())] == 2
    assert got[("mirrord_watch_errors_total", ())] == 1
    assert got[("mirrord_watched_directories", ())] == 42


def test_reconcile_results_replace_the_previous_pass(served):
    metrics, url = served
    metrics.reconcile_done("s3", 1_700_000_100.0, 12.5,
                           {"compared": 100, "missing": 3, "errors": 1, "bytes": 9000})
    got = scrape(url)
    t = (("target", "s3"),)
    assert got[("mirrord_reconcile_last_run_timestamp_seconds", t)] == 1_700_000_100.0
    assert got[("mirrord_reconcile_duration_seconds", t)] == 12.5
    assert got[("mirrord_reconcile_bytes", t)] == 9000
    assert got[("mirrord_reconcile_files", (("result", "missing"), ("target", "s3")))] == 3
    assert ("mirrord_reconcile_files", (("result", "bytes"), ("target", "s3"))) not in got

    metrics.reconcile_done("s3", 1_700_003_700.0, 2.0, {"compared": 103})
    got = scrape(url)
    assert got[("mirrord_reconcile_files", (("result", "compared"), ("target", "s3")))] == 103
    assert got[("mirrord_reconcile_files", (("result", "missing"), ("target", "s3")))] == 0
    assert got[("mirrord_reconcile_files", (("result", "errors"), ("target", "s3")))] == 0
    assert got[("mirrord_reconcile_bytes", t)] == 0


def test_the_watcher_read_lag_is_served_per_source(served):
    metrics, url = served
    metrics.set_unread_seconds("up", 61.5)
    assert scrape(url)[("mirrord_watcher_unread_seconds", (("source", "up"),))] == 61.5
    metrics.set_unread_seconds("up", 0.0)
    assert scrape(url)[("mirrord_watcher_unread_seconds", (("source", "up"),))] == 0


def test_heartbeat_age_is_computed_at_scrape_time(served, clock):
    metrics, url = served
    assert not any(name == "mirrord_heartbeat_age_seconds" for name, _ in scrape(url))
    metrics.heartbeat_written("s3", clock.now - 2)
    key = ("mirrord_heartbeat_age_seconds", (("target", "s3"),))
    assert scrape(url)[key] == 2
    clock.now += 60
    assert scrape(url)[key] == 62


def test_every_documented_metric_has_the_right_type():
    metrics = Metrics()
    metrics.add_target("s3")
    metrics.reconcile_done("s3", 1.0, 1.0, {"compared": 1})
    metrics.heartbeat_written("s3", 1.0)
    types = {name: kind for name, kind in families(metrics.render().decode()).items()
             if not name.endswith("_created")}  # prometheus_client's creation-time series
    assert types == {
        "mirrord_pending_operations": "gauge",
        "mirrord_pending_bytes": "gauge",
        "mirrord_oldest_pending_seconds": "gauge",
        "mirrord_operations": "counter",
        "mirrord_replication_latency_seconds": "histogram",
        "mirrord_inotify_overflows": "counter",
        "mirrord_watch_errors": "counter",
        "mirrord_watched_directories": "gauge",
        "mirrord_unwatched_directories": "gauge",
        "mirrord_watcher_unread_seconds": "gauge",
        "mirrord_cycle_errors": "counter",
        "mirrord_reconcile_last_run_timestamp_seconds": "gauge",
        "mirrord_reconcile_duration_seconds": "gauge",
        "mirrord_reconcile_files": "gauge",
        "mirrord_reconcile_bytes": "gauge",
        "mirrord_heartbeat_age_seconds": "gauge",
        "mirrord_target_state": "gauge",
        "mirrord_replication_lag_seconds": "gauge",
        "mirrord_trash_files": "gauge",
        "mirrord_trash_bytes": "gauge",
        "mirrord_trash_oldest_timestamp_seconds": "gauge",
        "mirrord_trash_purged": "counter",
        "mirrord_mass_change_alarm": "gauge",
        "mirrord_mass_changes_in_window": "gauge",
        "mirrord_mass_change_alarms": "counter",
        "mirrord_deletes_held": "gauge",
    }
    doc = metrics_families.__doc__
    for name in types:
        shown = name + "_total" if types[name] == "counter" else name
        assert f"`{shown}" in doc, f"{shown} is not documented in mirrord/metrics_families.py"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("### Metrics"):readme.index("## Benchmarks")]
    for name in types:
        shown = name + "_total" if types[name] == "counter" else name
        assert f"| `{shown}" in table, f"{shown} is missing from the README's Metrics table"


def test_target_state_is_one_hot_and_lag_follows(served):
    metrics, url = served
    metrics.set_target_states({"s3": TargetState(CATCHING_UP, 42.5, "x", True),
                               "host": TargetState(IN_SYNC, 0.0, "nothing pending", True)})
    got = scrape(url)
    for state in STATES:
        assert got[("mirrord_target_state", (("state", state), ("target", "s3")))] == \
            (1 if state == CATCHING_UP else 0)
    assert got[("mirrord_target_state", (("state", IN_SYNC), ("target", "host")))] == 1
    assert got[("mirrord_replication_lag_seconds", (("target", "s3"),))] == 42.5
    metrics.set_target_states({"s3": TargetState(IN_SYNC, 0.0, "nothing pending", True)})
    got = scrape(url)
    assert got[("mirrord_target_state", (("state", CATCHING_UP), ("target", "s3")))] == 0
    assert got[("mirrord_target_state", (("state", IN_SYNC), ("target", "s3")))] == 1
    assert got[("mirrord_replication_lag_seconds", (("target", "s3"),))] == 0


def test_two_instances_do_not_collide():
    a, b = Metrics(), Metrics()
    a.overflow()
    assert parse(a.render().decode())[("mirrord_inotify_overflows_total", ())] == 1
    assert parse(b.render().decode())[("mirrord_inotify_overflows_total", ())] == 0


def test_serve_twice_is_refused(served):
    metrics, _url = served
    with pytest.raises(RuntimeError):
        metrics.serve("127.0.0.1", 0)


def test_operations_counted_from_many_worker_threads_lose_nothing(served):
    """shipped() / failed() keep each label set's child after the first call (labels() was a
    measurable part of a worker's time per file); eight workers racing on the first call of
    the same labels must still count every op, and other labels stay apart."""
    import threading
    metrics, url = served
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(500):
            metrics.shipped("s3", "put", 0.01)
        metrics.failed("s3", "put")
        metrics.shipped("s3", "delete")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = scrape(url)
    ops = "mirrord_operations_total"
    assert got[(ops, (("kind", "put"), ("outcome", "shipped"), ("target", "s3")))] == 4000
    assert got[(ops, (("kind", "put"), ("outcome", "failed"), ("target", "s3")))] == 8
    assert got[(ops, (("kind", "delete"), ("outcome", "shipped"), ("target", "s3")))] == 8
    assert got[("mirrord_replication_latency_seconds_count", (("target", "s3"),))] == 4000


def test_the_alarm_and_cycle_error_counters_exist_at_zero_before_their_first_count(served):
    """A counter whose series first appears at 1 shows no increase() for that first count
    (deploy/prometheus: `increase(mirrord_mass_change_alarms_total[10m]) > 0`); they were
    absent until then (a new user's report)."""
    metrics, url = served
    metrics.add_source("uploads")
    metrics.add_cycle_steps(["wait", "read watchers"])
    got = scrape(url)
    assert got[("mirrord_mass_change_alarms_total", (("source", "uploads"),))] == 0
    assert got[("mirrord_cycle_errors_total", (("step", "wait"),))] == 0
    assert got[("mirrord_cycle_errors_total", (("step", "read watchers"),))] == 0
    assert ("mirrord_deletes_held", (("source", "uploads"),)) not in got   # the alarm's to set
    metrics.alarm_fired("uploads")
    assert scrape(url)[("mirrord_mass_change_alarms_total", (("source", "uploads"),))] == 1


def test_the_oldest_kept_change_is_absent_while_the_trash_is_empty(served):
    """README: absent when the trash is empty. It was 0, which an "oldest kept age" alert
    (time() - the gauge) read as 56 years (a trial)."""
    metrics, url = served
    key = ("mirrord_trash_oldest_timestamp_seconds", (("target", "t"),))
    metrics.set_trash("t", files=0, bytes_=0, oldest=None)
    assert key not in scrape(url)
    metrics.set_trash("t", files=2, bytes_=10, oldest=1_700_000_000.0)
    assert scrape(url)[key] == 1_700_000_000.0
    metrics.set_trash("t", files=0, bytes_=0, oldest=None, purged=2)
    got = scrape(url)
    assert key not in got and got[("mirrord_trash_files", (("target", "t"),))] == 0
