"""Bucket versioning on the S3 target: whether it is on, and the noncurrent versions
that are the kept copies when it is (mirrord/targets/s3/trash.py uses them).

- detect_mode: GetBucketVersioning at open(); 'Enabled' -> 'versioning', else 'copy'
  ('Suspended' overwrites the null version in place, so nothing would be kept).
- noncurrent: ListObjectVersions -> every version that is not the newest of its key,
  stamped with the time it stopped being current (LastModified of the next newer
  version or delete marker) and why 'deleted' when that next newer one is a delete
  marker, else 'overwritten'. LastModified has whole seconds on SeaweedFS (and in
  S3's XML generally), so two changes of one path within a second share a stamp.
- drop_replaced: write_meta's own replaced versions (the heartbeat) are deleted.
- drop_resent: the version a put of the very same bytes (a re-send, a touch) replaced.
- drop_self_copied: the version a metadata-only self-copy (set_meta: a chmod or touch)
  replaced holds the same bytes as the new one; left behind it would be listed as an
  'overwritten' kept version ("a chmod or touch seen live keeps nothing").
- delete_unkept: a delete whose version the keeper found at the file's new name too
  (SyncItem.lives_on: a rename sent as a delete and a put) leaves no version behind.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator

from botocore.exceptions import ClientError

from mirrord.errors import PermanentError
from mirrord.logsetup import kv
from mirrord.targets.model import Entry
from mirrord.targets.paths import META_DIR
from mirrord.targets.s3.errors import error_code, is_not_found
from mirrord.targets.s3.keys import head_entry
from mirrord.trash.model import DELETED, OVERWRITTEN, Kept, stamp_of

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

log = logging.getLogger("mirrord.targets.s3")

COPY, VERSIONING = "copy", "versioning"
VERSION_PAGE = 1000             # ListObjectVersions page size (the S3 maximum; tests lower it)
# Answers to GetBucketVersioning that mean "not allowed / not implemented here": keep by copy.
CANNOT_ASK = frozenset({"AccessDenied", "NotImplemented", "MethodNotAllowed"})


def detect_mode(t: "S3Target") -> str:
    """'versioning' when GetBucketVersioning says Enabled (logged once), else 'copy'
    (also when the policy may not ask: then logged as a warning). Retryable/Permanent
    as classify() for any other failure."""
    try:
        status = t.client.get_bucket_versioning(Bucket=t.bucket).get("Status", "")
    except ClientError as exc:
        if error_code(exc)[0] not in CANNOT_ASK:
            raise t._error(exc, "get bucket versioning", "") from None
        log.warning(kv(msg="cannot read the bucket's versioning state; keep_deleted keeps "
                           "by server-side copy", target=t.name, code=error_code(exc)[0]))
        return COPY
    except Exception as exc:  # noqa: BLE001 - every failure is classified
        raise t._error(exc, "get bucket versioning", "") from None
    if status == "Enabled":
        log.info(kv(msg="bucket versioning is enabled: keep_deleted uses the noncurrent "
                        "versions S3 keeps and copies nothing", target=t.name, bucket=t.bucket))
        return VERSIONING
    return COPY


def drop_replaced(t: "S3Target", key: str, version: str | None) -> None:
    """In a versioned bucket each write_meta leaves the version it replaced (a heartbeat
    every few seconds: thousands a day, stored and listed for ever): delete the one this
    process wrote before `version`. Best effort: a transient failure leaves that one
    version behind; a refusal (no s3:DeleteObjectVersion) stops it, with one warning."""
    versions = t._meta_versions
    if versions is None:
        return
    old = versions.pop(key, None)
    if version:
        versions[key] = version
    if not old or old == version:
        return
    err = _delete_version(t, key, old, "write_meta")
    if isinstance(err, PermanentError):
        t._meta_versions = None
        log.warning(kv(msg="cannot delete the versions write_meta replaces; they stay "
                           "until a lifecycle rule expires them", target=t.name, error=err))


def _delete_version(t: "S3Target", key: str, version: str, op: str) -> Exception | None:
    """DeleteObject of one version of `key`; None when done (or already gone), else the
    classified error (t._error): the callers' deletes are best effort."""
    try:
        t.client.delete_object(Bucket=t.bucket, Key=key, VersionId=version)
    except Exception as exc:  # noqa: BLE001 - classified and returned to the caller
        return None if is_not_found(exc) else t._error(exc, op, "")
    return None


def under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it (every path is, for an empty prefix)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _mine(t: "S3Target", key: str, prefix: str) -> bool:
    """A user file's key at or below `prefix`: not a folder marker, not mirrord's own area."""
    return (not key.endswith("/") and not key.startswith(t.root + META_DIR + "/")
            and under(key[len(t.root):], prefix))


def file_ns(entry: Entry) -> int:
    """The entry's exact mtime (ns); an object without mtime metadata: its server time."""
    return entry.mtime_ns or int(entry.mtime) * 10**9


def noncurrent(t: "S3Target", prefix: str) -> Iterator[tuple[str, str, str, str, int]]:
    """(key, version id, stamp, why, size) of every noncurrent version at or below `prefix`.
    With no prefix the root level is listed with a delimiter, so the versions of
    mirrord's own area (a heartbeat every few seconds) are never even read."""
    if prefix:
        yield from _noncurrent(t, t.root + prefix, prefix)
        return
    meta = t.root + META_DIR + "/"
    for common in list(_noncurrent(t, t.root, "", delimiter=True)):
        if isinstance(common, str):
            if common != meta:
                yield from _noncurrent(t, common, "")
        else:
            yield common


