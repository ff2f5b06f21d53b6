"""Targets whose areas overlap: one target's place at or below another's.

Each target's reconcile deletes what it holds that its sources do not: a target
whose area holds another's mirror deletes that mirror on every pass, and the
other sends it all again (`[target:t] path = X` beside `[target:t2] path =
X/inner`). The same fault on every kind: local paths (symlinks resolved, so `X`,
`X/` and a link to X are one place), rsync paths on one mirror host (host name's
case and trailing dot ignored; the port is part of the host, as in the README's
"place" rule), and S3 prefixes in one bucket of one endpoint.
"""

from __future__ import annotations

import urllib.parse
from itertools import combinations
from pathlib import Path

from mirrord.config.model import TargetConfig
from mirrord.config.values import _Reader

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError):   # a symlink loop: compared as written
        return path


def _endpoint(url: str) -> str:
    """An S3 endpoint spelled one way: scheme, host (lower case, no trailing dot), port
    (the scheme's default filled in); "" for AWS (no endpoint_url)."""
    if not url:
        return ""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:   # refused by its own key's check already
        return url
    host = (parts.hostname or "").rstrip(".")
    return f"{parts.scheme.lower()}://{host}:{port}"


def place(t: TargetConfig) -> tuple[tuple, tuple[str, ...], str] | None:
    """(the store, the path's segments inside it, the key naming it) of target `t`; None
    for a target of no known type (refused already). Two targets overlap when they share
    the store and one's segments start the other's."""
    if t.local is not None:
        return ("local",), _real(t.local.path).parts, "path"
    if t.rsync is not None:
        o = t.rsync
        host = ("rsync", o.host.lower().rstrip("."), o.port)
        return host, tuple(p for p in o.path.split("/") if p), "path"
    if t.s3 is not None:
        o = t.s3
        store = ("s3", _endpoint(o.endpoint_url), o.bucket)
        return store, tuple(p for p in o.prefix.split("/") if p), "prefix"
    return None


def _where(t: TargetConfig) -> str:
    if t.local is not None:
        return str(t.local.path)
    if t.rsync is not None:
        return f"{t.rsync.host}:{t.rsync.port}:{t.rsync.path}"
    assert t.s3 is not None
    return f"s3://{t.s3.bucket}/{t.s3.prefix}"


def check_target_overlaps(r: _Reader, targets: dict[str, TargetConfig]) -> None:
    """A problem for each pair of targets whose places overlap (place), at the second
    one's key, naming the first one's: exit 2 at load, check-config included."""
    places = {name: place(t) for name, t in targets.items()}
    for a, b in combinations(targets, 2):
        pa, pb = places[a], places[b]
        if pa is None or pb is None or pa[0] != pb[0]:
            continue
        short, long_ = sorted((pa[1], pb[1]), key=len)
        if long_[:len(short)] != short:
            continue
        how = "is the same place as" if pa[1] == pb[1] else (
            "is inside" if len(pb[1]) > len(pa[1]) else "holds")
        r.problem(f"target:{b}", pb[2],
                  f"{_where(targets[b])} {how} [target:{a}] {pa[2]} {_where(targets[a])}: "
                  "each target's reconcile would delete the other's mirror as extra; give "
                  "each target a place of its own, neither inside the other")
