"""`mirrord check-config`: validate the file and print what was understood (secrets masked,
command lines through config.values.shown_command).

Also shows what each exclude pattern matches, on a fixed list of paths typical of a
MediaWiki uploads tree and on the first paths of the real source (breadth first,
bounded), so a pattern that excludes nothing or too much is seen before it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections import deque
from pathlib import Path

from mirrord.cli.output import print_json
from mirrord.config import Config, SourceConfig
from mirrord.config.values import shown_command
from mirrord.exclude import compile_excludes

# Directories end with '/'. MediaWiki's upload layout: hashed a/ab/ originals,
# thumb/ (regenerable, most of the files), temp/ (stashed uploads), lockdir/
# (FileBackend locks), archive/ (old versions); plus editor and NFS leftovers.
SAMPLES = (
    "a/ab/Example.jpg", "thumb/", "thumb/a/ab/Example.jpg/120px-Example.jpg",
    "temp/", "temp/a/ab/x.jpg", "lockdir/", "lockdir/x.lock",
    "archive/a/ab/20260101000000!Example.jpg", "deep/dir/temp/y.png", "cache/x.jpg",
    "a/cache/x.jpg", ".nfs000123", "x.tmp", "a/ab/.Example.jpg.swp", "a/ab/Example.jpg~",
    "a/ab/Example.jpg.part",
)
WALK_LIMIT = 200   # real paths looked at per source: check-config must stay instant
SHOWN = 5          # real paths printed per pattern


def add_parser(sub) -> None:
    p = sub.add_parser("check-config", help="validate the config file and print what it says")
    p.add_argument("--json", action="store_true", help="print the parsed config as JSON")
    p.set_defaults(func=run)


def _shown(name: str, value):
    """A command line field with its credentials masked (shown_command), else `value`."""
    if name in ("reload_command", "ssh_command"):
        return shown_command(value)
    if name == "hooks":
        return tuple((hook, shown_command(command)) for hook, command in value)
    return value


def _plain(value):
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None or v == () or v == "":
                continue
            out[f.name] = "***" if not f.repr and v else _plain(_shown(f.name, v))
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def real_samples(root: Path, limit: int = WALK_LIMIT) -> list[str]:
    """Up to `limit` relative paths below `root`, breadth first so top-level
    directories (thumb/, temp/) come before the depths of a/ab/; directories end
    with '/'. Symlinks are not followed; unreadable directories are skipped."""
    out: list[str] = []
    todo = deque([""])
    while todo and len(out) < limit:
        rel = todo.popleft()
        try:
            with os.scandir(root / rel if rel else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries[:limit - len(out)]:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                out.append(path + "/")
                todo.append(path)
            elif entry.is_file(follow_symlinks=False):
                out.append(path)
    return out


def _matching(patterns: tuple[str, ...], paths: list[str] | tuple[str, ...]) -> list[str]:
    matcher = compile_excludes(patterns)
    return [p for p in paths if matcher.excluded(p.rstrip("/"), is_dir=p.endswith("/"))]


def exclude_preview(src: SourceConfig) -> list[dict]:
    """Per pattern: the sample and real paths it matches on its own. A `!` pattern
    lists what it re-includes (what it matches without the `!`)."""
    real = real_samples(src.path) if src.exclude and src.path.is_dir() else []
    out = []
    for pattern in src.exclude:
        negated = pattern.startswith("!")
        alone = (pattern[1:] if negated else pattern,)
        out.append({"pattern": pattern, "effect": "re-includes" if negated else "excludes",
                    "samples": _matching(alone, SAMPLES), "real": _matching(alone, real),
                    "real_checked": len(real)})
    return out


def summary(cfg: Config) -> dict:
    return {
        "config": str(cfg.path),
        "mirrord": _plain(cfg.mirrord),
        "sources": [dict(_plain(s), exclude_preview=exclude_preview(s)) if s.exclude else _plain(s)
                    for s in cfg.sources],
        "targets": {name: _plain(t) for name, t in cfg.targets.items()},
        "reconcile": _plain(cfg.reconcile),
        "failover": _plain(cfg.failover) if cfg.failover else None,
        # [health] was read and used by `mirrord health` but never shown
        "health": _plain(cfg.health),
    }


def _preview_line(item: dict) -> str:
    real = item["real"]
    shown = ", ".join(real[:SHOWN]) + (", ..." if len(real) > SHOWN else "")
    return (f"exclude {item['pattern']!r} {item['effect']} {len(item['samples'])} of "
            f"{len(SAMPLES)} samples ({', '.join(item['samples']) or 'none'}); "
            f"{len(real)} of the first {item['real_checked']} real paths"
            + (f" ({shown})" if real else ""))


def _address(hostport: tuple[str, int]) -> str:
    """(host, port) as the config file writes it: an IPv6 address in brackets ("::1:9464"
    read as a host "::1:9464" with no port)."""
    host, port = hostport
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(args: argparse.Namespace, cfg: Config) -> int:
    doc = summary(cfg)
    if args.json:
        # ASCII escapes: a source's file name that is not UTF-8 stays valid JSON ("\udcff")
        print_json(doc, indent=2)
        return 0
    print(f"{cfg.path}: ok")
    m = cfg.mirrord
    print(f"  state_dir {m.state_dir}, workers {m.workers} ([mirrord]; each target says its own), heartbeat every {m.heartbeat_interval:g}s, "
          f"log {m.log_level}/{m.log_format}"
          + (f", metrics on {_address(m.metrics_listen)}" if m.metrics_listen else ""))
    if not cfg.sources:
        print("  no [source:NAME] section: fine for `mirrord failover` on a mirror host; "
              "`mirrord run` refuses it (nothing to watch)")
    for s, shown in zip(cfg.sources, doc["sources"]):
        dest = f" under {s.dest!r}" if s.dest else ""
        excl = f", excluding {', '.join(s.exclude)}" if s.exclude else ""
        print(f"  source {s.name}: {s.path} -> {', '.join(s.targets)}{dest}{excl}")
        print(f"    watcher {s.watcher}; alarm above {s.alarm_deletes} deletes or overwrites "
              f"within {s.alarm_window:g}s, "
              + ("then deletes held until resume-deletes" if s.pause_on_alarm else
                 "deletes go on (pause_on_alarm no)"))
        if not s.path.is_dir():   # not an error: a mount that is away (mirrord.daemon_roots)
            then = ("`mirrord run` refuses to start while no source root is a directory"
                    if not any(o.path.is_dir() for o in cfg.sources) else
                    "the daemon starts without this source, shown lost until it appears")
            print(f"    warning: {s.path} is not a directory now ([source:{s.name}] path): "
                  f"{then}")
        for item in shown.get("exclude_preview", ()):
            print("    " + _preview_line(item))
    for name, t in cfg.targets.items():
        opts = doc["targets"][name].get(t.type, {})
        where = ", ".join(f"{k}={v}" for k, v in opts.items())
        print(f"  target {name} ({t.type}, {t.workers} workers): {where}")
        if t.keep_deleted:
            cap = (f"{t.keep_deleted_max:,} bytes" if t.keep_deleted_max is not None
                   else f"{t.keep_deleted_max_percent:g}% of the mirrored bytes")
            print(f"    keeps deleted and overwritten files {t.keep_deleted:g}s, at most {cap}")
        if t.local is not None and os.path.lexists(t.local.path) and not t.local.path.is_dir():
            # as a source's: a warning, not an error (a missing root is made at start; one
            # that is a file now is waited for, the target retried as not reachable)
            print(f"    warning: {t.local.path} is not a directory now ([target:{name}] path): "
                  "`mirrord run` retries this target as not reachable until it is one")
    r = cfg.reconcile
    every = f"every {r.every:g}s" if r.every else "on demand only"
    cap = f"{r.max_delete_percent:g}%" if r.max_delete_percent is not None else str(r.max_delete)
    every += ", and after every start" if r.at_start else ", never at start"
    print(f"  reconcile: {every}, delete {'yes' if r.delete else 'no'} (max {cap}), "
          f"checksum {'yes' if r.checksum else 'no'}")
    if cfg.failover:
        f = cfg.failover
        print(f"  failover: mode {f.mode}, heartbeat from {f.heartbeat_target or '-'}, "
              f"max lag {f.max_replay_lag:g}s, memcached {len(f.memcached)} server(s)")
        h = cfg.health
        print(f"  health: listen {_address(h.listen)}, checks at most every {h.interval:g}s")
    return 0
