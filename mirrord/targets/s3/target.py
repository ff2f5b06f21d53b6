"""The S3 target (`type = s3`): one bucket (and an optional key prefix) through boto3.

This module is the Target: its connection, stat, reading and mirrord's own area
`prefix + ".mirrord/"`. Its parts live beside it: keys.py (which paths S3 can
store, the metadata formats), errors.py (classification, credential-free
messages), listing.py (listing order, multipart uploads a crash left open),
upload.py (put), deletes.py (delete: DeleteObject and DeleteObjects), copy.py
(move and set_meta as server-side copies; vmove.py, a move on a versioned bucket),
trash.py and versioning.py (keep_deleted: keep, list, purge, restore, fetch),
conditional.py (a put that keeps what it overwrites, SyncItem.keep_stamp),
client.py, lean.py and endpoint.py (the botocore client and the lean transport for
small puts and deletes), batch.py (sync(): a batch's plain deletes in DeleteObjects).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mirrord.config import S3Options, TargetConfig
from mirrord.errors import PermanentError, TargetError
from mirrord.logsetup import kv, register_secret
from mirrord.targets.base import Target
from mirrord.targets.model import Entry, Features, SyncItem, SyncResult
from mirrord.targets.paths import META_DIR, META_LIMIT, check_relpath
from mirrord.targets.s3 import batch, copy, deletes, listing, trash, upload, versioning
from mirrord.targets.s3.client import make_client
from mirrord.targets.s3.errors import classify, classify_write, is_not_found, scrub, shown
from mirrord.targets.s3.keys import content_type, head_entry, key_for
from mirrord.targets.s3.lean import LeanRequests
from mirrord.targets.sweep import OpenLock

log = logging.getLogger("mirrord.targets.s3")

COPY_LIMIT = 5 << 30            # CopyObject's limit; above it a multipart copy
DELETE_BATCH = 1000             # DeleteObjects takes at most this many keys
BATCH = 16                      # SyncItems per worker task (features.batch_size)


class S3Target(Target):
    type = "s3"
    # A worker still sends one put at a time; batches let a run of deletes share one
    # DeleteObjects (batch.py). A live trickle is spread one op per free worker anyway.
    # keep_by_condition: in both trash modes; with versioning the put copies nothing, its
    # conditional write only tells a put of the bytes already there (conditional.py).
    features = Features(server_side_move=True, directories=False, mtime_precision=1e-6,
                        list_mtime=False, batch_size=BATCH, keep_by_condition=True,
                        move_merges=True)   # copy.move: nothing at the destination deleted

    def __init__(self, name: str, opts: S3Options, *, workers: int = 8,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 list_mode: str = "auto"):
        super().__init__(name)
        self.opts = opts
        self.bucket = opts.bucket
        self.root = opts.prefix                      # "" or ends with "/"
        self.workers = max(1, workers)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        if list_mode == "auto":
            list_mode = "flat" if listing.is_aws(opts.endpoint_url) else "walk"
        if list_mode not in ("flat", "walk"):
            raise ValueError(f"list_mode must be auto, flat or walk, not {list_mode!r}")
        self.list_mode = list_mode
        self.copy_limit = COPY_LIMIT
        self.delete_batch = DELETE_BATCH   # keys per DeleteObjects (tests make it small)
        self._trash_mode = versioning.COPY
        self._meta_versions: dict[str, str] | None = {}   # versioning: write_meta's last
        self._secrets = [s for s in (opts.access_key_id, opts.secret_access_key) if s]
        for secret in self._secrets:
            register_secret(secret)
        self._client: Any = None
        self._lean: LeanRequests | None = None   # the lean put/delete path, made with the client
        self._lock = threading.Lock()
        # files sent through s3transfer (8 MiB and more) at once: the bound on what large
        # uploads hold in memory whatever `workers` is (upload.LARGE_UPLOADS)
        self.large_uploads = threading.BoundedSemaphore(upload.LARGE_UPLOADS)
        self._open_lock = OpenLock(f"s3:{opts.endpoint_url}/{opts.bucket}/{opts.prefix}")

    @classmethod
    def from_config(cls, cfg: TargetConfig) -> S3Target:
        assert cfg.s3 is not None
        return cls(cfg.name, cfg.s3, workers=cfg.workers)

    def describe(self) -> str:
        return f"s3:{self.name}(s3://{self.bucket}/{self.root})"

    # ------------------------------------------------------------ connection
    @property
    def client(self) -> Any:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client, self._lean = make_client(
                    self.opts, workers=self.workers, connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout, name=self.name, secrets=self._secrets)
            return self._client

    def open(self, *, readonly: bool = False) -> None:
        """Check that the bucket is there and listable with these credentials; when no
        other mirrord process here has this target open, abort the multipart uploads a
        crash left open under the prefix (mirrord.targets.sweep). `readonly`
        (Target.open): no upload is aborted and no lock file made: on the mirror host an
        upload under the prefix is the primary's daemon's, in flight (nothing here holds
        the lock to say so). Either way GetBucketVersioning picks the trash mode."""
        self._call("open", "", self.client.list_objects_v2,
                   Bucket=self.bucket, Prefix=self.root + META_DIR + "/", MaxKeys=1)
        if not readonly:
            self._open_lock.hold(self.abort_open_uploads)
        self._trash_mode = versioning.detect_mode(self)

    def abort_open_uploads(self) -> int:
        """listing.abort_open_uploads: abort the multipart uploads under the prefix; how many."""
        return listing.abort_open_uploads(self)

    def close(self) -> None:
        self._open_lock.release()
        with self._lock:
            client, self._client = self._client, None
            lean, self._lean = self._lean, None
        if lean is not None:
            lean.close()
        if client is not None:
            client.close()

    def _give_up_lean(self, op: str, path: str) -> None:
        """The SDK did what the lean request could not: use the SDK from now on."""
        with self._lock:
            lean, self._lean = self._lean, None
        if lean is not None:
            lean.close()
            log.warning(kv(msg="lean request refused where the SDK succeeded; using the SDK "
                               "for every put and delete from now on (slower on bursts)",
                           target=self.name, op=op, path=path))

    # ------------------------------------------------------------ helpers
    def _error(self, exc: BaseException, op: str, path: str, *,
               write: bool = False) -> TargetError:
        """`exc` classified (errors.classify; `write`: a put's, errors.classify_write) and
        its text scrubbed of every credential."""
        where = f"{self.describe()}: {op} {shown(path)}" if path else f"{self.describe()}: {op}"
        err = (classify_write if write else classify)(exc, where)
        text = str(err)
        clean = scrub(text, self._secrets)
        return err if clean == text else type(err)(clean)

    def _call(self, op: str, path: str, fn: Callable[..., Any], *, write: bool = False,
              **kwargs: Any) -> Any:
        """fn(**kwargs), any failure raised as _error(exc, op, path, write=write)."""
        try:
            return fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            raise self._error(exc, op, path, write=write) from None

    def _key(self, path: str) -> str:
        """The key for a path we are asked to store; PermanentError if S3 cannot hold it."""
        return key_for(self.root, path, self.describe())

    def cannot_hold(self, path: str) -> str | None:
        """Not valid UTF-8, or a key over MAX_KEY_BYTES (keys.key_for)."""
        try:
            self._key(path)
        except PermanentError as exc:
            return str(exc)
        return None

    def _key_or_none(self, path: str) -> str | None:
        """The key for a path we look up or delete; None when no such key can exist."""
        check_relpath(path)
        try:
            return self._key(path)
        except PermanentError:
            return None

    # ------------------------------------------------------------ listing
    def list(self, prefix: str = "") -> Iterator[Entry]:
        return listing.list_entries(self, prefix)

    def _head(self, path: str, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                return None
            raise self._error(exc, "stat", path) from None

    def _exists(self, path: str, key: str) -> bool:
        """Whether an object stands at `key`: the lean HEAD first, the SDK's HeadObject
        when it cannot answer. Raises the classified error (operation 'stat')."""
        lean = self._lean
        if lean is not None:
            try:
                found = lean.exists(key)
            except Exception as exc:  # noqa: BLE001 - every failure is classified
                raise self._error(exc, "stat", path) from None
            if found is not None:
                return found
        return self._head(path, key) is not None

    def stat(self, path: str) -> Entry | None:
        key = self._key_or_none(path)
        head = None if key is None else self._head(path, key)
        if head is None:
            return None
        return head_entry(path, head)

    def checksum(self, path: str) -> str | None:
        """The sha256 stored at put time; None for objects mirrord did not write."""
        key = self._key_or_none(path)
        head = None if key is None else self._head(path, key)
        return None if head is None else head.get("Metadata", {}).get("sha256")

    # ------------------------------------------------------------ changes
    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
        """upload.put: one PutObject below min(multipart_threshold, 8 MiB), else s3transfer;
        with `keep_stamp` what the put replaces is kept first (conditional.py)."""
        return upload.put(self, path, local, size=size, mtime=mtime, mtime_ns=mtime_ns,
                          mode=mode, keep_stamp=keep_stamp)

    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        """batch.sync: the batch's plain deletes in DeleteObjects calls, the rest in order."""
        return batch.sync(self, items)

    def delete(self, path: str, *, tree: bool = False) -> None:
        """deletes.delete: DeleteObject, and with `tree` every key below in DeleteObjects."""
        deletes.delete(self, path, tree=tree)

    # ------------------------------------------------------------ the trash
    # trash.py's functions take the target first, so they are this class's methods as they are
    keep = trash.keep
    trash_list = trash.trash_list
    trash_purge = trash.trash_purge
    trash_restore = trash.trash_restore
    trash_fetch = trash.trash_fetch

    def trash_mode(self) -> str:
        """'versioning' when open() found bucket versioning enabled, else 'copy'."""
        return self._trash_mode

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        """S3 has no directories: nothing to do."""

    def remove_file_at(self, path: str) -> None:
        """Target.remove_file_at: the object at `path`, only when a HEAD finds one there.
        A DeleteObject sent blindly, where SeaweedFS keeps a folder (keys below `path/`),
        deletes that folder when it is empty, and a PutObject below it at the same time
        (a directory's file sent by another worker) was acknowledged but left out of
        every listing: the folder holding it was gone, a HEAD still found it (SeaweedFS
        4.48, as seaweedfs/seaweedfs#10783 describes for its own cleaner; the exchange
        stress test lost `F/sub/deep.jpg` so, 1 CI run in 3, with the daemon's trace
        showing the put acknowledged twice and nothing removing it). One request either
        way: a HEAD instead of the delete, and the delete only for a file there
        (deletes.delete_if_object, as after a directory's move)."""
        key = self._key_or_none(path)
        if key is not None:
            deletes.delete_if_object(self, path, key)

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """copy.set_meta: new `mtime` (and, unless None, `mode`) metadata by a self-copy;
        NotFound when no object is at `path`; RetryableError when it changed meanwhile."""
        return copy.set_meta(self, path, mode=mode, mtime_ns=mtime_ns)

    def move(self, src: str, dst: str) -> None:
        copy.move(self, src, dst)

    # ------------------------------------------------------------ reading
    def read(self, path: str) -> bytes | None:
        key = self._key_or_none(path)
        return None if key is None else self._get(path, key)

    def _get(self, path: str, key: str, limit: int | None = None) -> bytes | None:
        """The object's bytes (None: absent); PermanentError past `limit` bytes (of which
        at most one more is read)."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            with resp["Body"] as body:
                data = body.read() if limit is None else body.read(limit + 1)
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                return None
            raise self._error(exc, "read", path) from None
        if limit is not None and len(data) > limit:
            raise PermanentError(f"{self.describe()}: {path!r} holds more than {limit} bytes: not read")
        return data

    # ------------------------------------------------------------ mirrord's own area
    def _meta_key(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise PermanentError(f"{self.describe()}: bad meta name {name!r}")
        return f"{self.root}{META_DIR}/{name}"

    def write_meta(self, name: str, data: bytes) -> None:
        args: dict[str, Any] = {"ContentType": content_type(name)}
        if self.opts.acl:
            args["ACL"] = self.opts.acl
        resp = self._call("write_meta", f"{META_DIR}/{name}", self.client.put_object,
                          Bucket=self.bucket, Key=self._meta_key(name), Body=bytes(data), **args)
        if self._trash_mode == versioning.VERSIONING:
            versioning.drop_replaced(self, self._meta_key(name), resp.get("VersionId"))

    def read_meta(self, name: str) -> bytes | None:
        return self._get(f"{META_DIR}/{name}", self._meta_key(name), META_LIMIT)

