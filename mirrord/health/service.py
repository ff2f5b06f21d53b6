"""The HTTP side of `mirrord health`: /live, /ready and /metrics on [health] listen.

- GET /live: 200 while the service answers; no dependency is checked.
- GET /ready: 200 when `mirrord failover` would go ahead now without --force,
  else 503; 200 too once this host has switched (a failover or switchover made
  here, not failed back: "switched" in the body, readiness.judge); the JSON body lists every check (readiness.judge: the same checks
  and words as `mirrord failover --dry-run`). A stale heartbeat, or one with
  changes pending or a target not in sync (heartbeat.state), is a warning only,
  unless the query gives max_heartbeat_age. Query limits, e.g.
  `/ready?max_replay_lag=10s&max_heartbeat_age=30s`, make those checks strict
  for that request (durations as in the INI file, by the same key's rule: QUERY_LIMITS). A bad query (or a limit given twice) is 400.
- HEAD and OPTIONS on /ready and /live: the same status, no body (HAProxy's
  `option httpchk` sends OPTIONS by default).
- GET /metrics: Prometheus text format, judged with the [failover] limits.

Everything served passes through logsetup's redaction, as the CLI's output does: every
string of a JSON body (redact_doc), every text body and label value (redact), and the
request log lines (the log formatter). A check's message repeats what libpq or a server
said, which may hold a credential the CLI would have masked (a conninfo whose dbname is a
URI with a password: a breaker read it in clear in /ready).
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from mirrord import metrics_http
from mirrord.config import Config, parse_duration
from mirrord.config.values import parse_timeout
from mirrord.failover import appconfig, heartbeat, readiness, replica
from mirrord.failover.result import Check
from mirrord.health.runner import Runner
from mirrord.logsetup import redact, redact_doc

log = logging.getLogger("mirrord.health")
# each query limit read by the rule of the [failover] key it overrides (config.failover):
# max_replay_lag may be 0 (no lag tolerated), max_heartbeat_age must be above zero (no
# heartbeat is 0 s old: `?max_heartbeat_age=0` was a permanent 503)
QUERY_LIMITS = {"max_replay_lag": parse_duration, "max_heartbeat_age": parse_timeout}


def run_timeout(cfg: Config) -> float:
    """Seconds one check run may take: libpq's connect_timeout (at least 2 s, as
    replica.connect rounds it) plus one statement_timeout (heartbeat.deadline: the
    heartbeat is read side by side within it) plus 1 s, plus the moment WAL received is
    given to be replayed (replica.REPLAY_SETTLE)."""
    fo = cfg.failover
    assert fo is not None
    return heartbeat.deadline(fo) + 1.0 + replica.REPLAY_SETTLE


class Health:
    """Measurements (through one Runner), their judgement, and the metrics."""

    def __init__(self, cfg: Config, *, wall=time.time, measure=None):
        assert cfg.failover is not None
        self.cfg, self.wall = cfg, wall
        switch = appconfig.from_config(cfg.failover, cfg.mirrord.state_dir)
        self.timeout = run_timeout(cfg)
        self.runner = Runner(measure or (lambda: readiness.measure(cfg, switch, wall=wall)),
                             interval=cfg.health.interval, timeout=self.timeout)
        self.registry = CollectorRegistry()
        self._lag = Gauge("mirrord_replica_replay_lag_seconds", "Seconds the replica's replay "
                          "is behind (0 when all received WAL is replayed; NaN when unknown)",
                          registry=self.registry)
        self._lag_bytes = Gauge("mirrord_replica_replay_lag_bytes", "Bytes of WAL received but "
                                "not yet replayed (NaN when unknown)", registry=self.registry)
        self._hb_age = Gauge("mirrord_mirror_heartbeat_age_seconds", "Age of the file mirror's "
                             "heartbeat on this host's clock (NaN when absent or skewed)",
                             registry=self.registry)
        self._pending = Gauge("mirrord_mirror_pending_operations", "Changes not yet shipped to "
                              "the mirror when its heartbeat was written", registry=self.registry)
        self._ready = Gauge("mirrord_ready", "1 when mirrord failover would go ahead without "
                            "--force; failing_check names the first check that refuses",
                            ["failing_check"], registry=self.registry)

    def checks(self, **limits: float) -> tuple[bool, list[Check], float | None]:
        """(ready, checks, Unix time of the measurement) for limits in seconds."""
        m, why = self.runner.get()
        if m is None:
            return False, [Check("health.checks", False, "no result",
                                 f"within {self.timeout:g}s", why)], None
        checks = readiness.judge(m, self.cfg, now=self.wall(), **limits)
        return readiness.ready(checks), checks, m.taken

    def ready_doc(self, **limits: float) -> tuple[bool, dict]:
        ok, checks, taken = self.checks(**limits)
        sw = next((c.data for c in checks if c.name == "switch.state"), None)
        return ok, {
            "ready": ok, "switched": sw, "limits": {k: v for k, v in limits.items()},
            "measured_at": taken, "interval": self.cfg.health.interval,
            "checks": [c.to_json() for c in checks],
            "failing": [c.summary() for c in checks if c.refuses],
            "warnings": [c.summary() for c in checks if not c.ok and not c.refuses],
        }

    def metrics(self) -> bytes:
        ok, checks, _ = self.checks()
        data = {c.name: c.data for c in checks}
        self._lag.set(_num(data.get("replica.replay_lag", {}).get("seconds")))
        self._lag_bytes.set(_num(data.get("replica.replay_lag_bytes", {}).get("bytes")))
        self._hb_age.set(_num(data.get("heartbeat.age", {}).get("age")))
        self._pending.set(_num(data.get("heartbeat.pending", {}).get("pending")))
        self._ready.clear()
        failing = next((c.name for c in checks if c.refuses), "")
        self._ready.labels(failing_check=redact(failing)).set(1 if ok else 0)
        return generate_latest(self.registry)


def _num(value) -> float:
    return math.nan if value is None else float(value)


def parse_limits(query: str) -> dict[str, float]:
    """?max_replay_lag=10s&max_heartbeat_age=30s -> seconds; ValueError names the bad part.
    Each value follows the rule of the [failover] key it overrides (QUERY_LIMITS):
    max_heartbeat_age=0 is refused as the INI refuses it.
    A limit given twice is refused: the last one won, so a proxy or a script appending its
    own looser limit to a strict probe's URL loosened it unseen (a breaker)."""
    limits = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
        if key not in QUERY_LIMITS:
            raise ValueError(f"unknown query parameter {key!r} (known: "
                             f"{', '.join(QUERY_LIMITS)})")
        if len(values) > 1:
            raise ValueError(f"query parameter {key!r} given {len(values)} times: give it once")
        try:
            limits[key] = QUERY_LIMITS[key](values[0])
        except ValueError as exc:
            raise ValueError(f"query parameter {key!r}: {exc} (read as [failover] {key} "
                             "is)") from None
    return limits


