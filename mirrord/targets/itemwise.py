"""Target.sync and Target.keep_many done item by item: the defaults for targets that do not batch.

Each SyncItem becomes the interface calls it stands for (delete, put, set_meta, mkdir),
and each keep request one keep(); a failure is captured as that item's result, never
raised, so one bad path does not fail the batch (the shipper records it on the
journal row). Targets that can batch (rsync, S3's DeleteObjects) override sync() or
keep_many() and fall back to sync_one for the items they do not batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import Entry, SyncItem, SyncResult
from mirrord.targets.mtime import exact_ns

if TYPE_CHECKING:
    from mirrord.targets.base import Target


def sync_one(target: Target, item: SyncItem) -> SyncResult:
    """Apply one SyncItem to `target`: with item.tree everything at or below the path is
    removed first; then kind 'file' is sent (_sync_file), 'dir' made (or, on a target
    without directories, a file standing at the path removed: Target.remove_file_at),
    'absent' deleted. The result
    holds the stored Entry, or the error: RetryableError, PermanentError, NotFound, or an
    OSError classified by classify_oserror. Nothing is raised."""
    try:
        if item.tree:
            target.delete(item.path, tree=True)
        if item.kind == "file":
            return SyncResult(item, _sync_file(target, item))
        if item.kind == "dir":
            if target.features.directories:
                target.mkdir(item.path, mode=item.mode)
            else:
                target.remove_file_at(item.path)
            return SyncResult(item, Entry(item.path, 0, item.mtime, is_dir=True,
                                          mtime_ns=item.mtime_ns, mode=item.mode))
        target.delete(item.path, tree=item.tree)
        return SyncResult(item)
    except (RetryableError, PermanentError, NotFound) as exc:
        return SyncResult(item, error=exc)
    except OSError as exc:
        return SyncResult(item, error=classify_oserror(exc, item.path))


def _sync_file(target: Target, item: SyncItem) -> Entry:
    """A 'file' item: set_meta when only metadata changed; a full put when asked, or when
    the target lost the file (set_meta's NotFound) and the item has the local file. An
    item with a keep_stamp (meta_only never has one) is put with put(keep_stamp=...),
    which a keep_by_condition target accepts: it keeps what the put overwrites."""
    ns = exact_ns(item.mtime, item.mtime_ns)
    if item.meta_only:
        try:
            return target.set_meta(item.path, mode=item.mode, mtime_ns=ns)
        except NotFound:
            if not item.local:
                raise
    return target.put(item.path, item.local, size=item.size, mtime=item.mtime,
                      mtime_ns=ns, mode=item.mode, keep_stamp=item.keep_stamp)


def keep_each(target: Target, requests: Sequence[tuple[str, str, str]]) -> list[Exception | None]:
    """target.keep() for each (path, stamp, coming) request, in order; one entry per request:
    None when kept, else the error (RetryableError, PermanentError, NotFound, or a classified
    OSError). Nothing is raised."""
    out: list[Exception | None] = []
    for path, stamp, coming in requests:
        try:
            target.keep(path, stamp=stamp, coming=coming)
            out.append(None)
        except (RetryableError, PermanentError, NotFound) as exc:
            out.append(exc)
        except OSError as exc:
            out.append(classify_oserror(exc, path))
    return out
