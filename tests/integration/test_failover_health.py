"""`mirrord health` /live, /ready and /metrics against the real PostgreSQL pair.

The service is built in-process on a free loopback port (the e2e test runs the real
command); each test polls with a bound, never times anything.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from mirrord.config import HealthConfig, load
from mirrord.failover import appconfig, readiness
from mirrord.health.service import Health, make_server
from tests.integration.test_failover_procedure import Site, site  # noqa: F401 (fixture)
from tests.services.postgres import PASSWORD


class Service:
    def __init__(self, site: Site, *, interval: float = 0.1, counting: bool = False):
        cfg = load(site.ini)
        self.cfg = dataclasses.replace(cfg, health=HealthConfig(("127.0.0.1", 0), interval))
        self.measured = 0
        switch = appconfig.from_config(self.cfg.failover, self.cfg.mirrord.state_dir)

        def measure():
            self.measured += 1
            time.sleep(0.2 if counting else 0)   # widen the window concurrent polls fall into
            return readiness.measure(self.cfg, switch)
        self.health = Health(self.cfg, measure=measure)
        self.server = make_server(self.health, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def ready(self, query: str = "") -> tuple[int, dict]:
        code, body = self.get("/ready" + query)
        return code, json.loads(body)

    def wait_ready(self, code: int, query: str = "", timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            got, doc = self.ready(query)
            if got == code:
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"/ready{query} stayed {got}, wanted {code}: {doc}")
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service(site):
    svc = Service(site)
    yield svc
    svc.close()


def checks(doc: dict) -> dict:
    return {c["name"]: c for c in doc["checks"]}


def test_ready_lists_the_same_checks_and_words_as_failover_dry_run(site, service, capsys):
    code, doc = service.ready()
    assert code == 200 and doc["ready"] is True
    site.state.mkdir(exist_ok=True)   # a dry run logs only where state_dir exists
    assert site.run("failover", "--dry-run") == 0
    dry = {c["name"]: c for c in site.log()[-1]["checks"]}
    assert list(checks(doc)) == list(dry)
    for name, check in checks(doc).items():
        assert (check["status"], check["limit"]) == (dry[name]["status"], dry[name]["limit"])
    assert checks(doc)["replica.replay_lag"]["value"] == "0.0s"


def test_ready_flips_to_503_while_replay_is_paused_and_back(pg, service):
    pg.pause_replay()
    doc = service.wait_ready(503)
    assert checks(doc)["replica.replay_paused"]["status"] == "FAIL"
    assert any("WAL replay is paused" in f for f in doc["failing"])
    pg.resume_replay()
    service.wait_ready(200)


def test_ready_is_503_while_the_replica_is_stopped_and_leaks_no_password(pg, service):
    pg.stop_replica()
    doc = service.wait_ready(503)
    assert checks(doc)["replica.connect"]["value"] == "unreachable"
    assert PASSWORD not in json.dumps(doc)
    pg.start_replica()
    service.wait_ready(200)


def test_a_stale_heartbeat_warns_and_fails_only_with_a_query_limit(site, service):
    site.write_heartbeat(age=120)
    doc = service.wait_ready(200)
    assert checks(doc)["heartbeat.age"]["status"] == "WARN" and doc["warnings"]
    doc = service.wait_ready(503, "?max_heartbeat_age=30s")
    assert checks(doc)["heartbeat.age"]["status"] == "FAIL"
    site.write_heartbeat(age=0)
    service.wait_ready(200, "?max_heartbeat_age=30s")


def test_a_heartbeat_not_in_sync_warns_and_fails_only_with_a_query_limit(site, service):
    """The heartbeat's state is judged as its age and pending are (failover.heartbeat.judge,
    one rule for failover, switchover and /ready): deletes held on the primary leave the
    mirror short with nothing pending (brkB)."""
    site.write_heartbeat(state="degraded", reason="source up: deletes held")
    doc = service.wait_ready(200)
    state = checks(doc)["heartbeat.state"]
    assert state["status"] == "WARN" and "deletes held" in state["message"], state
    doc = service.wait_ready(503, "?max_heartbeat_age=30s")
    assert checks(doc)["heartbeat.state"]["status"] == "FAIL"
    assert any("heartbeat.state" in f for f in doc["failing"])
    site.write_heartbeat(state="in_sync", reason="nothing pending")
    service.wait_ready(200, "?max_heartbeat_age=30s")


def test_a_replay_lag_query_limit_is_strict_for_that_request(pg, service):
    # The replica measures lag from the last commit it replayed: make that one recent,
    # or the idle time before this test (a slow, loaded run) counts against 30 s too.
    pg.write()
    pg.wait_caught_up()
    pg.set_apply_delay(30)
    pg.write()
    doc = service.wait_ready(503, "?max_replay_lag=0.5s")
    assert checks(doc)["replica.replay_lag"]["limit"] == "0.5s"
    assert service.ready()[0] == 200           # the configured 30s still holds


def test_head_and_options_answer_the_status_without_a_body(pg, service):
    assert service.get("/ready", "HEAD") == (200, b"")
    assert service.get("/ready", "OPTIONS") == (200, b"")
    assert service.get("/live", "OPTIONS") == (200, b"")
    pg.pause_replay()
    service.wait_ready(503)
    assert service.get("/ready", "OPTIONS") == (503, b"")
    assert service.get("/live")[0] == 200      # no dependency checked


def test_a_bad_query_is_400_naming_it(service):
    code, body = service.get("/ready?max_replay_lag=soon")
    assert code == 400 and b"not a duration" in body
    code, body = service.get("/ready?lag=1s")
    assert code == 400 and b"unknown query parameter" in body
    # as the INI refuses it: no heartbeat is 0 s old (it was a 503 for ever)
    code, body = service.get("/ready?max_heartbeat_age=0")
    assert code == 400 and b"'max_heartbeat_age': must be greater than zero" in body, body


def test_metrics_export_the_measurements(pg, service):
    code, body = service.get("/metrics")
    text = body.decode()
    assert code == 200
    for name in ("mirrord_replica_replay_lag_seconds 0.0", "mirrord_replica_replay_lag_bytes 0.0",
                 "mirrord_mirror_pending_operations 0.0", 'mirrord_ready{failing_check=""} 1.0'):
        assert name in text
    assert "mirrord_mirror_heartbeat_age_seconds " in text
    pg.pause_replay()
    service.wait_ready(503)
    text = service.get("/metrics")[1].decode()
    assert 'mirrord_ready{failing_check="replica.replay_paused"} 0.0' in text
    assert 'failing_check=""' not in text


def test_concurrent_polling_does_not_multiply_database_queries(site):
    svc = Service(site, interval=60, counting=True)
    try:
        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda _: svc.ready()[0], range(20)))
        assert codes == [200] * 20
        assert svc.measured == 1 and svc.health.runner.runs == 1
    finally:
        svc.close()


@pytest.fixture
def black_hole():
    """A TCP port that accepts connections and never says a word (a hung database)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_a_hanging_database_makes_ready_answer_503_not_hang(site, black_hole):
    site.configure(database=f"host=127.0.0.1 port={black_hole} dbname=wiki user=mirrord "
                   f"password={PASSWORD}", connect_timeout="2s", statement_timeout="1s")
    svc = Service(site)
    try:
        code, doc = svc.ready()
        assert code == 503
        assert checks(doc)["replica.connect"]["status"] == "FAIL" or \
            checks(doc)["health.checks"]["status"] == "FAIL"
        assert PASSWORD not in json.dumps(doc)
    finally:
        svc.close()