class Handler(BaseHTTPRequestHandler):
    health: Health            # set on the subclass make_server builds
    server_version = "mirrord-health"
    # seconds a connection may stay silent (socketserver.StreamRequestHandler.timeout):
    # without it, idle connections (slowloris) each held a thread and a descriptor for
    # good, and 1024 of them took /ready down for HAProxy and keepalived (a breaker)
    timeout = 10.0

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/live":
            return self._send(200, b"live\n", "text/plain; charset=utf-8", body)
        if url.path == "/metrics" and self.command in ("GET", "HEAD"):
            return self._send(200, self.health.metrics(), CONTENT_TYPE_LATEST, body)
        if url.path != "/ready":
            return self._send(404, b"not found: /live, /ready, /metrics\n", "text/plain", body)
        try:
            limits = parse_limits(url.query)
        except ValueError as exc:
            return self._json(400, {"error": str(exc)}, body)
        ok, doc = self.health.ready_doc(**limits)
        self._json(200 if ok else 503, doc, body)

    def _json(self, code: int, doc: dict, body: bool) -> None:
        data = json.dumps(redact_doc(doc), indent=1).encode() + b"\n"
        self._send(code, data, "application/json", body)

    def _send(self, code: int, data: bytes, ctype: str, body: bool) -> None:
        """Answer `code` with `data`: a JSON body comes redacted string by string (_json);
        any other is redacted here, line by line (/metrics' label values, /live)."""
        if not ctype.startswith("application/json"):
            data = "\n".join(redact(line) for line in data.decode().split("\n")).encode()
        self.send_response(code, HTTPStatus(code).phrase)
        self.send_header("Cache-Control", "no-store")
        if self.command == "OPTIONS":
            self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data) if body else 0))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        # the request line (a client's query may hold anything) and http.server's own
        # errors: redacted here too, not only by the log formatter mirrord installs
        log.debug("health %s", redact(fmt % args))


def make_server(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """Bound and listening on (host, port) (port 0 picks a free one), with a backlog of
    metrics_http.BACKLOG; serve it with serve_forever(). OSError when the address is taken."""
    handler = type("BoundHandler", (Handler,), {"health": health})
    server = metrics_http.server_class(host)((host, port), handler)
    server.daemon_threads = True
    return server
