"""`mirrord health`: the mirror host's readiness service (/live, /ready, /metrics).

Runs until SIGTERM or SIGINT; tells systemd READY=1 once listening. Needs a
[failover] section (the checks are failover's); listens on [health] listen.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from mirrord import notify
from mirrord.config import Config
from mirrord.errors import ConfigError, ConfigProblem, FatalError
from mirrord.logsetup import kv

log = logging.getLogger("mirrord.health")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("health", help="serve /live, /ready (can the mirror take over now?) and "
                       "/metrics on [health] listen")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: Config) -> int:
    if cfg.failover is None:
        raise ConfigError([ConfigProblem(str(cfg.path), "failover", "",
                                         "mirrord health needs a [failover] section: /ready "
                                         "runs failover's checks")])
    from mirrord.health.service import Health, make_server   # psycopg only when needed
    host, port = cfg.health.listen
    try:
        server = make_server(Health(cfg), host, port)
    except OSError as exc:
        raise FatalError(f"cannot listen on {host}:{port} ([health] listen in {cfg.path}): "
                         f"{exc.strerror or exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        # shutdown() waits for serve_forever to return: never call it on the serving thread
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # as the daemon (mirrord.daemon): SIGHUP's default action ended the service, which
    # Restart=on-failure does not restart; nothing is reloaded, a thread says so
    signal.signal(signal.SIGHUP, lambda _s, _f: threading.Thread(target=_said_hup, daemon=True).start())
    bound = server.server_address
    log.info(kv(event="health_listening", address=f"{bound[0]}:{bound[1]}",
                interval=cfg.health.interval))
    notify.notify(notify.READY, notify.status(f"serving /ready on {bound[0]}:{bound[1]}"))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        notify.notify(notify.STOPPING)
        server.server_close()
    return 0


def _said_hup() -> None:
    log.warning(kv(msg="SIGHUP: mirrord health does not reload its configuration; restart it "
                       "to apply a changed config", action="systemctl restart mirrord-health"))
