"""The daemon's HTTP endpoint: /metrics, /live and /ready on `metrics_listen`.

Enabled by `metrics_listen = HOST:PORT` in `[mirrord]`; it shares the HTTP handling
of `mirrord health` on the mirror host (mirrord/health/service.py):

- GET /metrics: the exposition format the scraper's Accept asks for (text 0.0.4 by
  default, or OpenMetrics).
- GET /live: 200 when the main loop turned recently (mirrord.metrics_probes), else 503.
- GET /ready: 200 when every target is `in_sync` (mirrord/target_state.py), else
  503; the JSON body lists each target's state, lag_seconds and reason.
- HEAD and OPTIONS on /live and /ready: the same status without a body
  (HAProxy's `option httpchk` sends OPTIONS).
- Any other path: 404.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from mirrord.metrics_probes import Probes


# connections the kernel queues before accept(): ThreadingHTTPServer's default of 5
# dropped a burst's SYNs (120 probes at once: half unanswered after 10 s, a breaker);
# the kernel caps it at net.core.somaxconn
BACKLOG = socket.SOMAXCONN


def server_class(host: str) -> type[ThreadingHTTPServer]:
    """The ThreadingHTTPServer class for `host` (str, an address or name), shared with
    `mirrord health`: listening with a backlog of BACKLOG connections, bound AF_INET6
    for an IPv6 literal (http.server binds AF_INET unless told). Raises nothing."""
    attrs: dict = {"request_queue_size": BACKLOG}
    if ":" in host:
        attrs["address_family"] = socket.AF_INET6
    return type("MirrordHTTPServer", (ThreadingHTTPServer,), attrs)


def start(registry: CollectorRegistry, probes: Probes, host: str, port: int) -> ThreadingHTTPServer:
    """Serve `registry` and `probes` on (host, port) from a daemon thread (port 0 picks one;
    an IPv6 literal host binds AF_INET6). Stop it with shutdown() then server_close().
    OSError when the address cannot be bound."""
    server = server_class(host)((host, port), _handler(registry, probes))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def _handler(registry: CollectorRegistry, probes: Probes) -> type:
    """A request handler for the daemon: mirrord health's Handler (its GET/HEAD/OPTIONS, headers
    and JSON bodies), answering the primary's paths. Imported here, not at the top, so a
    daemon without metrics_listen never loads the mirror host's modules."""
    from mirrord.health.service import Handler

    class PrimaryHandler(Handler):
        server_version = "mirrord"

        def _answer(self, *, body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/metrics" and self.command in ("GET", "HEAD"):
                # the format the scraper's Accept asks for (text 0.0.4 by default, or OpenMetrics)
                encode, ctype = choose_encoder(self.headers.get("Accept", ""))
                return self._send(200, encode(registry), ctype, body)
            if path == "/live":
                ok, text = probes.live()
                return self._send(200 if ok else 503, text.encode(), "text/plain; charset=utf-8", body)
            if path == "/ready":
                ok, doc = probes.ready()
                return self._json(200 if ok else 503, doc, body)
            return self._send(404, b"not found: /metrics, /live, /ready\n", "text/plain", body)

    return PrimaryHandler
