"""Listing an S3 target: its objects in the engine's order, and the multipart uploads
a crash left open under its prefix.

- Listing order: AWS lists keys in UTF-8 byte order, which is the order the
  engine needs. Other servers need not (SeaweedFS lists a directory's keys at
  the position of its name, so `a/x` comes before `a-b`). Against AWS (no
  endpoint_url, or an amazonaws.com one) the flat ListObjectsV2 listing is
  used, 1000 keys a request; against any other
  endpoint the listing walks "directories" with Delimiter='/' and sorts each
  level itself, which is right on every server at one request per directory.
  Both check the order they yield and raise rather than yield out of order.
- mirrord's own files live under `prefix + ".mirrord/"` and are never listed; no
  other name is special.
- Multipart uploads: an upload a crash cut short is invisible to listings, but
  its parts stay stored (and billed) until it is aborted (S3 User Guide,
  "Aborting a multipart upload"). abort_open_uploads() aborts every upload
  ListMultipartUploads shows under the prefix (everything there is mirrord's);
  the target calls it at open() when no other mirrord process here has the
  target open (mirrord.targets.sweep), so an upload in flight is never aborted;
  never at open(readonly=True), whose caller (failover, health on the mirror host)
  cannot know whether a daemon on another host is uploading.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from mirrord.errors import PermanentError, TargetError
from mirrord.logsetup import kv
from mirrord.targets.model import Entry
from mirrord.targets.paths import META_DIR
from mirrord.targets.s3.errors import NOT_FOUND_CODES, error_code, shown

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

log = logging.getLogger("mirrord.targets.s3")

# Answers to ListMultipartUploads / AbortMultipartUpload that mean "not allowed or not
# there": open() goes on without the sweep rather than refuse a target that works.
CANNOT_SWEEP = frozenset({"AccessDenied", "NotImplemented", "MethodNotAllowed"})


def is_aws(endpoint_url: str) -> bool:
    """AWS itself, which documents listing in UTF-8 byte order."""
    if not endpoint_url:
        return True
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith(".amazonaws.com")


def list_entries(t: "S3Target", prefix: str = "") -> Iterator[Entry]:
    """S3Target.list: every object at or below `prefix`, in key byte order, checked."""
    prefix = prefix.strip("/")
    if prefix:
        key = t._key_or_none(prefix)
        if key is None:
            return
        exact = t._head(prefix, key)
        if exact is not None:
            yield Entry(prefix, exact["ContentLength"], exact["LastModified"].timestamp(),
                        token=exact.get("ETag"))
        start = key + "/"
    else:
        start = t.root
    objects = walk(t, start) if t.list_mode == "walk" else flat(t, start)
    last = b""
    for obj in objects:
        raw = obj["Key"].encode("utf-8")
        if raw <= last:
            raise PermanentError(f"{t.describe()}: the server listed {shown(obj['Key'])} "
                                 "out of order; use the walk listing for this endpoint")
        last = raw
        yield Entry(obj["Key"][len(t.root):], obj["Size"], obj["LastModified"].timestamp(),
                    token=obj.get("ETag"))

def pages(t: "S3Target", op: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    pages = t.client.get_paginator("list_objects_v2").paginate(Bucket=t.bucket, **kwargs)
    it = iter(pages)
    while True:
        try:
            page = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001
            raise t._error(exc, op, kwargs.get("Prefix", "")[len(t.root):]) from None
        yield page

def own(t: "S3Target", key: str) -> bool:
    """Folder markers and mirrord's own area are not files to mirror."""
    return key.endswith("/") or key.startswith(t.root + META_DIR + "/")

def flat(t: "S3Target", start: str) -> Iterator[dict[str, Any]]:
    for page in pages(t, "list", Prefix=start):
        for obj in page.get("Contents", ()):
            if not own(t, obj["Key"]):
                yield obj

def walk(t: "S3Target", level: str) -> Iterator[dict[str, Any]]:
    """Depth first, one Delimiter listing per level, each level sorted by key bytes."""
    children: list[tuple[bytes, dict[str, Any] | str]] = []
    for page in pages(t, "list", Prefix=level, Delimiter="/"):
        for obj in page.get("Contents", ()):
            children.append((obj["Key"].encode("utf-8"), obj))
        for common in page.get("CommonPrefixes", ()):
            children.append((common["Prefix"].encode("utf-8"), common["Prefix"]))
    children.sort(key=lambda child: child[0])
    for _raw, child in children:
        if isinstance(child, str):
            if child != t.root + META_DIR + "/":
                yield from walk(t, child)
        elif not own(t, child["Key"]):
            yield child


def abort_open_uploads(t: "S3Target") -> int:
    """AbortMultipartUpload every upload ListMultipartUploads shows under the prefix
    (everything under it is mirrord's): an upload a crash cut short is invisible to
    listings but its parts are stored, and billed, until aborted (S3 User Guide,
    "Aborting a multipart upload"). Returns how many were aborted. Only while no put
    runs on this target (open() makes sure). Retryable/PermanentError as classify()."""
    aborted = 0
    uploads = t.client.get_paginator("list_multipart_uploads").paginate(
        Bucket=t.bucket, Prefix=t.root)
    try:
        for page in uploads:
            for upload in page.get("Uploads", ()):
                _abort(t, upload["Key"], upload["UploadId"])
                aborted += 1
    except TargetError:
        raise
    except ClientError as exc:
        if error_code(exc)[0] not in CANNOT_SWEEP:
            raise t._error(exc, "abort open uploads", "") from None
        # a policy without s3:ListBucketMultipartUploads / s3:AbortMultipartUpload, or a
        # server without the API: the mirror still works, only the sweep is not possible
        log.warning(kv(msg="cannot abort the multipart uploads an interrupted run left "
                           "open; they keep their parts until a lifecycle rule removes them",
                       target=t.name, code=error_code(exc)[0]))
    except Exception as exc:  # noqa: BLE001 - every failure is classified
        raise t._error(exc, "abort open uploads", "") from None
    if aborted:
        log.info(kv(msg="aborted multipart uploads an interrupted run left open",
                    target=t.name, uploads=aborted))
    return aborted


def _abort(t: "S3Target", key: str, upload_id: str) -> None:
    try:
        t.client.abort_multipart_upload(Bucket=t.bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if error_code(exc)[0] not in ("NoSuchUpload",) + tuple(NOT_FOUND_CODES):
            raise

