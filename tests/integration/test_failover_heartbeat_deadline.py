"""A heartbeat target that does not answer: /ready and `failover` agree, in time.

The heartbeat read is bounded by connect_timeout + statement_timeout
(heartbeat.deadline) in `failover`, `switchover` and /ready alike, and read side by
side with the replica. Before, an S3 endpoint that accepted and never answered made
/ready 503 (the check run's cap, 11 s, was shorter than botocore's 30 s x 2 attempts)
while `failover --dry-run` went ahead after 61 s with only a WARN (a breaker).
"""

from __future__ import annotations

import socket
import time

import pytest

from mirrord.failover import heartbeat
from tests.integration.test_failover_health import Service, checks
from tests.integration.test_failover_procedure import site  # noqa: F401 (fixture)


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never says a word (a hung endpoint)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def test_a_hanging_s3_heartbeat_target_warns_alike_in_ready_and_failover(
        pg, site, silent_port, capsys):  # noqa: F811
    site.target_lines = ["type = s3", "bucket = mirror",
                         f"endpoint_url = http://127.0.0.1:{silent_port}",
                         "region = us-east-1", "access_key_id = AKIAEXAMPLEKEYID",
                         "secret_access_key = S3-very-secret-Kx9"]
    site.configure(connect_timeout="2s", statement_timeout="2s")
    began = time.monotonic()
    assert site.run("failover", "--dry-run") == 0
    took = time.monotonic() - began
    out = capsys.readouterr().out
    assert took < 4 + 3, took                        # the deadline, not 61 s
    assert "WARN" in out and "did not answer the heartbeat read in time" in out
    svc = Service(site)
    try:
        began = time.monotonic()
        code, doc = svc.ready()
        assert time.monotonic() - began < 4 + 3
        assert code == 200, doc                      # as failover: it would go ahead
        hb = checks(doc)["heartbeat.age"]
        assert hb["status"] == "WARN" and "did not answer" in hb["message"]
        assert "S3-very-secret-Kx9" not in str(doc)
    finally:
        svc.close()


def test_a_hanging_read_is_bounded_and_joined_not_repeated(site, monkeypatch):  # noqa: F811
    """Any target kind (rsync over a stalled ssh, a hung NFS mount): the read is given up at
    the deadline, and a read still under way is joined, never started again."""
    from mirrord.config import load
    calls = []

    def hang(cfg, name):
        calls.append(name)
        time.sleep(3)
        return None
    monkeypatch.setattr(heartbeat, "read", hang)
    cfg = load(site.ini)
    began = time.monotonic()
    hb, error = heartbeat.fetch(cfg, "mirror", timeout=0.3)
    assert hb is None and error.startswith("TimeoutError:") and "mirror" in error
    hb, error = heartbeat.fetch(cfg, "mirror", timeout=0.3)
    assert time.monotonic() - began < 2
    assert error.startswith("TimeoutError:")
    assert calls == ["mirror"]                      # one hanging read, joined
    monkeypatch.undo()
    site.target_lines = site.target_lines + ["workers = 2"]   # another target: not joined
    site.configure()
    assert heartbeat.fetch(load(site.ini), "mirror", timeout=5)[1] == ""
