"""Putting one kept version back: onto its target, and (`--to-source`) into the primary's
source tree; the work of `mirrord undelete` for one file.

On the target: what stands at the path now is kept first (Target.keep, coming 'file',
stamped now) when the target keeps deleted files, so an undelete is itself undoable;
then Target.trash_restore puts the kept bytes back atomically with their mtime and mode.

In the source tree: the bytes are fetched into a temp file in the destination's own
directory, given the kept mode and exact mtime (ns), synced and renamed over the
path (rename(2) is atomic within a directory: the watcher and the web app see the
old file or the whole restored one). A file there that differs and was modified or
placed after the kept version's change (its mtime or its ctime, which a copy that keeps
an old mtime cannot set back) is newer work of someone's: it is refused unless `force`.

Both sides: a path that already holds an EARLIER kept version again (`earlier`, by its
bytes) is left as it is, refused (refused_again), unless `newest`. A restore is itself
a change, so what it replaced is kept under the restore's time and is then the newest
version: the same undelete run a second time (a retry, a script run twice) put the
encrypted bytes back over the clean ones it had restored (a trial, helper-160). Its own
flag, not --force: a --force that a refusal advised undid every earlier restore of the
run (helper-162).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_mod
import time
from dataclasses import dataclass
from typing import Sequence

from mirrord.exclude import RESTORE_TEMP_PREFIX
from mirrord.fsutil import open_dir_beneath
from mirrord.targets.base import Target
from mirrord.targets.mtime import exact_ns
from mirrord.trash.listing import iso
from mirrord.trash.model import Kept, stamp_of
from mirrord.trash.swaps import kept_digest, same_bytes
from mirrord.treewalk import file_digest

# a restore killed mid-way leaves at most this temp file; never part of a source (excluded)
TEMP_PREFIX = RESTORE_TEMP_PREFIX
# A version kept by S3 bucket versioning is stamped with the LastModified of what replaced
# it, which some servers (SeaweedFS) give in whole seconds: the change may lie up to a
# second after its stamp, and a file damaged in that second must not count as newer.
VERSION_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class Outcome:
    """What one restore did: `action` is 'restored', 'written', 'unchanged' (already in
    place), 'refused', 'failed' or, in a dry run, 'would restore' / 'would write';
    `where` names the target or the source file; `detail` says why, for the operator."""

    action: str
    where: str
    kept: Kept
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action not in ("refused", "failed")


def same_as_kept(target: Target, kept: Kept, keeper: Target | None = None) -> bool:
    """Whether `target` already holds this version at its path (a file of the kept size
    and mtime, within the target's mtime precision, and the kept bytes: swaps.same_bytes,
    the kept file fetched from `keeper`, default `target`, which keeps it): restoring again changes nothing. Size and mtime alone are no proof: a file
    encrypted in place with its length kept and its mtime put back was "already" the
    clean version kept of it, and was never restored (a review, helper-155). An error
    while comparing the bytes answers False (restore)."""
    entry = target.stat(kept.path)
    if entry is None or entry.is_dir or entry.size != kept.size:
        return False
    precision_ns = int(target.features.mtime_precision * 1e9)
    if abs(exact_ns(entry.mtime, entry.mtime_ns) - kept.mtime_ns) > precision_ns:
        return False
    try:
        return same_bytes(target, kept, kept.path, keeper)
    except Exception:  # noqa: BLE001 - unsure: restore, which keeps what stands there first
        return False


def again(kept: Kept, earlier: Sequence[tuple[Target, Kept]],
          holds) -> tuple[Target, Kept] | None:
    """The (target keeping it, version) of `earlier` (versions of kept.path; those changed
    before `kept` count) the path already holds again, by `holds(keeper, version) ->
    bool`, newest first (the one a restore last put back); None when it holds none."""
    for keeper, k in sorted(earlier, key=lambda pair: -pair[1].when):
        if k.path == kept.path and k.when < kept.when and holds(keeper, k):
            return keeper, k
    return None


def refused_again(where: str, kept: Kept, held: Kept) -> Outcome:
    """The refusal (exit 1) of putting `kept` back where the earlier version `held` stands
    again. Not 'unchanged' (exit 0): the bytes cannot tell a retry of the restore that put
    `held` back from `held` come back otherwise (the targets restored, then a reconcile
    sending the still encrypted source again: 'unchanged' left the source encrypted,
    exit 0, helper-163); the operator is told, and --newest takes `kept`."""
    return Outcome("refused", where, kept,
                   f"already holds the earlier version of {iso(held.when)} again (a second "
                   "run of the same undelete, or that version back otherwise); --newest "
                   "puts this newer one back")


def restore_on_target(target: Target, kept: Kept, *, keep_first: bool, dry_run: bool = False,
                      now: float | None = None, earlier: Sequence[tuple[Target, Kept]] = (),
                      newest: bool = False) -> Outcome:
    """Put `kept` back at kept.path on `target`. With `keep_first` (the target has
    keep_deleted on) what stands there now is kept first, stamped `now` (seconds; default
    the clock), and so is a file standing where one of its parent directories goes.
    `earlier`: other versions of the path, each with the target keeping it (any target:
    one whose older versions expired still holds them again); one of them held there
    again (same_as_kept) is left in place, refused, unless `newest` (the module
    docstring). Returns the Outcome; raises what Target.stat / checksum / keep /
    trash_restore raise (RetryableError, PermanentError)."""
    where = f"{target.name}:{kept.path}"
    if same_as_kept(target, kept):
        return Outcome("unchanged", where, kept, "already holds this version")
    held = None if newest else again(kept, earlier,
                                     lambda keeper, k: same_as_kept(target, k, keeper))
    if held is not None:
        return refused_again(where, kept, held[1])
    if dry_run:
        return Outcome("would restore", where, kept)
    if keep_first:
        # each parent first, shallowest first: a FILE standing where a parent directory
        # goes (`rm -rf tree; echo > tree` at the source, mirrored) is replaced by the
        # directory the restore makes, and was lost unkept (a breaker). keep() of a
        # directory or of nothing, coming 'dir', keeps nothing. Only where directories
        # are real (Features.directories): an S3 object `tree` lives beside `tree/a.bin`.
        stamp = stamp_of(time.time() if now is None else now)
        parts = kept.path.split("/") if target.features.directories else [kept.path]
        requests = [("/".join(parts[:n]), stamp, "dir") for n in range(1, len(parts))]
        for error in target.keep_many(requests + [(kept.path, stamp, "file")]):
            if error is not None:
                raise error
    target.trash_restore(kept, kept.path)
    return Outcome("restored", where, kept)


def refusal(path: str, kept: Kept, *, force: bool) -> str | None:
    """Why writing `kept` over the source file `path` is refused, or None when it may be
    written. A directory there is always refused; a regular file that differs (size or
    mtime) and was modified or placed (mtime or ctime) after the kept version's change
    (for a versioned S3 kept
    version: more than VERSION_SLACK_NS after its stamp) needs `force`."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return _refusal(st, kept, force=force)


