"""A burst of connections to /live: every one is answered (the listen backlog).

Both HTTP servers, `mirrord health` (health.service.make_server) and the daemon's
metrics_listen (metrics_http.start), run in-process on a free loopback port. With
ThreadingHTTPServer's default backlog of 5, a burst of 120 connections left about
half unanswered after 10 s (a breaker): SYNs beyond the queue were dropped and the
clients waited on TCP's retransmission backoff. No timing is asserted: each request
must get its 200 within a generous 60 s, and the listening socket's backlog (ss's
Send-Q for a LISTEN socket) must be at least 128.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from mirrord import metrics_http
from mirrord.health.service import make_server
from mirrord.metrics_probes import Probes

BURST = 200


def _get_live(port: int, go: threading.Event) -> str:
    go.wait()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).split(b"\r\n")[0].decode(errors="replace")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _burst(port: int) -> list[str]:
    go = threading.Event()
    with ThreadPoolExecutor(BURST) as pool:
        futures = [pool.submit(_get_live, port, go) for _ in range(BURST)]
        time.sleep(0.3)   # every thread waiting at the start line
        go.set()
        return [f.result() for f in futures]


def _backlog(port: int) -> int:
    """The listening socket's backlog as the kernel holds it (ss: Send-Q of a LISTEN row)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[2])


@pytest.mark.timeout(180)
def test_health_answers_a_burst_of_200_connections_to_live():
    server = make_server(None, "127.0.0.1", 0)   # /live needs no Health
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _all_answered(server)


@pytest.mark.timeout(180)
def test_metrics_listen_answers_a_burst_of_200_connections_to_live():
    probes = Probes()
    probes.loop_turned(time.monotonic())
    _all_answered(metrics_http.start(CollectorRegistry(), probes, "127.0.0.1", 0))


def _all_answered(server) -> None:
    """The serving `server` listens with a backlog of 128 or more and answers every one of
    a burst of BURST connections to /live; it is shut down after."""
    port = server.server_address[1]
    try:
        assert _backlog(port) >= 128
        answers = _burst(port)
    finally:
        server.shutdown()
        server.server_close()
    assert answers == ["HTTP/1.0 200 OK"] * BURST, {a for a in answers}
