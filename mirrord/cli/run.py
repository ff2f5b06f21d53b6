"""`mirrord run`: the foreground mirror daemon (SIGTERM/SIGINT stop it cleanly, exit 0)."""

from __future__ import annotations

import argparse
import logging

from mirrord import daemon_start
from mirrord.config import Config
from mirrord.errors import ConfigError, ConfigProblem, FatalError
from mirrord.logsetup import kv

log = logging.getLogger("mirrord")


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the mirror daemon in the foreground")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """Watch first, then import and start the rest (journal, shipper, targets' SDKs, the
    metrics server): the sources are watched tens of milliseconds sooner (issue 18).
    ConfigError (exit 2) for a config with no source: a mirror host's failover-only file is
    valid, but a daemon on it has nothing to do."""
    if not cfg.sources:
        raise ConfigError([ConfigProblem(str(cfg.path), "", "", "no [source:NAME] section: "
                                         "`mirrord run` has nothing to watch")])
    watching = daemon_start.watch_sources(cfg)
    try:
        from mirrord.daemon import Daemon
        from mirrord.reconcile.schedule import attach

        daemon = Daemon(cfg, metrics=_metrics(cfg), watching=watching)
    except BaseException:
        watching.close()
        raise
    attach(daemon)
    return daemon.run()


def _metrics(cfg: Config):
    """The Prometheus registry and its HTTP server when [mirrord] metrics_listen is set."""
    metrics = None
    if cfg.mirrord.metrics_listen is not None:
        from mirrord.metrics import Metrics

        metrics = Metrics()
        for name in cfg.targets:
            metrics.add_target(name)
        for src in cfg.sources:
            metrics.add_source(src.name)
        try:
            host, port = metrics.serve(*cfg.mirrord.metrics_listen)
        except OSError as exc:   # in use, not this host's address: was a traceback
            host, port = cfg.mirrord.metrics_listen
            raise FatalError(f"cannot listen on {host}:{port} ([mirrord] metrics_listen in "
                             f"{cfg.path}): {exc.strerror or exc}") from None
        log.info(kv(msg="metrics", listen=f"{host}:{port}"))
    return metrics
