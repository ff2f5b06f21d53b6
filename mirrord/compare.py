"""The rules that say whether a target's copy of a source entry differs, and how.

Catch-up (source walk against the `shipped` rows) and reconcile (source walk
against a target listing, HEADs where the listing cannot tell) compare what
the live stream ships: size, exact mtime and permission bits — the mode only
where the target keeps it (Features.keeps_mode). The answer decides the
Change: size or mtime differ -> 'put' (the content may have changed); the
mode alone -> 'attr' (a file: only mode and mtime are sent) or 'mkdir' (a
directory: the mkdir carries the mode).
"""

from __future__ import annotations

from mirrord.targets.model import Entry

# A row of the `shipped` table as mirrord.journal.iter_shipped yields it.
ShippedRow = tuple[bytes, int, int, str | None, int | None]

NEEDS_STAT = "stat"   # only a HEAD (Target.stat) can tell: the listing lacks mtime and mode


def change_kind(entry: Entry, reason: str) -> str:
    """The Change kind that repairs `entry` for a difference `reason` ('mode': mode only)."""
    if entry.is_dir:
        return "mkdir"
    return "attr" if reason == "mode" else "put"


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def stored_ns(ns: int) -> int:
    """A timestamp in nanoseconds as the `shipped` table holds it: clamped to SQLite's
    64-bit INTEGER (years 1677 to 2262). A file dated outside that (`touch -d 2300-01-01`,
    which ext4 and XFS keep) raised OverflowError in the ack, and every row of its batch
    stayed claimed until a restart (a breaker). Compare a source's mtime with a recorded
    one through this too (against_shipped, against_listing), or such a file is re-sent
    at every look."""
    return INT64_MIN if ns < INT64_MIN else INT64_MAX if ns > INT64_MAX else ns


def against_shipped(entry: Entry, row: ShippedRow | None, *, keeps_mode: bool | None) -> str | None:
    """The Change kind that brings a target from the shipped `row` to the source `entry`,
    None when nothing differs (catch-up). Directories' mtimes are not compared (they move
    with every change inside). `keeps_mode`: True (a mode never recorded, NULL from schema
    1, is sent once), None (not known: compared only where recorded), False (never)."""
    if row is None:
        return "mkdir" if entry.is_dir else "put"
    if not entry.is_dir and (row[1], row[2]) != (entry.size, stored_ns(entry.mtime_ns)):
        return "put"
    shipped_mode = row[4]
    if keeps_mode is False or (shipped_mode is None and not keeps_mode):
        return None
    return change_kind(entry, "mode") if shipped_mode != entry.mode else None


def against_listing(s: Entry, t: Entry, h: ShippedRow | None, *, list_mtime: bool,
                    keeps_mode: bool, tolerance: float) -> str | None:
    """Why the listed target file `t` is not the source file `s` (a reason: 'size', 'mtime',
    'mode', ...), None when it is, NEEDS_STAT when only a HEAD can tell. `h` is the file's
    shipped row (used where the listing has no source mtime: S3); `tolerance` in seconds.
    A target entry that is no regular file (Entry.other: a symlink planted at the name)
    always differs: the put replaces it."""
    if t.other is not None:
        return f"a {t.other} on the target"
    if s.size != t.size:
        return "size"
    if list_mtime:
        if abs(t.mtime - s.mtime_ns / 1e9) > tolerance:
            return "mtime"
        if keeps_mode and t.mode is not None and t.mode != s.mode:
            return "mode"
        return None
    # The listing carries the server's upload time, not the source mtime (S3): judge by
    # what we shipped. Same token (ETag) as shipped, and shipped from this very source state.
    if h is not None and h[3] is not None and t.token is not None:
        if etag(t.token) != etag(h[3]):
            return "changed on the target"
        if (h[1], h[2]) != (s.size, stored_ns(s.mtime_ns)):
            return "changed at the source"
        if keeps_mode and h[4] != s.mode:   # NULL: shipped before modes were recorded
            return "mode"
        return None
    return NEEDS_STAT


def against_stat(s: Entry, t: Entry | None, *, keeps_mode: bool, tolerance: float) -> str | None:
    """Why the target file a HEAD describes (`t`: metadata mtime and mode; None: absent) is
    not the source file `s`, or None. An object without mtime metadata (not written by
    mirrord) is stale when uploaded before the source's mtime (LastModified has whole
    seconds); its mode is not known, so not compared."""
    if t is None:
        return "not on target"
    if t.size != s.size:
        return "size"
    if t.mtime_ns == 0:
        return "older on the target" if t.mtime + 1.0 < s.mtime_ns / 1e9 else None
    if abs(t.mtime_ns - s.mtime_ns) / 1e9 > tolerance:
        return "mtime"
    if keeps_mode and t.mode != s.mode:
        return "mode"
    return None


def etag(token: str) -> str:
    """An ETag without its quotes: ListObjects and HeadObject quote it (RFC 7232
    entity-tag) while SeaweedFS's CopyObjectResult does not; one object must compare equal."""
    return token.strip('"')
