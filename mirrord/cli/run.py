"""`mirrord run`: the foreground mirror daemon (SIGTERM/SIGINT stop it cleanly, exit 0)."""

from __future__ import annotations

import argparse
import logging

from mirrord.config import Config
from mirrord.daemon import Daemon
from mirrord.logsetup import kv
from mirrord.reconcile.schedule import attach

log = logging.getLogger("mirrord")


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the mirror daemon in the foreground")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: Config) -> int:
    metrics = None
    if cfg.mirrord.metrics_listen is not None:
        from mirrord.metrics import Metrics

        metrics = Metrics()
        for name in cfg.targets:
            metrics.add_target(name)
        host, port = metrics.serve(*cfg.mirrord.metrics_listen)
        log.info(kv(msg="metrics", listen=f"{host}:{port}"))
    daemon = Daemon(cfg, metrics=metrics)
    attach(daemon)
    return daemon.run()
