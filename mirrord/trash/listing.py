"""What the operator names and sees: paths, times and kept versions, for `mirrord trash`
and `mirrord undelete`.

Turns a command-line PATH into a target path (a target-relative path, or a path
inside a source's tree mapped through that source's `dest`), a command-line TIME
into seconds since the epoch, and a target's kept versions (Target.trash_list)
into the rows the commands print and choose from. No target is written here.
"""

from __future__ import annotations

import bisect

import datetime as _dt
import os
import time
from pathlib import PurePosixPath
from typing import Iterable

from mirrord.config import Config
from mirrord.config.values import parse_duration
from mirrord.logsetup import Verbatim
from mirrord.targets.base import Target
from mirrord.targets.paths import META_DIR, join
from mirrord.trash.model import WHY_TEXT, Kept, since_stamp, stamp_time


class UsageError(ValueError):
    """A PATH or TIME the operator gave cannot be used; the message is one line for them."""


def iso(when: float) -> str:
    """`when` (seconds since the epoch) as UTC ISO 8601 to the microsecond: 2026-11-29T12:34:56.123456Z."""
    text = _dt.datetime.fromtimestamp(when, _dt.timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_time(text: str, *, now: float | None = None) -> float:
    """A TIME argument as seconds since the epoch: ISO 8601 with 'Z' or an offset (a time
    without one is UTC, like every time mirrord prints), a trash stamp as `mirrord trash`
    prints it (20261129T123456.123456Z), or a duration ago ('90s', '2h', '3d': see
    mirrord.config.values.parse_duration). UsageError when it is none of these."""
    text = text.strip()
    now = time.time() if now is None else now
    if text.replace(".", "", 1).isdigit():
        # '1764417600' would read as that many seconds ago (parse_duration's bare seconds):
        # an operator pasting a Unix time would silently match nothing
        raise UsageError(f"not a time: {text!r}: give a unit for a time ago (90s, 30m, 2h, "
                         f"1d) or an ISO 8601 time (2026-11-29T12:00:00Z)")
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return stamp_time(text)
    except ValueError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a time: {text!r} (use ISO 8601 like 2026-11-29T12:00:00Z, "
                         f"or a duration ago like 30m, 2h, 1d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def target_path(cfg: Config, target: str, arg: str) -> str:
    """The target path ('' = everything) an operator's PATH names on `target`.

    An absolute path must lie inside the tree of a [source:*] that lists `target`; it maps
    to that source's `dest` joined with the path below the source root (the same place the
    daemon mirrors it to). Anything else is a target-relative path ('uploads/2024', a
    leading './' or a trailing '/' are ignored). UsageError for '..', mirrord's own area
    `.mirrord/`, or an absolute path outside every source of `target`."""
    if os.path.isabs(arg):
        return _from_source(cfg, target, arg)
    parts = [p for p in PurePosixPath(arg).parts if p not in (".",)]
    if ".." in parts:
        raise UsageError(f"{arg!r}: '..' is not allowed in a path")
    if parts and parts[0] == META_DIR:
        raise UsageError(f"{arg!r} is inside mirrord's own area {META_DIR}/")
    return "/".join(parts)


def _from_source(cfg: Config, target: str, arg: str) -> str:
    path = os.path.normpath(arg)
    for src in cfg.sources_for(target):
        root = os.path.normpath(str(src.path))
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return join(src.dest, os.path.relpath(path, root) if path != root else "")
    raise UsageError(f"{arg!r} is not inside the tree of any [source:*] that mirrors to "
                     f"[target:{target}]")


def source_place(cfg: Config, target: str, path: str) -> tuple[str, str, str] | None:
    """(source name, source root, path below it) where the target file `path` comes from:
    the [source:*] listing `target` whose `dest` is the longest prefix of `path`; None when
    no source of `target` maps to it (e.g. `dest = a` and the path is 'b/x')."""
    best = None
    for src in cfg.sources_for(target):
        dest = src.dest
        if dest and path != dest and not path.startswith(dest + "/"):
            continue
        if best is None or len(dest) > len(best.dest):
            best = src
    if best is None or path == best.dest:
        return None
    rel = path[len(best.dest) + 1:] if best.dest else path
    return best.name, str(best.path), rel


def kept_under(target: Target, prefixes: Iterable[str], *,
               since: float | None = None) -> list[Kept]:
    """Every version `target` keeps at or below any of `prefixes` ('' = all), once each,
    sorted by path and newest change first. `since` (seconds since the epoch, None: no
    bound): the target need not list versions stamped before it (Target.trash_list, to the
    microsecond of the stamps); choose(since=...) is the exact test. Raises what
    Target.trash_list raises."""
    try:
        since_stamp(since)
    except ValueError:   # a year no stamp holds (a caller passing a time before year 1000 or after 9999): choose() alone bounds
        since = None
    seen: dict[tuple[str, str, str | None], Kept] = {}
    for prefix in prefixes:
        for k in target.trash_list(prefix, since=since):
            seen.setdefault((k.key, k.path, k.version), k)
    return sorted(seen.values(), key=lambda k: (k.path, -k.when, k.key))


def choose(kept: Iterable[Kept], *, at: float | None = None, before: float | None = None,
           since: float | None = None, one_kind: bool = True,
           dropped: list[tuple[Kept, Kept]] | None = None) -> dict[str, Kept]:
    """Per path, the newest kept version whose change is at or before `at` (<=), strictly
    before `before` (<), and not before `since` (>=); None bounds are open. Ties (same
    change time) go to the first in `kept`. A file and versions below its name (a
    directory there at another time) cannot both be put back: the newest change wins, the
    other is left out and appended to `dropped` as (left out, the newer one); `one_kind`
    False leaves that to the caller (one_kind_per_name over several targets). Before, a
    restore wrote the older file and refused the newer directory's files ("a file stands
    on the way"), while its dry run promised both (a breaker)."""
    out: dict[str, Kept] = {}
    for k in kept:
        when = k.when
        if (at is not None and when > at) or (before is not None and when >= before) \
                or (since is not None and when < since):
            continue
        if k.path not in out or when > out[k.path].when:
            out[k.path] = k
    return one_kind_per_name(out, dropped) if one_kind else out


def earlier(kept: Iterable[Kept], chosen: dict[str, Kept]) -> dict[str, list[Kept]]:
    """Per path in `chosen` (choose's answer), the other versions of it in `kept` changed
    before the chosen one, whatever the window: the versions restore.again asks whether
    the path holds again."""
    out: dict[str, list[Kept]] = {}
    for k in kept:
        pick = chosen.get(k.path)
        if pick is not None and k.when < pick.when:
            out.setdefault(k.path, []).append(k)
    return out


def one_kind_per_name(out: dict[str, Kept],
                      dropped: list[tuple[Kept, Kept]] | None = None) -> dict[str, Kept]:
    """`out` (path -> chosen version) without the versions that cannot stand beside a newer
    one: a file at P and versions below P/ (see choose); changed in place and returned."""
    paths = sorted(out)
    for path in paths:
        if path not in out:
            continue    # left out already, below a newer file
        lo = bisect.bisect_left(paths, path + "/")
        hi = bisect.bisect_left(paths, path + "0")     # '0' follows '/'
        below = [out[p] for p in paths[lo:hi] if p in out]
        if not below:
            continue
        newest = max(below, key=lambda k: k.when)
        if out[path].when > newest.when:
            for k in below:
                del out[k.path]
                if dropped is not None:
                    dropped.append((k, out[path]))
        else:
            if dropped is not None:
                dropped.append((out[path], newest))
            del out[path]
    return out


def as_dict(k: Kept) -> dict:
    """One kept version for `mirrord trash --json` (times UTC ISO 8601; size in bytes)."""
    return {"path": Verbatim(k.path), "changed": iso(k.when), "stamp": k.stamp, "why": k.why,
            "why_text": WHY_TEXT.get(k.why, k.why), "size": k.size,
            "mtime": iso(k.mtime_ns / 1e9), "mtime_ns": k.mtime_ns, "mode": k.mode,
            "key": Verbatim(k.key), "version": k.version}


def human_size(n: int) -> str:
    """Bytes for people: 950 B, 1.5 KiB, 3.2 MiB ..."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f)} | {
    ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}


def shown_path(path: str) -> str:
    """`path` for a line of text output: a backslash and every control character written
    as an escape (a newline as \\n, others as \\xNN, as `ls -b` does), so a name holding a
    newline cannot split its line into two entries (`--json` keeps the name as it is)."""
    return path.translate(_CONTROL)