def _refusal(st: os.stat_result, kept: Kept, *, force: bool) -> str | None:
    if stat_mod.S_ISDIR(st.st_mode):
        return "a directory stands there"
    if not stat_mod.S_ISREG(st.st_mode) and not force:
        return "something other than a regular file stands there (use --force)"
    changed_ns = round(kept.when * 1e9) + (VERSION_SLACK_NS if kept.version else 0)
    # the ctime too: a newer upload placed with its old mtime kept (rsync -t, tar -x,
    # cp -p) was still put there after the change, and no one can set a ctime back
    if max(st.st_mtime_ns, st.st_ctime_ns) > changed_ns and not force:
        return ("the file there is newer (modified after the change this version was kept "
                "at) and differs: use --force to overwrite it")
    return None


def _unchanged(st: os.stat_result | None, kept: Kept, target: Target, dfd: int,
               name: str) -> bool:
    """Whether the source file `name` in directory `dfd` (lstat `st`) already is this
    version: the same size, exact mtime and the kept bytes (swaps.kept_digest against the
    source file's SHA-256, only when size and mtime match). Size and mtime
    alone let `undelete --to-source` skip a file encrypted in place with its length
    kept and its mtime put back as "already holds this version" (a review, helper-155).
    Raises what Target.trash_fetch raises; a source file that cannot be read is not this
    version (False)."""
    if not (st is not None and stat_mod.S_ISREG(st.st_mode) and st.st_size == kept.size
            and st.st_mtime_ns == kept.mtime_ns):
        return False
    try:   # O_NONBLOCK: a FIFO swapped in since the lstat must not block the restore
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dfd)
    except OSError:
        return False
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            return False
        have = file_digest(os.dup(fd))
    except OSError:
        return False
    finally:
        os.close(fd)
    return kept_digest(target, kept) == have