def _noncurrent(t: "S3Target", start: str, prefix: str, *,
                delimiter: bool = False) -> Iterator[Any]:
    """ListObjectVersions from `start`: the noncurrent versions (and, with `delimiter`,
    the common prefixes as str). A key's entries may span pages: a key is judged once the
    listing has moved past it (S3 lists all versions of a key together, newest first)."""
    pending: dict[str, list[tuple[Any, ...]]] = {}
    extra = {"Delimiter": "/"} if delimiter else {}
    for page in _version_pages(t, Prefix=start, **extra):
        for kind, field in ((1, "Versions"), (0, "DeleteMarkers")):
            for v in page.get(field, ()):
                if _mine(t, v["Key"], prefix):
                    pending.setdefault(v["Key"], []).append(
                        (v["LastModified"], v.get("IsLatest", False), kind, v))
        yield from (c["Prefix"] for c in page.get("CommonPrefixes", ()))
        going_on = page.get("NextKeyMarker") if page.get("IsTruncated") else None
        for key in [k for k in pending if k != going_on]:
            yield from _judge(key, pending.pop(key))
    for key in list(pending):
        yield from _judge(key, pending.pop(key))


def _judge(key: str, entries: list[tuple[Any, ...]]) -> Iterator[tuple]:
    """The noncurrent versions of one key as (key, version id, stamp, why, size). Newest
    first by LastModified (whole seconds on SeaweedFS); within one second IsLatest first,
    then a delete marker before a version: boto3 hands versions and markers as two lists
    (each newest first, kept by the stable sort), so their interleaving within a second
    is lost, and a marker written in the same second as a put most often deleted it."""
    entries.sort(key=lambda e: (-e[0].timestamp(), not e[1], e[2]))
    for newer, (_when, _latest, kind, v) in zip(entries, entries[1:]):
        if kind == 1:
            why = DELETED if newer[2] == 0 else OVERWRITTEN
            yield key, v["VersionId"], stamp_of(newer[0].timestamp()), why, v.get("Size", 0)


def _version_pages(t: "S3Target", **kwargs: Any) -> Iterator[dict[str, Any]]:
    it = iter(t.client.get_paginator("list_object_versions").paginate(
        Bucket=t.bucket, PaginationConfig={"PageSize": VERSION_PAGE}, **kwargs))
    while True:
        try:
            page = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            raise t._error(exc, "trash list", kwargs.get("Prefix", "")[len(t.root):]) from None
        yield page


def kept_version(t: "S3Target", key: str, version: str, stamp: str, why: str,
                 size: int) -> Kept | None:
    """The Kept for one noncurrent version, its mtime and mode from a HEAD of that version;
    None when it was purged since the listing."""
    path = key[len(t.root):]
    try:
        head = t.client.head_object(Bucket=t.bucket, Key=key, VersionId=version)
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc):
            return None   # purged since the listing
        raise t._error(exc, "trash list", path) from None
    entry = head_entry(path, head)
    return Kept(path, stamp, why, size, file_ns(entry), path, entry.mode, version)


def drop_resent(t: S3Target, key: str, version: str) -> None:
    """Delete `version` of `key`, which a put just replaced with the very same bytes
    (size and sha256, any mtime: conditional.same_version). Best effort (_drop): never fails
    the put."""
    _drop(t, key, version, "put", "a re-send of the same version replaced")


def drop_self_copied(t: S3Target, key: str, version: str) -> None:
    """Delete `version` of `key`, the one set_meta just copied onto itself with new
    metadata (CopySourceIfMatch made sure it is the bytes now current). Best effort
    (_drop): never fails the chmod, which is done."""
    _drop(t, key, version, "set_meta", "a metadata change replaced")


def _drop(t: S3Target, key: str, version: str, op: str, what: str) -> None:
    """Delete `version` of `key`, a version whose bytes live on elsewhere (`what` says
    where it came from, for the log; `op` names the operation in a classified error).
    Best effort: a failure leaves it listed as a kept version and is logged at warning,
    never raised, as the op that left it is done."""
    err = _delete_version(t, key, version, op)
    if err is not None:
        log.warning(kv(msg=f"cannot delete the version {what}; it stays listed in the trash",
                       target=t.name, path=key[len(t.root):], error=err))


def delete_unkept(t: S3Target, path: str, lives_on: Entry) -> None:
    """Delete the object at `path` (a delete marker) and then the version the marker hid,
    when it is the one the keeper compared (`lives_on`: same ETag and size), whose bytes
    the new name holds (mirrord.trash.keeper.lives_on). The marker goes first, so the
    version is noncurrent when it is deleted and no older version becomes current (S3
    User Guide, "Deleting object versions"), as vmove.py does. A kill -9 between the two
    leaves it listed as 'deleted': an extra kept version, never a lost one. Raises as
    delete() does; a failed version delete is logged and leaves it listed (best effort)."""
    key = t._key_or_none(path)
    if key is None:
        return
    head = t._head(path, key)
    t.delete(path)
    version = (head or {}).get("VersionId")
    if (head is None or not version or version == "null" or head.get("ETag") != lives_on.token
            or head["ContentLength"] != lives_on.size):
        return   # another version than the one compared (or none): it stays kept
    _drop(t, key, version, "delete", "a rename's delete left")
