"""The two failover edge cases that failed when tried: a heartbeat dated in the future of this
host (clock skew) and memcached on a UNIX socket; real PostgreSQL pair, real memcached."""

from __future__ import annotations

import time

from pymemcache.client.base import Client

from mirrord.failover import cache
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def test_a_heartbeat_an_hour_ahead_is_flagged_not_fresh(site: Site, capsys):
    site.write_heartbeat(unix=time.time() + 3600)
    assert site.run("failover", "--dry-run") == 0       # only a warning for failover
    out = _output(capsys)
    assert "ok            heartbeat.age" not in out
    line = next(line for line in out.splitlines() if "heartbeat.age" in line)
    assert line.lstrip().startswith("WARN") and "clock skew" in line
    assert "in the future of this host" in line and "max_clock_skew 5s" in line
    assert 3590 < site.check("heartbeat.age")["data"]["ahead"] < 3610


def test_a_heartbeat_slightly_ahead_is_fresh(site: Site, capsys):
    site.write_heartbeat(unix=time.time() + 1.5)
    assert site.run("failover", "--dry-run") == 0
    assert site.check("heartbeat.age")["ok"] is True
    assert site.check("heartbeat.age")["data"]["age"] == 0.0


def test_switchover_and_failback_measure_the_primarys_clock(site: Site, capsys):
    assert site.run("failback", "--dry-run") == 0
    clock = site.check("clock.primary")
    assert clock["ok"] is True and abs(clock["data"]["offset"]) < 5   # same host: no skew


def test_memcached_on_a_unix_socket_is_flushed_and_verified(site: Site, memcached_socket,
                                                            capsys):
    sock = memcached_socket.config_value
    site.configure(memcached=f"{site.memcached.config_value}, {sock}")
    Client(sock).set("page:Main_Page", b"cached html", noreply=False)
    site.fill_cache()
    assert site.run("failover") == 0, _output(capsys)
    out = _output(capsys)
    assert f"done       memcached unix:{sock}" in out
    assert "sentinel key set before is gone" in out
    assert Client(sock).get("page:Main_Page") is None
    assert site.cached(0) is None and site.cached(1) is None


def test_a_dead_socket_server_is_reported_with_an_nc_dash_U_command(site: Site, memcached_socket,
                                                                    capsys):
    sock = memcached_socket.config_value
    site.configure(memcached=sock)
    memcached_socket.stop()
    assert site.run("failover") == 1
    out = _output(capsys)
    assert f"NOT done:  memcached unix:{sock}: unreachable" in out
    assert f"to finish: memcached unix:{sock}: printf 'flush_all\\r\\nquit\\r\\n' | nc -U {sock}" \
        in out
    assert "Name or service not known" not in out


def test_flush_server_proves_the_flush_over_tcp_and_socket_alike(memcached, memcached_socket):
    for server in (memcached.servers[0], memcached_socket.config_value):
        Client(server).set("k", b"v", noreply=False)
        result = cache.flush_server(server)
        assert result.ok and "sentinel" in result.detail
        assert Client(server).get("k") is None
