"""The primary's endpoint (metrics_listen) on a real loopback HTTP server: /metrics, /live and
/ready, with GET, HEAD and OPTIONS, fed by a real TargetStates on a fake clock."""

from __future__ import annotations

import http.client
import json

import pytest

from mirrord.journal import TargetBacklog
from mirrord.metrics import Metrics
from mirrord.target_state import TargetStates
from tests.fakes import Clock


@pytest.fixture
def mono() -> Clock:
    return Clock(500.0)


@pytest.fixture
def endpoint(mono):
    metrics = Metrics(monotonic=mono)
    host, port = metrics.serve("127.0.0.1", 0)
    yield metrics, host, port
    metrics.close()


def request(host: str, port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_live_follows_the_main_loop(endpoint, mono):
    metrics, host, port = endpoint
    code, _, body = request(host, port, "/live")
    assert (code, body) == (503, b"main loop has not turned yet (starting)\n")
    assert metrics.set_live_window(heartbeat_interval=0.3, watchdog_sec=None) == 5.0  # the floor
    assert metrics.set_live_window(heartbeat_interval=5.0, watchdog_sec=None) == 10.0
    metrics.loop_turned(mono.now)
    mono.now += 10.0
    code, _, body = request(host, port, "/live")
    assert (code, body) == (200, b"main loop turned 10.0s ago (limit 10s)\n")
    mono.now += 0.5
    code, _, body = request(host, port, "/live")
    assert (code, body) == (503, b"main loop STUCK: last turned 10.5s ago (limit 10s)\n")
    metrics.loop_turned(mono.now)
    assert request(host, port, "/live")[0] == 200


def test_live_window_is_watchdog_sec_when_systemd_asks_for_one(endpoint, mono, monkeypatch):
    metrics, host, port = endpoint
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert metrics.set_live_window(heartbeat_interval=5.0) == 60.0
    metrics.loop_turned(mono.now)
    mono.now += 30
    assert request(host, port, "/live")[0] == 200
    mono.now += 31
    assert request(host, port, "/live")[0] == 503


def test_ready_is_503_until_every_target_is_in_sync(endpoint):
    metrics, host, port = endpoint
    code, headers, body = request(host, port, "/ready")
    assert code == 503 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["ready"] is False and doc["targets"] == {} and "first heartbeat" in doc["note"]

    states = TargetStates({"uploads": ["s3", "host"]}, ever_in_sync={"s3", "host"})
    now = 1_700_000_000.0
    metrics.set_target_states(states.update(
        {"s3": TargetBacklog("s3", pending=40, oldest=now - 30)}, now=now))
    code, _, body = request(host, port, "/ready")
    doc = json.loads(body)
    assert code == 503 and doc["ready"] is False
    assert doc["targets"]["s3"] == {"state": "catching_up", "lag_seconds": 30.0,
                                    "reason": "40 changes pending, oldest 30s old "
                                              "(in_sync once none is older than 5s)"}
    assert doc["targets"]["host"] == {"state": "in_sync", "lag_seconds": 0.0,
                                      "reason": "nothing pending"}

    metrics.set_target_states(states.update({}, now=now + 5))
    code, _, body = request(host, port, "/ready")
    assert code == 200 and json.loads(body)["ready"] is True


def test_head_and_options_answer_the_status_without_a_body(endpoint, mono):
    metrics, host, port = endpoint
    for method in ("HEAD", "OPTIONS"):
        code, headers, body = request(host, port, "/ready", method)
        assert (code, body, headers["Content-Length"]) == (503, b"", "0")
    metrics.loop_turned(mono.now)
    code, headers, body = request(host, port, "/live", "OPTIONS")
    assert (code, body) == (200, b"")
    assert headers["Allow"] == "GET, HEAD, OPTIONS"


def test_metrics_and_unknown_paths(endpoint):
    metrics, host, port = endpoint
    metrics.set_target_states(TargetStates({"u": ["s3"]}).update({}, now=1.0))
    code, headers, body = request(host, port, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'mirrord_target_state{state="in_sync",target="s3"} 1.0' in body
    assert b'mirrord_replication_lag_seconds{target="s3"} 0.0' in body
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics", headers={"Accept": "application/openmetrics-text; "
                                                       "version=1.0.0"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Type").startswith("application/openmetrics-text")
    assert resp.read().endswith(b"# EOF\n")
    conn.close()
    code, _, body = request(host, port, "/metrics?x=1")      # a query string is ignored
    assert code == 200 and b"mirrord_target_state" in body
    code, _, body = request(host, port, "/nope")
    assert (code, body) == (404, b"not found: /metrics, /live, /ready\n")
