"""The two failover edge cases that failed when tried: a heartbeat dated in the future of this
host (clock skew) and memcached on a UNIX socket; real PostgreSQL pair, real memcached."""

from __future__ import annotations

import os
import subprocess
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


def test_a_full_server_that_refuses_the_sentinel_is_still_flushed(tmp_path):
    """memcached -M (no eviction) full to the last slab: setting the sentinel answers
    SERVER_ERROR out of memory. The flush was never sent, and a full cache (the one most
    likely to serve stale pages) kept every item (a trial). Now it is sent, and the step
    says the flush is not proven (ok False: the operator checks by hand)."""
    from pymemcache.exceptions import MemcacheServerError

    from tests.services.memcached import MEMCACHED, _free_port, _wait_listening

    port = _free_port()
    argv = [MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "2", "-M",
            "-c", "64"] + (["-u", "nobody"] if os.geteuid() == 0 else [])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port)
        client = Client(("127.0.0.1", port))
        stored = []
        for n in range(200_000):   # keys of the sentinel's length: its slab class fills
            key = f"wiki:page:cache:{n:026x}"
            try:
                client.set(key, b"1", noreply=False)
            except MemcacheServerError:
                break
            stored.append(key)
        else:
            raise AssertionError("the server never filled")
        assert stored and len(f"mirrord-failover-sentinel-{'0' * 16}") == len(stored[0])
        result = cache.flush_server(("127.0.0.1", port))
        assert not result.ok and "flush_all sent and acknowledged" in result.detail, result
        assert "out of memory" in result.detail, result
        assert client.get(stored[0]) is None and client.get(stored[-1]) is None
        client.close()
    finally:
        proc.kill()
        proc.wait(10)
