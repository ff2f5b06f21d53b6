"""The S3 target's put(): a local file to one object, whole or not at all.

Files below min(multipart_threshold, 8 MiB) are read whole and sent with one
PutObject (the lean transport first, mirrord.targets.s3.lean); larger ones go
through s3transfer, which uses multipart at or above multipart_threshold. S3
makes either atomic: a multipart object appears only on
CompleteMultipartUpload, s3transfer aborts the upload when a part fails, and
S3Target.open() aborts the uploads a crash left open (listing.py). With
SyncItem.keep_stamp what the put replaces is kept first (conditional.py).
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import create_transfer_manager

from mirrord.errors import ChangedWhileSent, MaybeStored, RetryableError, SourceBusy
from mirrord.fsutil import check_read_whole, read_up_to
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import Entry
from mirrord.targets.mtime import ns_to_float, put_ns
from mirrord.targets.s3 import conditional, trash, versioning
from mirrord.targets.s3.client import SMALL_FILE, transfer_config
from mirrord.targets.s3.errors import shown
from mirrord.targets.s3.keys import head_entry, put_args
from mirrord.targets.s3.lean import headers_from_args

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

# Files sent through s3transfer (min(8 MiB, multipart_threshold) and more) at once per
# target; more wait for a slot. Each holds at most client.TRANSFER_PARTS_IN_MEMORY parts
# of multipart_chunksize and the one read and waiting for its slot (or, below
# multipart_threshold, its one body), so a target's large uploads hold at most
# 8 x 7 x 16 MiB = 896 MiB at the defaults, whatever `workers` is
# (at 16 workers without this bound: 1.5 GiB; at the former 8 workers and s3transfer's
# default of 10 parts in memory: 1.25 GiB).
LARGE_UPLOADS = 8


def put(t: S3Target, path: str, local: str, *, size: int, mtime: float,
        mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
    """Target.put; with `keep_stamp` (SyncItem.keep_stamp) what the put replaces is kept
    under that stamp first, found by the put itself (conditional.py)."""
    key = t._key(path)
    small = min(SMALL_FILE, t.opts.multipart_threshold)
    keeping = keep_stamp is not None   # versioned too: a re-sent version is not kept
    try:
        # os.open and read_up_to, not open(): 6 system calls for a small file, not 11
        fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            ns = put_ns(mtime, mtime_ns, st)
            mode = stat_mod.S_IMODE(st.st_mode) if mode is None else mode
            # (size, mtime ns) of what is sent, for the keeps' "the very bytes are there
            # already" (conditional._holds): none (-1 is no object's size) when the file opened is not what the
            # caller observed (rewritten in place since: its bytes are not that version's,
            # and the version there would go unkept; a review, helper-140)
            version = (st.st_size, ns) if (st.st_size, st.st_mtime_ns) == (size, ns) else (-1, ns)
            if st.st_size < small:
                # a byte more than the fstat said, so the read finds the end: a file longer
                # than its fstat (an attribute cache behind the file, a FUSE source) is
                # refused by check_read_whole, as a read to the end refused it
                data = read_up_to(fd, st.st_size + 1)
                check_read_whole(fd, st, len(data), size)   # never a torn body
            else:
                data = None
                with open(fd, "rb", closefd=False) as fh:
                    _put_file(t, path, key, fh, st, ns, mode, keep_stamp, version)
        finally:
            os.close(fd)
        if data is not None:   # the body is read: the file is closed before the request
            if keeping:
                return conditional.put_keeping(
                    t, path, key, str(keep_stamp),
                    lambda cond: put_small(t, path, key, data, ns, mode, cond),
                    version=version, sha256=hashlib.sha256(data).hexdigest())
            return put_small(t, path, key, data, ns, mode)
    except OSError as exc:
        raise classify_oserror(exc) from None
    head = t._head(path, key)
    if head is None:
        raise RetryableError(f"{t.describe()}: put {shown(path)}: not there after upload")
    return head_entry(path, head)


def _put_file(t: S3Target, path: str, key: str, fh: Any, st: os.stat_result, ns: int,
              mode: int, keep_stamp: str | None, version: tuple[int, int]) -> None:
    """put() of a file of min(8 MiB, multipart_threshold) or more, open as `fh` (`st`:
    its fstat when opened; `version`: put()'s): its SHA-256, what it replaces kept first
    with `keep_stamp`, then s3transfer (_put_large)."""
    fd = fh.fileno()   # s3transfer closes `fh`; the descriptor stays (put() closes it)
    digest = hashlib.file_digest(fh, "sha256").hexdigest()
    fh.seek(0)
    resent = spare = None
    if keep_stamp is not None:
        resent, spare = conditional.keep_before(t, path, key, str(keep_stamp),
                                                version=version, sha256=digest)
    with t.large_uploads:
        _put_large(t, path, key, fh, st, put_args(t.opts, path, ns, digest, mode))
    if (resent or spare) and _unchanged(fd, st):
        # the very version was sent again, whole: what was kept of it is a duplicate
        if resent:
            versioning.drop_resent(t, key, resent)
        if spare:
            trash.drop_spare(t, path, spare)


def _unchanged(fd: int, st: os.stat_result) -> bool:
    """Whether the file open at `fd` is still what `st` describes (size, mtime, ctime);
    False when it cannot be told (an fstat error: EIO, ESTALE on NFS)."""
    try:
        check_read_whole(fd, st, st.st_size, st.st_size)
    except (SourceBusy, OSError):
        return False
    return True


def put_small(t: S3Target, path: str, key: str, data: bytes, ns: int, mode: int,
              condition: dict[str, str] | None = None) -> Entry:
    """One PutObject (lean first); `condition`: IfNoneMatch / IfMatch, whose 412 raises
    PreconditionFailed from either path, never asked again through the SDK."""
    digest = hashlib.sha256(data).hexdigest()
    args = {**put_args(t.opts, path, ns, digest, mode), **(condition or {})}
    mtime = ns_to_float(ns)
    client = t.client
    lean = t._lean
    if lean is not None:
        try:
            etag = lean.put(key, data, headers_from_args(args), sha256=digest)
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            raise t._error(exc, "put", path, write=True) from None
        if etag is not None:
            return Entry(path, len(data), mtime, token=etag, mtime_ns=ns, mode=mode)
    # Not a plain answer (a redirect, a refusal): the full client follows or classifies it.
    resp = t._call("put", path, client.put_object, write=True,
                   Bucket=t.bucket, Key=key, Body=data, **args)
    if lean is not None:
        t._give_up_lean("put", path)
    return Entry(path, len(data), mtime, token=resp.get("ETag"), mtime_ns=ns, mode=mode)


def _put_large(t: S3Target, path: str, key: str, fh: Any, st: os.stat_result,
               args: dict[str, Any]) -> None:
    """Upload the open file `fh` (`st`: its fstat when opened; opened with closefd=False,
    so its descriptor outlives s3transfer's close of it on a failure) to `key` through s3transfer
    (multipart at or above multipart_threshold) with put_object `args`. Raises the
    classified error; SourceBusy (a wait: sent again once the change is read) when the
    upload failed and the file is no longer what was opened: a file truncated while its
    parts were read made S3 refuse the completion as InvalidPart (400), which was recorded
    as a permanent error on a path the next write then sent whole (a breaker)."""
    config = transfer_config(t.opts.multipart_threshold, t.opts.multipart_chunksize)
    fd = fh.fileno()   # s3transfer closes `fh` when the upload fails; the descriptor stays
    try:
        with create_transfer_manager(t.client, config) as manager:
            manager.upload(fh, t.bucket, key, extra_args=args).result()
    except Exception as exc:  # noqa: BLE001
        err = t._error(exc, "put", path, write=True)
        # the file still what was opened (size, mtime, ctime), else SourceBusy; one that
        # may be stored all the same is held as landed (ChangedWhileSent)
        try:
            check_read_whole(fd, st, st.st_size, st.st_size)
        except SourceBusy as busy:
            if isinstance(err, MaybeStored):
                raise ChangedWhileSent(f"{busy}; {err}") from None
            raise
        raise err from None
