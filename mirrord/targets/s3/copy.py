"""Server-side copies on the S3 target: move() and set_meta().

- set_meta() (a chmod or touch at the source) is a CopyObject of the object onto
  itself with MetadataDirective=REPLACE carrying the new `mtime`/`mode` and the
  kept `sha256`, Content-Type, ACL and storage class: the body is never sent again.
  In a versioned bucket the version it replaced (the same bytes) is deleted, so a
  chmod is never listed as a kept version.
  S3 requires REPLACE for a self-copy ("a copy request ... to itself ... must
  change metadata", CopyObject docs), and CopySourceIfMatch with the ETag just
  read makes sure the sha256 we keep belongs to the bytes being copied.
- move() is server-side: CopyObject (metadata kept) then delete; a "directory"
  is every key below `src/`, copied in parallel then deleted in batches. Objects
  above 5 GiB (S3Target.copy_limit) use a multipart copy. A directory move is not
  atomic, but is safe to retry: nothing already at the destination is ever deleted.
  On a versioned bucket vmove.py plans it, so that it leaves no noncurrent version
  of the old keys behind (listed in the trash as if the user had deleted them).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.model import Entry
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.s3 import deletes, versioning, vmove
from mirrord.targets.s3.errors import error_code, is_not_found, shown
from mirrord.targets.s3.client import transfer_config
from mirrord.targets.s3.listing import pages
from mirrord.targets.s3.keys import (MAX_KEY_BYTES, content_type, format_mode, format_mtime,
                                     object_args, parse_mode)

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

MOVE_CONCURRENCY = 8            # copies in flight per directory move


def set_meta(t: "S3Target", path: str, *, mode: int | None, mtime_ns: int) -> Entry:
    """Replace the `mtime` (and, unless None, `mode`) metadata by copying the object onto
    itself (see the module docstring); NotFound when no object is at `path`;
    RetryableError when the object changed between our HEAD and the copy (412)."""
    key = t._key_or_none(path)
    head = None if key is None else t._head(path, key)
    if head is None:
        raise NotFound(f"{shown(path)} is not on {t.describe()}")
    meta = dict(head.get("Metadata") or {})
    meta["mtime"] = format_mtime(mtime_ns)
    if mode is not None:
        meta["mode"] = format_mode(mode)
    ctype = head.get("ContentType") or content_type(path)
    extra = object_args(t.opts, ctype, meta)
    extra["MetadataDirective"] = "REPLACE"
    size = head["ContentLength"]
    etag = _copy_to(t, path, key, key, size, extra, if_match=head.get("ETag"))
    if t.trash_mode() == versioning.VERSIONING and head.get("VersionId"):
        versioning.drop_self_copied(t, key, head["VersionId"])   # same bytes: not a kept version
    return Entry(path, size, ns_to_float(mtime_ns), token=etag or head.get("ETag"),
                 mtime_ns=mtime_ns, mode=parse_mode(meta.get("mode")))

def move(t: "S3Target", src: str, dst: str) -> None:
    """Server-side move of the object at `src`, or (none there) of every key below `src/`,
    to `dst`; NotFound when there is neither. On a versioned bucket vmove.plan decides what
    is copied and which versions the move leaves are deleted after the delete markers.
    A directory's move also deletes an object at `dst` (_clear_replaced_file)."""
    skey = t._key_or_none(src)
    dkey = t._key(dst)
    if skey is None:
        raise NotFound(f"{shown(src)} is not on {t.describe()}")
    if t.trash_mode() == versioning.VERSIONING:
        p = vmove.plan(t, src, skey, dst, dkey)
        _copy_all(t, src, p.copies)
        deletes.delete_keys(t, src, p.old_keys)
        vmove.drop(t, src, p.moved)
        file = p.file
    else:
        moves = _moves(t, src, skey, dst, dkey)
        if not moves:
            raise NotFound(f"{shown(src)} is not on {t.describe()}")
        _copy_all(t, src, [(key, new, size, None) for key, new, size in moves])
        deletes.delete_keys(t, src, [m[0] for m in moves])
        file = any(m[0] == skey for m in moves)
    if not file:
        _clear_replaced_file(t, dst, dkey)


def _clear_replaced_file(t: S3Target, dst: str, dkey: str) -> None:
    """After a directory's move to `dst`: delete the object standing at `dkey`, the file
    the directory took the place of. rename(2) replaces its destination, and so does
    Target.move on the other targets (LocalTarget.move removes what stands at dst); on S3
    the keys below `dkey/` and an object at `dkey` can stand at once, and the file was
    left beside the directory: an extra object no later op removed (`mv f f.bak;
    mv dir-f f` with the first rename read as a rename back, fanotify_renames._moved:
    tests/e2e/test_versioned_moves_keep_nothing.py under load). Its keep is the
    shipper's, before the move (keeper.keep_move_dst); on a versioned bucket its version
    stays below the delete marker, a kept 'deleted' version as the local target keeps
    the file. One HEAD per directory move."""
    deletes.delete_if_object(t, dst, dkey)

