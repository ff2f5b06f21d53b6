"""What "the mirror is exact" means, checked the same way in every e2e and reliability test.

A target is exact when it holds, for every file of the source, the same bytes, the
same mtime (to the nanosecond where the target keeps it, else to the second) and
the same permission bits; and, on targets that keep directories (local, rsync),
the same set of directories with the same permission bits — none missing, no empty
one left behind. S3 keeps mtime and mode in object metadata: they are read with
one stat (HEAD) per object, since a listing does not carry metadata.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import time
from pathlib import Path
from typing import Callable

from mirrord.treewalk import walk

# path -> ("f", sha256, mtime_ns, mode) or ("d", mode)
Snapshot = dict[str, tuple]


def source_snapshot(root: Path, excluded: Callable[[str], bool] | None = None, *,
                    directories: bool = True) -> Snapshot:
    """Every file and (with `directories`) directory below `root`, as a target should hold it."""
    out: Snapshot = {}
    for entry in walk(str(root), excluded=excluded, include_dirs=directories):
        full = root / entry.path
        try:
            st = os.lstat(full)
            if entry.is_dir:
                out[entry.path] = ("d", stat_mod.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(full.read_bytes()).hexdigest()
                out[entry.path] = ("f", digest, st.st_mtime_ns, stat_mod.S_IMODE(st.st_mode))
        except (FileNotFoundError, NotADirectoryError):
            continue   # changed under us: the next poll sees the new state
    return out


def target_snapshot(target, prefix: str = "") -> Snapshot:
    """What `target` holds, in the same shape (paths relative to `prefix`)."""
    out: Snapshot = {}
    cut = len(prefix.strip("/")) + 1 if prefix.strip("/") else 0
    for entry in target.list(prefix.strip("/")):
        rel = entry.path[cut:]
        if not rel:
            continue
        if entry.is_dir:
            mode = entry.mode if entry.mode is not None else _stat(target, entry.path).mode
            out[rel] = ("d", mode)
            continue
        if entry.mode is None or not entry.mtime_ns:
            entry = _stat(target, entry.path) or entry
        data = target.read(entry.path)
        if data is None:
            continue
        out[rel] = ("f", hashlib.sha256(data).hexdigest(), entry.mtime_ns, entry.mode)
    return out


def _stat(target, path: str):
    return target.stat(path)


def differences(src: Snapshot, dst: Snapshot, *, mtime_slack_ns: int = 0) -> dict[str, list]:
    """Paths missing on the target, extra on it, and different (with what differs)."""
    missing = sorted(set(src) - set(dst))
    extra = sorted(set(dst) - set(src))
    different = []
    for path in sorted(set(src) & set(dst)):
        a, b = src[path], dst[path]
        if a[0] != b[0]:
            different.append((path, "kind", a[0], b[0]))
        elif a[0] == "d":
            if a[1] != b[1]:
                different.append((path, "mode", oct(a[1]), oct(b[1]) if b[1] is not None else None))
        else:
            if a[1] != b[1]:
                different.append((path, "content"))
            if abs(a[2] - (b[2] or 0)) > mtime_slack_ns:
                different.append((path, "mtime_ns", a[2], b[2]))
            if a[3] != b[3]:
                different.append((path, "mode", oct(a[3]), oct(b[3]) if b[3] is not None else None))
    return {k: v[:20] for k, v in (("missing", missing), ("extra", extra),
                                   ("different", different)) if v}


def slack_ns(target) -> int:
    """The mtime difference a target may show: its precision (S3 metadata and local
    inodes are exact: 0)."""
    return int(round(max(0.0, target.features.mtime_precision - 1e-6) * 1e9))


class NotExact(AssertionError):
    """wait_exact's failure; `found`: differences()'s answer at the deadline."""

    def __init__(self, message: str, found: dict[str, list]):
        super().__init__(message)
        self.found = found

    def paths(self) -> set[str]:
        """Every path named in `found` (missing, extra, or the first item of a difference)."""
        return {item if isinstance(item, str) else item[0]
                for items in self.found.values() for item in items}


def wait_exact(root: Path, target, *, timeout: float = 90.0, prefix: str = "",
               excluded: Callable[[str], bool] | None = None) -> Snapshot:
    """Poll until `target` equals the source exactly (bounded; no timing asserted)."""
    deadline = time.monotonic() + timeout
    dirs = target.features.directories
    while True:
        want = source_snapshot(root, excluded, directories=dirs)
        try:
            have = target_snapshot(target, prefix)
        except Exception as exc:  # noqa: BLE001 - a target still coming back: keep polling
            have = {"<listing failed>": ("f", str(exc), 0, None)}
        found = differences(want, have, mtime_slack_ns=slack_ns(target))
        if not found:
            return have
        if time.monotonic() > deadline:
            raise NotExact(f"target {target.name} is not exact: {found}", found)
        time.sleep(0.25)
