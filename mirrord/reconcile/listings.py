"""What a reconcile pass merges with its source walk: the target's listing as one
source sees it, and the `shipped` rows of the state database.

Several sources may mirror to one target, one's dest nested below another's. A
source's pass lists the target below its own dest and leaves out, without comparing
or deleting them: mirrord's own area (`.mirrord/` at the target root; below a
non-empty dest a source's own `.mirrord/` is its data), the areas of the other sources
nested below its dest (other_dests), and what its `exclude` patterns exclude. Both
streams come in mirrord.treewalk.entry_key order, as mirrord.merge needs them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mirrord import journal
from mirrord.journal import opening
from mirrord.config import Config, SourceConfig
from mirrord.exclude import excluded_entry
from mirrord.merge import below
from mirrord.targets.base import Target
from mirrord.targets.model import Entry
from mirrord.targets.paths import own_area


def other_dests(cfg: Config, target: str, source: SourceConfig) -> tuple[str, ...]:
    """Areas of this target that belong to other sources nested below this one's dest."""
    mine = source.dest.strip("/")
    out = []
    for other in cfg.sources_for(target):
        dest = other.dest.strip("/")
        if other.name == source.name or dest == mine:
            continue
        if not mine:
            out.append(dest)
        elif dest.startswith(mine + "/"):
            out.append(dest[len(mine) + 1:])
    return tuple(out)


def own_entries(entries: Iterator[Entry], other: tuple[bytes, ...],
                in_areas: dict[bytes, int], *, directories: bool = True) -> Iterator[Entry]:
    """The source walk's `entries` without those in another source's area (`other`, as
    'dir/' keys relative to this source's dest): a directory at an area's own path is
    left out as the target's listing leaves it out; each entry strictly below one is
    counted in `in_areas[area]` (the inner source owns it: mirrord.nested.claimed_by,
    the pass reports them as errors) instead of being compared; so is, where the target
    has `directories`, a file at an area's own path or above it (it would replace it)."""
    for e in entries:
        key = os.fsencode(e.path) + (b"/" if e.is_dir else b"")
        area = next((a for a in other if key.startswith(a)), None)
        if area is None and not e.is_dir and directories:
            # a file at an area's own path or a parent of it would replace that area
            area = next((a for a in other if a.startswith(key + b"/")), None)
            if area is not None:
                in_areas[area] = in_areas.get(area, 0) + 1
                continue
        if area is None:
            yield e
        elif key != area:
            in_areas[area] = in_areas.get(area, 0) + 1


def target_entries(target: Target, source: SourceConfig,
                   other: tuple[bytes, ...]) -> Iterator[Entry]:
    """`target`'s listing below `source`'s dest, paths relative to it, without what is
    not this source's (see the module docstring; `other`: the other sources' areas as
    'dir/' keys). Raises what Target.list raises."""
    dest = source.dest.strip("/")
    cut = len(dest) + 1 if dest else 0
    skip: bytes | None = None
    for e in target.list(dest):
        if dest and not e.path.startswith(dest + "/"):
            continue  # the dest directory itself
        rel = e.path[cut:]
        key = os.fsencode(rel) + (b"/" if e.is_dir else b"")
        if skip is not None and key.startswith(skip):
            continue
        if _not_ours(source, e.path, rel, key, other):
            skip = key if e.is_dir else skip
            continue
        yield Entry(rel, e.size, e.mtime, e.is_dir, e.digest, e.token, e.mtime_ns, e.mode)


def _not_ours(source: SourceConfig, path: str, rel: str, key: bytes,
              other: tuple[bytes, ...]) -> bool:
    """Target entries this source must neither compare nor delete (`path` is the target's,
    `rel` relative to the source's dest): mirrord's own area is the root's `.mirrord/`
    only (paths.own_area), as the shipper sees it."""
    return (own_area(path) or below(key, other)
            or excluded_entry(source.excluded, rel, key.endswith(b"/")))


def open_readonly(db_path: Path) -> sqlite3.Connection | None:
    """The state database for reading, or None when there is none yet (nothing shipped).
    JournalUnusable when it cannot be read, and when it is missing (or 0 bytes) beside a
    non-empty write-ahead log (opening.exists: truncated, not "nothing shipped")."""
    if not opening.exists(Path(db_path)):
        return None
    conn = journal.connect(Path(db_path), readonly=True)
    try:
        conn.execute("SELECT 1 FROM shipped LIMIT 1")
    except sqlite3.OperationalError:
        conn.close()
        return None
    return conn


def shipped_rows(conn: sqlite3.Connection | None, target: str, source: str) -> Iterator[tuple]:
    """The `shipped` rows of (`target`, `source`) in key order; none without a database."""
    if conn is None:
        return iter(())
    return journal.iter_shipped(conn, target, source)
