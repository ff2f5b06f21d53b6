"""[failover] check_timeout bounds the whole check_url fetch (mirrord.failover.sitecheck).

urlopen's timeout bounds each socket operation: a server that sends its body one byte a
second, each within the timeout, held `mirrord failover` for good, after the flip and
before post_failover, the lock held and no failover.log line written (a breaker). A real
HTTP server on loopback: a slow answer fails at the deadline, a prompt one still passes."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mirrord.failover.sitecheck import check


BODY = b'{"readonly": true}' + b" " * 40


class Trickle(BaseHTTPRequestHandler):
    delay = 0.3   # seconds between body bytes
    sent = 0      # body bytes sent so far

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        for i in range(len(BODY)):
            self.wfile.write(BODY[i:i + 1])
            self.wfile.flush()
            type(self).sent = i + 1
            time.sleep(self.delay)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/api.php"
    srv.shutdown()
    srv.server_close()


def test_a_trickling_answer_fails_at_the_deadline(server):
    ok, why = check(server, "readonly", timeout=1.0)
    assert not ok and "no whole answer within check_timeout 1s" in why, why
    assert Trickle.sent < len(BODY)   # given up while the body was still coming


def test_a_prompt_answer_passes(server, monkeypatch):
    monkeypatch.setattr(Trickle, "delay", 0.0)
    ok, why = check(server, "readonly", timeout=5.0)
    assert ok and "body matches 'readonly'" in why, why


class OddCharset(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b'{"readonly": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf8mb4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_unknown_charset_is_read_as_utf8():
    """Breaker J: `charset=x-bogus` (PHP sites send `utf8mb4`) raised LookupError on the
    fetch's thread: a traceback, and the check said "no whole answer" at once."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), OddCharset)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ok, why = check(f"http://127.0.0.1:{srv.server_address[1]}/", "readonly", timeout=5.0)
    finally:
        srv.shutdown()
        srv.server_close()
    assert ok and "body matches" in why, why