def _strict(body: bytes) -> dict:
    """JSON as RFC 8259 has it: no NaN, Infinity or -Infinity (JSON.parse, Go's decoder)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize("field,value", [
    ("unix", "NaN"), ("unix", "Infinity"), ("unix", "-Infinity"), ("unix", "1e999"),
    ("unix", '"nan"'), ("unix", '"inf"'), ("pending", "1e999"), ("pending", "NaN"),
    ("oldest_pending_age", "Infinity"), ("interval", '"nan"'), ("trash_oldest", "1e999"),
    ("host", "[" * 200_000 + "]" * 200_000), ("pending", "1" + "0" * 400), ("pending", "-5"),
    ("pending", "true"), ("pending", "1e300"), ("unwatched_directories", "2.5"),
    ("trash_bytes", "1" + "0" * 30), ("unix", "1" + "0" * 400)])
def test_a_heartbeat_with_a_number_that_is_not_finite_is_malformed_and_ready_stays_json(
        site, service, field, value):
    """A breaker: `"unix": NaN` (or 1e999, read as Infinity) was taken as a number; /ready's
    body and failover.log then held bare NaN / Infinity, which strict parsers refuse, and an
    infinite count raised OverflowError. Such a heartbeat is malformed now: a warning, as
    any heartbeat that cannot be read."""
    doc = {"version": 1, "time": "2026-12-01T00:00:00.000Z", "unix": time.time(),
           "host": "primary", "target": "mirror", "pending": 0, "state": "in_sync"}
    text = json.dumps(doc).replace("}", f', "{field}": __X__}}') if field not in doc else \
        json.dumps({**doc, field: "__X__"})
    site.mirror.write_meta("heartbeat.json", text.replace('"__X__"', value).replace("__X__", value).encode())
    code, body = service.get("/ready")
    got = _strict(body)
    assert service.get("/metrics")[0] == 200   # a huge int once dropped every scrape
    check = checks(got)["heartbeat.age"]
    assert check["status"] == "WARN" and code == 200, got   # as any unreadable heartbeat
    assert "heartbeat is not JSON" in check["message"] or \
        "heartbeat field missing or malformed" in check["message"], check


def test_an_idle_connection_is_closed_and_ready_keeps_answering(site, monkeypatch):
    """A breaker: connections that never send a request (slowloris) each held a thread and
    a descriptor for good; 1024 of them (systemd's default limit for the unit) took /ready
    down. Each is closed after Handler.timeout seconds of silence now (10 s; 0.5 s here)."""
    from mirrord.health.service import Handler
    monkeypatch.setattr(Handler, "timeout", 0.5)
    svc = Service(site)
    try:
        idle = [socket.create_connection(("127.0.0.1", svc.port), timeout=30) for _ in range(20)]
        assert svc.get("/ready")[0] in (200, 503)          # answered beside them
        for s in idle:
            assert s.recv(1) == b""                        # closed by the server
            s.close()
        assert svc.get("/metrics", method="HEAD") == (200, b"")   # HEAD as GET, no body
    finally:
        svc.close()