def _copy_all(t: S3Target, src: str, copies: list[tuple[str, str, int, str | None]]) -> None:
    """_copy each (key, new key, size, version), MOVE_CONCURRENCY in flight when many."""
    if len(copies) == 1:
        key, new, size, version = copies[0]
        _copy(t, src, key, new, size, version=version)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(MOVE_CONCURRENCY, t.workers))) as pool:
        for future in [pool.submit(_copy, t, src, key, new, size, version=version)
                       for key, new, size, version in copies]:
            future.result()

def _moves(t: "S3Target", src: str, skey: str, dst: str, dkey: str) -> list[tuple[str, str, int]]:
    """(source key, destination key, size) for the object at src, else every key below it.
    An object at src and keys below it at once (S3 allows it, a mirror makes it only for a
    moment: a file renamed away and a directory made at its name, whose files were sent
    before the rename): only the object moves, the keys below belong to the directory."""
    found: list[tuple[str, int]] = []
    head = t._head(src, skey)
    if head is not None:
        found.append((skey, head["ContentLength"]))
    else:
        for page in pages(t, "move", Prefix=skey + "/"):
            found += [(o["Key"], o["Size"]) for o in page.get("Contents", ())]
    moves = []
    for key, size in found:
        new = dkey + key[len(skey):]
        if len(new.encode("utf-8")) > MAX_KEY_BYTES:
            raise PermanentError(f"{t.describe()}: move {shown(src)} -> {shown(dst)}: "
                                 f"{shown(new)} would be longer than {MAX_KEY_BYTES} bytes")
        moves.append((key, new, size))
    return moves

def _copy(t: "S3Target", src: str, key: str, new: str, size: int, *, op: str = "move",
          version: str | None = None) -> None:
    """CopyObject `key` (its `version` if given) -> `new`, metadata kept (also used by the
    trash: keep and restore, named by `op` in errors)."""
    extra: dict[str, Any] = {"MetadataDirective": "COPY"}   # mtime, mode, sha256 kept
    if t.opts.acl:
        extra["ACL"] = t.opts.acl
    if t.opts.storage_class:
        extra["StorageClass"] = t.opts.storage_class
    _copy_to(t, src, key, new, size, extra, op=op, version=version)

def _copy_to(t: "S3Target", src: str, key: str, new: str, size: int, extra: dict[str, Any], *,
             if_match: str | None = None, op: str = "", version: str | None = None) -> str | None:
    """CopyObject `key` (version `version`, if given) -> `new` with `extra` arguments
    (multipart above copy_limit); the new ETag when the server says it. A vanished
    source is NotFound; `op` names the operation in messages."""
    source = {"Bucket": t.bucket, "Key": key}
    versioned = {"VersionId": version} if version else {}
    source.update(versioned)
    op = op or ("move" if key != new else "set_meta")
    try:
        if size <= t.copy_limit:
            cond = {"CopySourceIfMatch": if_match} if if_match else {}
            resp = t.client.copy_object(Bucket=t.bucket, Key=new, CopySource=source,
                                           **cond, **extra)
            return (resp.get("CopyObjectResult") or {}).get("ETag")
        if extra.get("MetadataDirective") != "REPLACE":
            head = t.client.head_object(Bucket=t.bucket, Key=key, **versioned)
            extra = dict(extra, Metadata=head.get("Metadata", {}), MetadataDirective="REPLACE",
                         ContentType=head.get("ContentType", "application/octet-stream"))
        if if_match:
            extra = dict(extra, CopySourceIfMatch=if_match)   # each UploadPartCopy checks it
        config = transfer_config(t.copy_limit, max(t.opts.multipart_chunksize,
                                                  min(t.copy_limit, 1 << 30)))
        t.client.copy(source, t.bucket, new, ExtraArgs=extra, Config=config)
        return None
    except Exception as exc:  # noqa: BLE001
        if is_not_found(exc):
            raise NotFound(f"{shown(key[len(t.root):])} vanished from "
                           f"{t.describe()} during a {op}") from None
        if isinstance(exc, ClientError) and error_code(exc)[1] == 412:
            raise RetryableError(f"{t.describe()}: {op} {shown(src)}: the object changed "
                                 "while its metadata was being set") from None
        raise t._error(exc, op, src) from None

