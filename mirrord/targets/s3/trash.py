"""The S3 target's trash (keep_deleted): keep, list, purge, restore and fetch kept files.

Two ways to keep, chosen at open() by GetBucketVersioning (versioning.detect_mode):

- 'copy' (versioning off or suspended): keep() is a server-side CopyObject of
  `prefix + path` to `prefix + .mirrord/trash/<stamp>.<why>/<path>` with
  MetadataDirective=COPY, so mtime, mode, sha256 and Content-Type stay with the
  kept bytes; above the 5 GiB CopyObject limit the multipart copy of copy.py.
  A directory ('dir-removed') is every key below `path/`, copied in parallel.
  Idempotent per stamp: the copy carries `If-None-Match: *` (S3 conditional
  writes; SeaweedFS 4.x honours it on CopyObject and answers 412), so a retry
  after kill -9 never replaces the kept old bytes with the new ones; the multipart
  copy, which cannot carry the condition, HEADs the trash key first.
  A plain put does not call keep(): it keeps by condition (conditional.py), through
  keep_overwritten, which never lists `path/` (a put destroys no other key).
- 'versioning' (bucket versioning Enabled): the noncurrent version S3 keeps
  anyway is the kept copy; keep() copies nothing. trash_list reads
  ListObjectVersions: every version that is not the newest of its key, stamped
  with the time it stopped being current (LastModified of the next newer version
  or delete marker), why 'deleted' when that next newer one is a delete marker,
  else 'overwritten' (versioning.py); Kept.key is the object's own path, Kept.version
  its VersionId. Entries a 'copy' period left under .mirrord/trash/ are listed too,
  so retention still purges them.

trash_list(since=...) (swaps.redundant after every exchange of two files) starts the copy
listing at that stamp (ListObjectsV2 StartAfter: the keys begin with the stamp), so it
reads what was kept since then, not the whole trash; the noncurrent versions are listed
by the key's prefix anyway and only filtered.

Neither ListObjectsV2 nor ListObjectVersions returns user metadata, so each kept
file's mtime and mode come from a HEAD, at most HEAD_WINDOW in flight. Purges
are DeleteObjects batches (S3Target.delete_batch keys, 1000 at most: the S3 API
limit), with VersionId for versions. Failures are classified by errors.classify.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from botocore.exceptions import ClientError

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.logsetup import kv
from mirrord.targets.model import Entry
from mirrord.targets.s3 import copy, deletes
from mirrord.targets.s3.errors import error_code, is_not_found, shown
from mirrord.targets.s3.keys import MAX_KEY_BYTES, head_entry, key_for
from mirrord.targets.s3.listing import pages
from mirrord.targets.s3.versioning import VERSIONING, file_ns, kept_version, noncurrent, under
from mirrord.trash.model import (DELETED, DIR_REMOVED, OVERWRITTEN, TRASH, Kept,
                                 parse_entry_dir, parse_trash_rel, since_stamp, trash_rel)

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

log = logging.getLogger("mirrord.targets.s3")
HEAD_WINDOW = 8                 # HEADs in flight while listing the trash
COMINGS = ("file", "dir", "absent")
T = TypeVar("T")


# ------------------------------------------------------------------ keep
def keep(t: "S3Target", path: str, *, stamp: str, coming: str) -> int:
    """Target.keep for S3 (see the module docstring); the bytes copied into the trash.
    A file is looked up with one HEAD (its size is the answer, and it picks the copy kind);
    only when no object is at `path` are the keys below `path/` listed (a directory). An
    object at `path` and keys below it at once (S3 allows it, a mirror never makes it):
    only the object is kept."""
    if coming not in COMINGS:
        raise PermanentError(f"{t.describe()}: keep: coming must be one of {COMINGS}, "
                             f"not {coming!r}")
    check_stamp(t, stamp)
    key = t._key(path)   # a name S3 cannot hold: PermanentError, as put() says
    if t.trash_mode() == VERSIONING:
        return 0
    head = t._head(path, key)
    if head is not None:
        why = OVERWRITTEN if coming == "file" else DELETED
        return _keep_one(t, path, key, stamp, why, head["ContentLength"])
    if coming == "dir":
        return 0
    kept = 0
    with ThreadPoolExecutor(max_workers=min(copy.MOVE_CONCURRENCY, t.workers)) as pool:
        for page in pages(t, "keep", Prefix=key + "/"):
            objs = [o for o in page.get("Contents", ()) if not o["Key"].endswith("/")]
            kept += sum(pool.map(lambda o: _keep_one(t, o["Key"][len(t.root):], o["Key"],
                                                     stamp, DIR_REMOVED, o["Size"]), objs))
    return kept


def check_stamp(t: "S3Target", stamp: str) -> None:
    """PermanentError unless `stamp` is a trash stamp (mirrord.trash.model)."""
    if parse_entry_dir(f"{stamp}.{DELETED}") is None:
        raise PermanentError(f"{t.describe()}: keep: not a trash stamp: {stamp!r}")


def keep_overwritten(t: "S3Target", path: str, key: str, stamp: str,
                     head: dict[str, Any] | None) -> int:
    """Keep the object `head` (a HEAD of `key`, None: nothing there) describes as
    'overwritten' before a put of `path` replaces it; the bytes copied. Never lists the
    keys below `path/`: on S3 a put destroys no key but its own (there are no directories),
    so this is keep(coming='file') for a put that is not a tree item. Raises like keep()."""
    if head is None or t.trash_mode() == VERSIONING:
        return 0
    return _keep_one(t, path, key, stamp, OVERWRITTEN, head["ContentLength"])


def drop_spare(t: "S3Target", path: str, tkey: str) -> None:
    """Delete the copy conditional.keep_before made of the very version a large put then
    sent again whole (`tkey`, its trash key): a duplicate of bytes `path` holds. Best
    effort: a failure leaves an extra kept version and is logged at warning, never
    raised, as the put is done."""
    try:
        deletes.delete_objects(t, "trash purge", [{"Key": tkey}], path)
    except Exception as exc:  # noqa: BLE001 - classified by delete_objects; logged
        log.warning(kv(msg="cannot delete the copy kept of a version sent again; it stays "
                           "listed in the trash", target=t.name, path=path, error=exc))


def trash_key(t: "S3Target", stamp: str, why: str, path: str) -> str:
    """The key `path` is kept under with `stamp` and `why` ('copy' mode): the one place
    that says it, for the keep and for the delete of a spare copy (drop_spare)."""
    return t.root + trash_rel(stamp, why, path)


def _keep_one(t: "S3Target", path: str, key: str, stamp: str, why: str, size: int) -> int:
    """Copy `key` (the file `path`) to its trash key unless one is there; bytes copied."""
    tkey = trash_key(t, stamp, why, path)
    if len(tkey.encode("utf-8")) > MAX_KEY_BYTES:
        raise PermanentError(f"{t.describe()}: keep {shown(path)}: its trash key would be "
                             f"{len(tkey.encode('utf-8'))} bytes, S3 allows {MAX_KEY_BYTES}")
    if size > t.copy_limit:
        if t._head(path, tkey) is not None:
            return 0
        try:
            copy._copy(t, path, key, tkey, size, op="keep")
        except NotFound:
            return 0   # deleted meanwhile: nothing left to keep
        return size
    extra: dict[str, Any] = {"MetadataDirective": "COPY", "IfNoneMatch": "*"}
    if t.opts.acl:
        extra["ACL"] = t.opts.acl
    if t.opts.storage_class:
        extra["StorageClass"] = t.opts.storage_class
    try:
        t.client.copy_object(Bucket=t.bucket, Key=tkey,
                             CopySource={"Bucket": t.bucket, "Key": key}, **extra)
    except Exception as exc:  # noqa: BLE001 - every failure is classified
        if is_not_found(exc):
            return 0   # deleted between the HEAD (or listing) and the copy
        if isinstance(exc, ClientError) and error_code(exc)[1] == 412:
            return 0   # If-None-Match: kept under this stamp already (a retried change)
        raise t._error(exc, "keep", path) from None
    return size


# ------------------------------------------------------------------ list
def trash_list(t: "S3Target", prefix: str = "", *, since: float | None = None) -> Iterator[Kept]:
    """Target.trash_list: the copies under .mirrord/trash/, then (versioning) the
    noncurrent versions, of `prefix` and below, none stamped before `since` (seconds since
    the epoch; trash.model.since_stamp); each HEADed for mtime and mode."""
    prefix = prefix.strip("/")
    bound = since_stamp(since)
    yield from _bounded(lambda c: _kept_copy(t, *c), _copied(t, prefix, bound))
    if t.trash_mode() == VERSIONING:
        # listed by the key's prefix (ListObjectVersions Prefix), stamped from LastModified
        # as the listing goes: the bound can only filter here
        versions = (v for v in noncurrent(t, prefix) if bound is None or v[2] >= bound)
        yield from _bounded(lambda c: kept_version(t, *c), versions)


def _copied(t: "S3Target", prefix: str,
            bound: str | None = None) -> Iterator[tuple[str, str, str, str]]:
    """(key, stamp, why, path) of every kept copy whose path is at or below `prefix` and
    whose stamp is `bound` or later (None: any). The keys start with the stamp and
    ListObjectsV2 returns keys in UTF-8 binary order (S3 API Reference, ListObjectsV2), so
    StartAfter at the bound skips every older stamp without reading its keys: the LIST
    pages are those of the versions kept since then, not of the whole trash."""
    base = t.root + TRASH + "/"
    seek = {"StartAfter": base + bound} if bound is not None else {}
    for page in pages(t, "trash list", Prefix=base, **seek):
        for obj in page.get("Contents", ()):
            parsed = parse_trash_rel(obj["Key"][len(base):])
            if parsed is not None and under(parsed[2], prefix) and (
                    bound is None or parsed[0] >= bound):   # a server that ignores StartAfter
                yield (obj["Key"],) + parsed


def _kept_copy(t: "S3Target", key: str, stamp: str, why: str, path: str) -> Kept | None:
    head = t._head(path, key)
    if head is None:
        return None   # purged since the listing
    entry = head_entry(path, head)
    return Kept(path, stamp, why, entry.size, file_ns(entry), key[len(t.root):], entry.mode)


def _bounded(fn: Callable[[Any], T | None], items: Iterable[Any]) -> Iterator[T]:
    """fn over items in order, HEAD_WINDOW at a time, None results dropped."""
    with ThreadPoolExecutor(max_workers=HEAD_WINDOW, thread_name_prefix="s3-trash") as pool:
        window: deque = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= HEAD_WINDOW:
                result = window.popleft().result()
                if result is not None:
                    yield result
        while window:
            result = window.popleft().result()
            if result is not None:
                yield result


# ------------------------------------------------------------------ purge, restore, fetch
def _source(t: "S3Target", kept: Kept) -> str:
    """The key a Kept names; PermanentError for a copy outside the trash (a purge or restore
    must never be pointed at a live file)."""
    if kept.version is None and not kept.key.startswith(TRASH + "/"):
        raise PermanentError(f"{t.describe()}: {shown(kept.key)} is not in the trash")
    return key_for(t.root, kept.key, t.describe()) if kept.version else t.root + kept.key


def trash_purge(t: "S3Target", kept: Iterable[Kept]) -> None:
    """DeleteObjects in batches; a version by its VersionId. Absent ones are no error."""
    objects: list[dict[str, str]] = []
    for k in kept:
        obj = {"Key": _source(t, k)}
        if k.version:
            obj["VersionId"] = k.version
        objects.append(obj)
    deletes.delete_objects(t, "trash purge", objects)


def trash_restore(t: "S3Target", kept: Kept, path: str) -> Entry:
    """CopyObject from the kept copy or version to `path`, metadata kept (one atomic
    server-side copy; multipart above copy_limit, completed atomically too). NotFound
    when the kept entry is gone."""
    dst = t._key(path)
    copy._copy(t, path, _source(t, kept), dst, kept.size, op="restore", version=kept.version)
    head = t._head(path, dst)
    if head is None:
        raise RetryableError(f"{t.describe()}: restore {shown(path)}: not there after the copy")
    return head_entry(path, head)


def trash_fetch(t: "S3Target", kept: Kept, local: str) -> None:
    """GetObject (of the version, if any) streamed into `local`. NotFound when gone."""
    args = {"VersionId": kept.version} if kept.version else {}
    try:
        resp = t.client.get_object(Bucket=t.bucket, Key=_source(t, kept), **args)
        with resp["Body"] as body, open(local, "wb") as fh:
            shutil.copyfileobj(body, fh, 1 << 20)
    except Exception as exc:  # noqa: BLE001 - every failure is classified
        if is_not_found(exc):
            raise NotFound(f"{shown(kept.key)} is no longer kept on {t.describe()}") from None
        raise t._error(exc, "trash fetch", kept.path) from None
