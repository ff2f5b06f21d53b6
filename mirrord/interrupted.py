"""What ops cut short by the last stop may have left on a target, undone at the next start.

A row still claimed when the daemon opens the journal by a process that is gone (its
claimer, mirrord.claimer: a row a running `mirrord reconcile` holds is left to it, and
undone only if that process dies without finishing it) was in flight when the last run
ended (`kill -9`, a crash, a stop whose grace ran out): its op may have done part or
all of its work on the target, and the ack that records it never came. The row runs
again (its claim is released) and, being state-based, does what the source holds now at
its own path. What it cannot see lies above that path: a put, a mkdir or a move makes
the missing parent directories of its destination (the local target's parent walk,
rsync's receiver), and nothing records those as shipped. When the source no longer has
such a parent (removed or renamed while the daemon was down), the catch-up at start,
which proposes deletes only for what was recorded, left it on the target for good,
empty (the README's former `kill -9` limit, tests/e2e/test_crash_in_flight.py).

So for each such row, the highest ancestor of its path that is no directory at the
source any more (absent, a file, a symlink) gets a tree removal on that row's target:
whatever stands there is not the source's. The removal is a barrier (mirrord.journal:
the rows below it wait for it), so it cannot run after a re-sent file below it. Nothing
is proposed for a source whose root is empty (an unmounted mount point looks empty: the
catch-up's rule), for an ancestor the excludes leave out, or on a target the source no
longer routes to. Several sources may share a target, one's `dest` nested below another's
(README, `[source]` `dest`; reconcile spares those areas: mirrord.reconcile.listings): a
removal never takes another source's area with it, so where the highest gone parent holds
one, the highest gone parent that holds none is removed instead. What else a transfer cut
short leaves is the targets' own to sweep at open: `.mirrord/tmp` (local),
`.mirrord/rsync-tmp` (rsync), incomplete multipart uploads (S3; mirrord.targets.sweep).
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mirrord.config import SourceConfig
from mirrord.journal import Change
from mirrord.nested import areas_below
from mirrord.targets.paths import join


@dataclass(frozen=True)
class Interrupted:
    """One journal row that was claimed (in flight) when the last run ended."""

    target: str
    source: str
    path: str     # relative to the source root
    kind: str     # the row's op: put, mkdir, move, delete, attr


def removals(rows: Iterable[Interrupted], sources: Iterable[SourceConfig]) -> list[Change]:
    """Tree removals (journal Changes, one per target and directory) of the parent
    directories that `rows`' ops may have made on their targets and that the source no
    longer has. Looks at the source with lstat(2) only; raises nothing (a source root that
    cannot be read proposes nothing)."""
    by_name = {s.name: s for s in sources}
    usable: dict[str, bool] = {}
    looked: dict[tuple[str, str], bool | None] = {}   # (source, relative dir) -> is a directory
    out: dict[tuple[str, str, str], Change] = {}
    now = time.time()
    for row in rows:
        src = by_name.get(row.source)
        if src is None or row.target not in src.targets or "/" not in row.path or row.kind == "delete":
            continue   # a route no longer configured; no parent to undo; a delete makes none
        if row.source not in usable:
            usable[row.source] = _has_entries(str(src.path))
        if not usable[row.source]:
            continue
        gone = _highest_gone_parent(src, row.path, looked)
        if gone is None or src.excluded(gone, is_dir=True):
            continue
        gone = _below_other_areas(gone, row.path, src, row.target, by_name.values())
        if gone is None:
            continue
        out.setdefault((row.target, row.source, gone), Change(
            row.source, gone, "delete", tree=True, time=now, targets=(row.target,)))
    return list(out.values())


def _highest_gone_parent(src: SourceConfig, path: str, looked: dict[tuple[str, str], bool | None]) -> str | None:
    """The shortest parent of `path` (relative) that is not a directory at the source."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        rel = "/".join(parts[:i])
        key = (src.name, rel)
        if key not in looked:
            looked[key] = _is_dir(os.path.join(str(src.path), rel))
        if looked[key] is None:
            return None   # cannot tell (EACCES...): nothing is removed on a guess
        if not looked[key]:
            return rel
    return None


def _below_other_areas(gone: str, path: str, src: SourceConfig, target: str,
                       sources: Iterable[SourceConfig]) -> str | None:
    """`gone`, or the highest directory between it and `path` (exclusive) whose place on
    `target` (below `src.dest`) holds no other source's `dest` area; None when each does."""
    parts = path.split("/")[:-1]
    for i in range(gone.count("/") + 1, len(parts) + 1):
        if not areas_below(sources, target, join(src.dest, "/".join(parts[:i])), besides=src.name):
            return "/".join(parts[:i])
    return None


def _is_dir(full: str) -> bool | None:
    """Whether `full` is a directory (a symlink is not); None when lstat cannot tell."""
    try:
        return stat_mod.S_ISDIR(os.lstat(full).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None


def _has_entries(root: str) -> bool:
    try:
        with os.scandir(root) as it:
            return any(True for _ in it)
    except OSError:
        return False
