"""Everything `mirrord health` serves or logs passes through the CLI's redaction.

Before: /ready's JSON was json.dumps of the checks as measured. A conninfo whose dbname is
itself a URI (`dbname='postgresql://mirrord:PW@h/wiki'`, which libpq accepts) put the
password in replica.connect's message: `mirrord failover --dry-run` printed it masked
(the CLI's streams are redacted), GET /ready served it in clear (a breaker). The same held
for the message of a check run that raised, a refused query's 400 body, and the request
log line. The service is built in-process on a free loopback port, as in
test_failover_health; the replica is a closed port, so no PostgreSQL is needed.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mirrord.config import load
from mirrord.health.service import Health, make_server

SECRET = "PGsecretZk9qH"


def _ini(tmp: Path) -> Path:
    etc = tmp / "etc"
    etc.mkdir()
    for name in ("readonly.php", "readwrite.php"):
        (etc / name).write_text(name)
    (etc / "active.php").symlink_to("readwrite.php")
    path = tmp / "mirrord.ini"
    path.write_text(f"""
[mirrord]
state_dir = {tmp / 'state'}

[failover]
database = host=127.0.0.1 port=1 dbname='postgresql://mirrord:{SECRET}@127.0.0.1:1/wiki'
link = {etc / 'active.php'}
readonly = {etc / 'readonly.php'}
readwrite = {etc / 'readwrite.php'}
connect_timeout = 2s

[health]
listen = 127.0.0.1:9
interval = 100ms
""")
    path.chmod(0o600)
    return path


class Served:
    def __init__(self, health: Health):
        self.server = make_server(health, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(tmp_path):
    svc = Served(Health(load(_ini(tmp_path))))
    yield svc
    svc.close()


def test_ready_masks_a_password_in_a_dbname_uri_as_the_cli_does(served):
    code, body = served.get("/ready")
    assert code == 503
    doc = json.loads(body)
    connect = next(c for c in doc["checks"] if c["name"] == "replica.connect")
    assert SECRET not in body
    assert "127.0.0.1:1/postgresql://***@127.0.0.1:1/wiki" in connect["message"]
    assert any("postgresql://***@" in line for line in doc["failing"])


def test_a_check_run_that_raises_is_served_redacted(tmp_path):
    def measure():
        raise RuntimeError(f"cannot connect to postgresql://mirrord:{SECRET}@db/wiki "
                           f"password={SECRET}")
    svc = Served(Health(load(_ini(tmp_path)), measure=measure))
    try:
        code, body = svc.get("/ready")
        metrics = svc.get("/metrics")[1]
    finally:
        svc.close()
    assert code == 503 and SECRET not in body, body
    assert "the checks failed: RuntimeError" in body and "password=***" in body
    assert SECRET not in metrics


@pytest.mark.parametrize("query", [
    f"?max_replay_lag=postgresql://u:{SECRET}@h",       # the value echoed
    f"?postgresql://u:{SECRET}@h=1",                    # the key echoed
    f"?max_heartbeat_age=password={SECRET}",
])
def test_a_refused_query_is_answered_redacted(served, query):
    code, body = served.get("/ready" + query)
    assert code == 400 and "error" in json.loads(body)
    assert SECRET not in body, body


def test_metrics_and_live_are_redacted_and_still_parse(served):
    served.get("/ready")
    code, text = served.get("/metrics")
    assert code == 200 and SECRET not in text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "mirrord_ready" in names
    assert served.get("/live") == (200, "live\n")


def test_the_request_log_line_is_redacted(served, caplog):
    """The raw record, before any formatter: a handler other than mirrord's (a test's,
    a library's) never sees the credential either."""
    with caplog.at_level(logging.DEBUG, logger="mirrord.health"):
        served.get(f"/nowhere?token=x&u=postgresql://u:{SECRET}@h")
    lines = [r.getMessage() for r in caplog.records if r.name == "mirrord.health"]
    assert any("/nowhere" in line for line in lines), lines
    assert not any(SECRET in line for line in lines), lines