def restore_to_source(target: Target, kept: Kept, root: str, rel: str, *, force: bool = False,
                      dry_run: bool = False, earlier: Sequence[tuple[Target, Kept]] = (),
                      newest: bool = False) -> Outcome:
    """Write `kept` (fetched from `target`) to `rel` ('/'-separated) below the source root
    `root`, atomically, with the kept mode (0644 when the target did not keep one) and
    exact mtime; missing parent directories are created. Every component is opened below
    `root` without following a symlink (mirrord.fsutil.open_dir_beneath): the upload tree
    is written by the web app's users, and a symlink planted there must not lead a restore
    run as root outside it. Refused (not raised) when a symlink or a file stands on the
    way, or when `_refusal` says so. `earlier`: other versions of the path, each with the
    target keeping it; one of them in the source file again (`_unchanged`) leaves it,
    refused, unless `newest` (the module docstring). A source file that already is
    `kept` while a target holds one of them again (restored there first) gets that one.
    Raises OSError from the file system and what Target.trash_fetch raises."""
    path = os.path.join(root, rel)
    head, _, name = rel.rpartition("/")
    try:
        dfd = open_dir_beneath(root, head, create=not dry_run)
    except FileNotFoundError:
        if dry_run:   # the parents are made by the real run
            return Outcome("would write", path, kept)
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            return Outcome("refused", path, kept,
                           "a symlink or a file stands on the way below the source root")
        raise
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if _unchanged(st, kept, target, dfd, name):
            back = None if newest else again(kept, earlier, lambda keeper, k:
                                             same_as_kept(keeper, k))
            if back is None:
                return Outcome("unchanged", path, kept, "already holds this version")
            # the targets were restored (`undelete` without --to-source) and kept what
            # stood there, which the source still holds: the newest version is that, and
            # the source kept the encrypted bytes, "unchanged" (helper-162). The version a
            # target holds again is the one to write.
            target, kept = back
        else:
            held = None if newest else again(kept, earlier, lambda keeper, k:
                                             _unchanged(st, k, keeper, dfd, name))
            if held is not None:
                return refused_again(path, kept, held[1])
        why = None if st is None else _refusal(st, kept, force=force)
        if why:
            return Outcome("refused", path, kept, why)
        if dry_run:
            return Outcome("would write", path, kept)
        why = _write_beneath(target, kept, dfd, name, st, force=force)
        if why:
            return Outcome("refused", path, kept, why)
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return Outcome("written", path, kept)


def _write_beneath(target: Target, kept: Kept, dfd: int, name: str,
                   checked: os.stat_result | None, *, force: bool) -> str | None:
    """Fetch into a new temp file in the directory `dfd` (O_EXCL, O_NOFOLLOW), set mode and
    exact mtime after the last write (a write would move the mtime again), fsync, and
    rename it over `name` in the same directory (rename(2) is atomic there: the watcher
    and the web app see the old file or the whole restored one). `checked` is what stood
    at `name` when the caller judged it (None: nothing): when something else stands there
    once the fetch is done (an upload placed meanwhile: a big fetch takes seconds), it is
    judged again (_refusal) and the reason returned, nothing written; else None. What
    lands between that last look and the rename (microseconds) is not seen."""
    tmp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dfd)
    written = False
    try:
        target.trash_fetch(kept, f"/proc/self/fd/{fd}")
        os.fchmod(fd, kept.mode if kept.mode is not None else 0o644)
        os.utime(fd, ns=(kept.mtime_ns, kept.mtime_ns))
        os.fsync(fd)
        # closed before the rename: a close after it was reported as a second write of
        # `name` (its close_write then names the new path), counted as a second overwrite
        # by the mass-change alarm (a breaker); closed now it names the excluded temp file
        os.close(fd)
        fd = -1
        try:
            now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is not None and _identity(now) != _identity(checked):
            why = _refusal(now, kept, force=force)   # it came or changed during the fetch
            if why is not None:
                return f"placed there while the kept version was fetched: {why}"
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        written = True
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        if not written:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)


def _identity(st: os.stat_result | None) -> tuple | None:
    """What tells one version of a directory entry from another: inode, type, size, mtime
    and ctime (a rename over it, a write, a chmod all change one)."""
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
