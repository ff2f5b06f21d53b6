"""What a kept (trashed) file is, and how its place in a target's trash is named.

Before a target deletes or overwrites a file (live stream or reconcile), the
engine asks the target to keep it (mirrord.targets.base.Target.keep). Kept
files live in the target's reserved area, never listed, compared or shipped:

    <root>/.mirrord/trash/<stamp>.<why>/<path>

`stamp` is the UTC time of the change (the journal row's event time) to the
microsecond, e.g. 20261129T123456.123456Z: a retry of the same row (after a
kill -9 between keeping and deleting) names the same place, so nothing is kept
twice and an entry already kept is never replaced. `why` is one of WHYS.
On S3 with bucket versioning the noncurrent version is the kept copy instead
(Kept.version), and nothing is copied.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

TRASH = ".mirrord/trash"
DELETED, OVERWRITTEN, DIR_REMOVED = "deleted", "overwritten", "dir-removed"
WHYS = (DELETED, OVERWRITTEN, DIR_REMOVED)
WHY_TEXT = {DELETED: "deleted", OVERWRITTEN: "overwritten", DIR_REMOVED: "directory removed"}
_FMT = "%Y%m%dT%H%M%S.%fZ"


def stamp_of(when: float) -> str:
    """The trash stamp for a change at `when` (seconds since the epoch, UTC)."""
    return _dt.datetime.fromtimestamp(when, _dt.timezone.utc).strftime(_FMT)


def since_stamp(since: float | None) -> str | None:
    """The lowest stamp Target.trash_list(since=...) lists, None for no bound (`since`
    None): stamp_of(since), the stamp a change at `since` (seconds since the epoch) gets,
    rounded to the microsecond as stamp_of rounds. Stamps are fixed-width UTC text, most
    significant field first (_FMT), so their text order is their time order and a kept
    version is at or after the bound exactly when `stamp >= since_stamp(since)`; a target
    can then seek to the bound in its own sorted listing (an S3 key's StartAfter, a
    directory name) instead of reading every older stamp. ValueError for a `since` whose
    year is not four digits (1000..9999): its stamp would not sort as time."""
    if since is None:
        return None
    try:
        stamp = stamp_of(since)
    except (OverflowError, OSError) as exc:   # beyond time_t / the platform's gmtime
        raise ValueError(f"no trash stamp sorts as the time {since!r}") from exc
    if len(stamp) != len("20261129T123456.123456Z"):
        raise ValueError(f"no trash stamp sorts as the time {since!r}")
    return stamp


def stamp_time(stamp: str) -> float:
    """Seconds since the epoch of a stamp made by stamp_of; ValueError if it is not one."""
    return _dt.datetime.strptime(stamp, _FMT).replace(tzinfo=_dt.timezone.utc).timestamp()


def entry_dir(stamp: str, why: str) -> str:
    """The first component below TRASH for one change: '<stamp>.<why>'."""
    if why not in WHYS:
        raise ValueError(f"unknown reason {why!r}")
    return f"{stamp}.{why}"


def trash_rel(stamp: str, why: str, path: str) -> str:
    """Where `path` is kept, relative to the target root: TRASH/<stamp>.<why>/<path>."""
    return f"{TRASH}/{entry_dir(stamp, why)}/{path}"


def parse_entry_dir(name: str) -> tuple[str, str] | None:
    """(stamp, why) of a '<stamp>.<why>' directory name, None when it is not one."""
    stamp, dot, why = name.rpartition(".")
    if not dot or why not in WHYS:
        return None
    try:
        stamp_time(stamp)
    except ValueError:
        return None
    return stamp, why


def parse_trash_rel(rel: str) -> tuple[str, str, str] | None:
    """(stamp, why, path) of a path below TRASH ('<stamp>.<why>/<path>', relative to
    TRASH), None when it is not one."""
    head, sep, path = rel.partition("/")
    parsed = parse_entry_dir(head)
    if parsed is None or not sep or not path:
        return None
    return parsed[0], parsed[1], path


@dataclass(frozen=True)
class Kept:
    """One kept version of one file on one target.

    `path`: the file's path on the target before the change ('/'-separated, relative to
    the target root). `stamp`/`why`: see the module docstring. `size` in bytes, `mtime_ns`
    the file's own mtime (ns) as it was kept, `mode` its permission bits where known.
    `key`: where it is kept, relative to the target root (TRASH/<stamp>.<why>/<path>), or
    for a versioned S3 bucket the object's own path; `version`: the S3 version id, else None.
    """

    path: str
    stamp: str
    why: str
    size: int
    mtime_ns: int
    key: str
    mode: int | None = None
    version: str | None = None

    @property
    def when(self) -> float:
        """The time of the change, seconds since the epoch."""
        return stamp_time(self.stamp)
