"""A memcached address whose server trickles bytes, or answers garbage, during failover.

A local socket server stands in for the bad peer: it accepts, then sends one byte
a second and never a whole line (before: pymemcache's per-socket timeout was reset
by every byte and `mirrord failover` hung for good after the flip, the reload never
ran), or answers a line that is not memcached's (before: `unreachable: b'VALUE x 0 1'`,
its bytes echoed). Real PostgreSQL pair and real memcached for the rest of the run.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mirrord.failover import cache
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


class BadPeer:
    """A TCP server on a free loopback port: mode "trickle" (one byte a second, no newline)
    or "garbage" (a line that is no memcached answer, on every request)."""

    def __init__(self, mode: str):
        self.mode, self.stop = mode, threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.recv(4096)
                while not self.stop.is_set():
                    if self.mode == "trickle":
                        conn.send(b"O")
                        self.stop.wait(1.0)
                    else:
                        conn.send(b"VALUE x 0 1\r\n")
                        if not conn.recv(4096):
                            return
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickler():
    peer = BadPeer("trickle")
    yield peer
    peer.close()


@pytest.fixture
def garbage():
    peer = BadPeer("garbage")
    yield peer
    peer.close()


def _run_bounded(where: Site, limit: float) -> tuple[int | None, float]:
    """where.run("failover") on a thread, given up after `limit` s: (exit or None, seconds)."""
    rc: list[int] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: rc.append(where.run("failover")), daemon=True)
    worker.start()
    worker.join(limit)
    return (rc[0] if rc else None), time.monotonic() - start


@pytest.mark.timeout(30)
def test_flush_server_gives_up_on_a_trickling_server_at_its_deadline(trickler):
    start = time.monotonic()
    result = cache.flush_server(("127.0.0.1", trickler.port), timeout=2.0)
    took = time.monotonic() - start
    assert not result.ok
    assert "no whole answer within 2s (connect_timeout)" in result.detail
    assert took < 4.0


def test_failover_with_a_trickling_server_fails_that_step_and_still_reloads(
        site: Site, trickler, capsys):  # noqa: F811 (the fixture)
    site.configure(memcached=f"{site.memcached.config_value}, 127.0.0.1:{trickler.port}")
    site.fill_cache()
    rc, took = _run_bounded(site, 40)
    assert rc is not None, "failover still running after 40 s"
    out = _output(capsys)
    assert rc != 0
    assert f"NOT done:  memcached 127.0.0.1:{trickler.port}: no whole answer within 3s" in out
    assert site.marker.read_text() == "x"            # the reload ran after it
    assert site.cached(0) is None and site.cached(1) is None   # the real servers were flushed
    steps = {s["name"]: s["status"] for s in site.log()[-1]["steps"]}
    assert steps["reload"] == "done"
    assert steps[f"memcached 127.0.0.1:{trickler.port}"] == "failed"


def test_a_server_answering_garbage_is_a_protocol_error_without_its_bytes(garbage):
    result = cache.flush_server(("127.0.0.1", garbage.port), timeout=3.0)
    assert not result.ok
    assert result.detail.startswith("protocol error")
    assert "VALUE" not in result.detail and "b'" not in result.detail
