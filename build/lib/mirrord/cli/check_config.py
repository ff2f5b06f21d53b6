"""`mirrord check-config`: validate the file and print what was understood (secrets masked)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mirrord.config import Config


def add_parser(sub) -> None:
    p = sub.add_parser("check-config", help="validate the config file and print what it says")
    p.add_argument("--json", action="store_true", help="print the parsed config as JSON")
    p.set_defaults(func=run)


def _plain(value):
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None or v == () or v == "":
                continue
            out[f.name] = "***" if not f.repr and v else _plain(v)
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def summary(cfg: Config) -> dict:
    return {
        "config": str(cfg.path),
        "mirrord": _plain(cfg.mirrord),
        "sources": [_plain(s) for s in cfg.sources],
        "targets": {name: _plain(t) for name, t in cfg.targets.items()},
        "reconcile": _plain(cfg.reconcile),
        "failover": _plain(cfg.failover) if cfg.failover else None,
    }


def run(args: argparse.Namespace, cfg: Config) -> int:
    doc = summary(cfg)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    print(f"{cfg.path}: ok")
    m = cfg.mirrord
    print(f"  state_dir {m.state_dir}, workers {m.workers}, heartbeat every {m.heartbeat_interval:g}s, "
          f"log {m.log_level}/{m.log_format}"
          + (f", metrics on {m.metrics_listen[0]}:{m.metrics_listen[1]}" if m.metrics_listen else ""))
    for s in cfg.sources:
        dest = f" under {s.dest!r}" if s.dest else ""
        excl = f", excluding {', '.join(s.exclude)}" if s.exclude else ""
        print(f"  source {s.name}: {s.path} -> {', '.join(s.targets)}{dest}{excl}")
    for name, t in cfg.targets.items():
        opts = doc["targets"][name].get(t.type, {})
        where = ", ".join(f"{k}={v}" for k, v in opts.items())
        print(f"  target {name} ({t.type}, {t.workers} workers): {where}")
    r = cfg.reconcile
    every = f"every {r.every:g}s" if r.every else "on demand only"
    cap = f"{r.max_delete_percent:g}%" if r.max_delete_percent is not None else str(r.max_delete)
    print(f"  reconcile: {every}, delete {'yes' if r.delete else 'no'} (max {cap}), "
          f"checksum {'yes' if r.checksum else 'no'}")
    if cfg.failover:
        f = cfg.failover
        print(f"  failover: mode {f.mode}, heartbeat from {f.heartbeat_target or '-'}, "
              f"max lag {f.max_replay_lag:g}s, memcached {len(f.memcached)} server(s)")
    return 0
