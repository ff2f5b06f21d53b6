"""The one interface every mirror target implements, and how each method fails.

The engine (shipper, reconciler, failover) only ever talks to a target through
this class; SDKs (boto3, ssh/rsync) live only in their own target module.

Paths are relative to the target root, '/'-separated, never empty, never
starting with '/', never containing '.' or '..' components. Everything a
target lists or stats excludes mirrord's own area `.mirrord/` at the root.

Failure contract (checked by tests/targets/test_conformance.py on every target):
- Network trouble, timeouts, throttling (SlowDown), 5xx, a full disk: raise
  RetryableError. The shipper retries with backoff; nothing is dropped.
- Anything retrying will not fix soon (a name the target cannot store, access
  denied): raise PermanentError. Recorded on the journal row and retried rarely.
- Absence is not an error for stat/delete/read_meta: they return None / do nothing.
  move() and set_meta() raise NotFound when the path is absent.
- put() is atomic: a reader of the target sees the old object or the complete
  new one, never a partial file, and a failed put leaves no partial object.
  What a put killed mid-way (kill -9, power loss) left (a temp file, an open
  multipart upload) is removed by the next open(), unless another mirrord
  process on this host has the target open (mirrord.targets.sweep).
- No name is special but `.mirrord` at the root: any other path a user can
  give a file is stored, listed and deleted like every other.
- No credential ever appears in an exception message.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.mtime import exact_ns, format_ns, ns_to_float, parse_ns, put_ns
from mirrord.trash.model import Kept

__all__ = ["META_DIR", "Entry", "Features", "SyncItem", "SyncResult", "Target", "check_relpath",
           "classify_oserror", "exact_ns", "format_ns", "fs_path", "join", "ns_to_float",
           "parse_ns", "put_ns"]

META_DIR = ".mirrord"


@dataclass(frozen=True)
class Entry:
    """One object on a target (or in a source tree)."""

    path: str
    size: int
    mtime: float
    is_dir: bool = False
    digest: str | None = None
    token: str | None = None   # an opaque change token from the target (S3 ETag), if any
    mtime_ns: int = 0          # exact source mtime where known (source walks)
    mode: int | None = None    # permission bits (stat.S_IMODE), None where not known or not kept


@dataclass(frozen=True)
class Features:
    """What a target can do cheaply; the engine adapts instead of asking the type."""

    server_side_move: bool = False   # move() avoids re-sending the bytes
    directories: bool = True         # empty directories exist (local, rsync), or not (s3)
    mtime_precision: float = 1e-6    # seconds; mtimes within this are equal
    list_mtime: bool = True          # list() reports the kept source mtime (S3: server time)
    batch_size: int = 1              # how many SyncItems one worker task hands to sync()
    needs_local_file: bool = True    # sync() reads SyncItem.local (rsync reads the source itself)
    keeps_mode: bool = True          # permission bits are kept (local, rsync: the inode; s3: metadata)
    cheap_stat: bool = False         # stat() is a local syscall, not a round trip (local)
    # A plain put keeps what it overwrites itself, only when something is there
    # (SyncItem.keep_stamp): S3 in 'copy' trash mode, by a conditional write
    # (If-None-Match: *; AWS "conditional writes", 2024). The keeper then asks no
    # keep() before such an item, saving a lookup per new file.
    keep_by_condition: bool = False
    # With keep_by_condition: a marked put also keeps, before it creates them, each of its
    # parents as keep(parent, coming='dir') would (a FILE standing where a parent goes is
    # removed by the put: `rm d; mkdir d; echo > d/z`), so the keeper asks no keep_many for
    # them either: rsync, in the run's own ssh session (rsync/inrun.py, issue 17); local,
    # in the put's own parent walk (LocalTarget._confined_parent).
    keeps_parents_in_put: bool = False


@dataclass(frozen=True)
class SyncItem:
    """Make `path` on the target match what the source holds right now.

    `kind` is what the shipper saw at the source just before calling:
    'file' (regular file at `local`, with `size` and `mtime`), 'dir', or 'absent'.
    `tree` asks that, before anything else, every object at or below `path`
    is removed (a directory was deleted or moved out of the tree).
    `mode` is the source's permission bits (stat.S_IMODE) and `mtime_ns` its exact
    mtime in nanoseconds (0: use `mtime`). `meta_only` (kind 'file' only) says the
    target already holds these bytes: only mode and mtime need setting (a chmod,
    a utime), never a re-send of the body.
    `keep_stamp` (set by mirrord.trash.keeper only, for a plain put on a target with
    features.keep_by_condition): keep_deleted is on and nothing was kept before; the
    target keeps what the put would overwrite under this trash stamp, as keep(path,
    stamp=keep_stamp, coming='file') would, and fails the item (nothing overwritten)
    when it cannot. None: the put keeps nothing itself.
    """

    path: str
    kind: str
    local: str = ""
    size: int = 0
    mtime: float = 0.0
    tree: bool = False
    source_root: str = ""   # the watched tree's root, for targets that read the source themselves
    source_rel: str = ""    # `path` relative to source_root (path = dest + '/' + source_rel)
    mode: int | None = None
    mtime_ns: int = 0
    meta_only: bool = False
    when: float = 0.0       # the change's time (journal event time, seconds): the trash stamp
    keep_stamp: str | None = None   # keep what the put overwrites, under this stamp (above)


@dataclass
class SyncResult:
    """What happened to one SyncItem: `error` is None on success."""

    item: SyncItem
    entry: Entry | None = None
    error: Exception | None = None


class Target(abc.ABC):
    """A place mirrord writes to. Instances are shared by worker threads."""

    type: str = "?"
    features: Features = Features()

    def __init__(self, name: str):
        self.name = name

    # -- lifecycle
    def open(self) -> None:
        """Connect and check the target is usable; RetryableError if not reachable. When no
        other mirrord process here has the target open, remove what interrupted puts left."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def describe(self) -> str:
        """Where this target points, for logs; never includes a credential."""
        return f"{self.type}:{self.name}"

    # -- listing
    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[Entry]:
        """Every file (and, with features.directories, every directory) at or below `prefix`,
        recursively, in mirrord.treewalk.entry_key order (bytes of the path, a directory as
        'path/'), streamed
        without holding the whole listing. `.mirrord/` is never listed.
        A listing that cannot be completed raises; it never ends early silently."""

    @abc.abstractmethod
    def stat(self, path: str) -> Entry | None:
        """The entry at `path`, or None when absent."""

    # -- changes
    @abc.abstractmethod
    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
        """Store the local file at `path` atomically, keeping its mtime and permission bits.
        `local` is a path the target may open (often /proc/self/fd/N of a file the shipper
        opened safely); `size` in bytes; `mtime` in seconds, `mtime_ns` the exact mtime in
        nanoseconds (0: derived from `mtime`, see exact_ns); `mode` the permission bits
        (stat.S_IMODE; None: the local file's own). `keep_stamp` (SyncItem.keep_stamp): keep
        what the put replaces under that trash stamp first, in the put itself; given only
        to targets whose Features.keep_by_condition is true (keeper.prepare), and any other
        target raises PermanentError on it. Returns the stored entry.
        On targets with directories, a directory standing at `path` is replaced and
        missing parents are created (files standing in their way are removed)."""

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """Set the permission bits (`mode`, stat.S_IMODE; None leaves them) and the mtime
        (nanoseconds since the epoch) of the file at `path` without re-sending its bytes
        (a chmod or utime at the source). Returns the entry as now stored.
        NotFound when no file is at `path` (also a directory on a target without
        directories): the caller then sends the whole file (see _sync_one)."""
        raise PermanentError(f"{self.describe()}: set_meta is not supported")

    @abc.abstractmethod
    def delete(self, path: str, *, tree: bool = False) -> None:
        """Remove the file at `path`; with tree, also everything below `path`. Idempotent."""

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        """Create a directory (and parents) where directories exist; replaces a file at `path`.
        `mode` (stat.S_IMODE) is set on `path` itself, also when it already exists (a chmod of
        a directory at the source arrives as a mkdir); parents created on the way get the
        target's default (they have their own items). None leaves the mode as it comes."""

    def move(self, src: str, dst: str) -> None:
        """Rename a file or directory tree on the target. NotFound if `src` is absent.
        Only called when features.server_side_move is true."""
        raise PermanentError(f"{self.describe()}: move is not supported")

    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        """Apply a batch of SyncItems; one result per item, in order, errors captured per item.
        Targets that can batch (rsync) override this."""
        return [self._sync_one(item) for item in items]

    def _sync_one(self, item: SyncItem) -> SyncResult:
        try:
            if item.tree:
                self.delete(item.path, tree=True)
            if item.kind == "file":
                return SyncResult(item, self._sync_file(item))
            if item.kind == "dir":
                if self.features.directories:
                    self.mkdir(item.path, mode=item.mode)
                else:
                    self.delete(item.path)
                return SyncResult(item, Entry(item.path, 0, item.mtime, is_dir=True,
                                              mtime_ns=item.mtime_ns, mode=item.mode))
            self.delete(item.path, tree=item.tree)
            return SyncResult(item)
        except (RetryableError, PermanentError, NotFound) as exc:
            return SyncResult(item, error=exc)
        except OSError as exc:
            return SyncResult(item, error=classify_oserror(exc))

    def _sync_file(self, item: SyncItem) -> Entry:
        """A 'file' item: set_meta when only metadata changed; a full put when asked, or when
        the target lost the file (set_meta's NotFound) and the item has the local file. An
        item with a keep_stamp (meta_only never has one) is put with put(keep_stamp=...),
        which a keep_by_condition target accepts: it keeps what the put overwrites."""
        ns = exact_ns(item.mtime, item.mtime_ns)
        if item.meta_only:
            try:
                return self.set_meta(item.path, mode=item.mode, mtime_ns=ns)
            except NotFound:
                if not item.local:
                    raise
        return self.put(item.path, item.local, size=item.size, mtime=item.mtime,
                        mtime_ns=ns, mode=item.mode, keep_stamp=item.keep_stamp)

    @abc.abstractmethod
    def read(self, path: str) -> bytes | None:
        """The whole content of the file at `path`, None when absent (verification and tests)."""

    # -- mirrord's own area
    @abc.abstractmethod
    def write_meta(self, name: str, data: bytes) -> None:
        """Atomically write `<root>/.mirrord/<name>` (the heartbeat)."""

    @abc.abstractmethod
    def read_meta(self, name: str) -> bytes | None:
        """Read `<root>/.mirrord/<name>`, None when absent."""

    # -- the trash (keep_deleted; mirrord.trash.model names the places)
    def keep(self, path: str, *, stamp: str, coming: str) -> int:
        """Before `path` becomes `coming` ('file': a put overwrites it; 'dir': a mkdir; 'absent':
        a delete, with everything below it), keep what that change would destroy, with its
        bytes, mtime and mode, under TRASH/<stamp>.<why>/<path> (mirrord.trash.model):
        a file and coming 'file': why 'overwritten', the file stays in place for the put
        (local: hard link; rsync: remote ln; S3: server-side copy); a file and coming 'dir' or
        'absent': 'deleted' (local/rsync: renamed into the trash, the delete then finds
        nothing); a directory and coming 'file' or 'absent': every file below it,
        'dir-removed' (local/rsync: one rename of the directory); a directory and coming
        'dir', or nothing at `path`: nothing. Never a copy of the body where a rename or a
        link will do. Idempotent per stamp: a place already holding a kept entry is never
        replaced, so a retry after kill -9 keeps nothing twice. Returns the bytes kept (0:
        nothing, also on S3 with bucket versioning, where the noncurrent version is kept).
        Fails like put (RetryableError / PermanentError)."""
        raise PermanentError(f"{self.describe()}: keep_deleted is not supported")

    def keep_many(self, requests: Sequence[tuple[str, str, str]]) -> list[Exception | None]:
        """keep() for many (path, stamp, coming) requests; one error or None per request, in
        order. Targets with a round trip per call (rsync) do the batch in one."""
        out: list[Exception | None] = []
        for path, stamp, coming in requests:
            try:
                self.keep(path, stamp=stamp, coming=coming)
                out.append(None)
            except (RetryableError, PermanentError, NotFound) as exc:
                out.append(exc)
            except OSError as exc:
                out.append(classify_oserror(exc))
        return out

    def trash_list(self, prefix: str = "") -> Iterator[Kept]:
        """Every kept version whose path is `prefix` or below it (all when empty), any order."""
        raise PermanentError(f"{self.describe()}: keep_deleted is not supported")

    def trash_purge(self, kept: Sequence[Kept]) -> None:
        """Remove these kept versions for good (retention); absent ones are not an error."""
        raise PermanentError(f"{self.describe()}: keep_deleted is not supported")

    def trash_restore(self, kept: Kept, path: str) -> Entry:
        """Put the kept bytes back at `path` on the target, atomically, with the kept mtime
        and mode (server-side where the target can); the kept entry stays. The caller keeps
        what `path` holds first. Returns the entry now at `path`."""
        raise PermanentError(f"{self.describe()}: keep_deleted is not supported")

    def trash_fetch(self, kept: Kept, local: str) -> None:
        """Write the kept bytes to the local file `local`, opened with open(local, 'wb') (it
        may be /proc/self/fd/N of a temp file the caller made beneath the source root; never
        write beside it and rename); the caller sets mtime and mode (`undelete --to-source`)."""
        raise PermanentError(f"{self.describe()}: keep_deleted is not supported")

    def trash_mode(self) -> str:
        """How this target keeps: 'rename' (local, rsync), 'copy' (S3) or 'versioning'
        (an S3 bucket with versioning enabled, seen at open); for the log and status."""
        return "none"

    # -- optional
    def checksum(self, path: str) -> str | None:
        """A content hash comparable with mirrord.treewalk.file_digest, or None if unavailable."""
        return None


RETRYABLE_ERRNOS = {
    "ENOSPC", "EDQUOT", "EIO", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH",
    "ENETUNREACH", "EAGAIN", "EBUSY", "ESTALE", "EROFS", "ENOTCONN", "EPIPE", "EMFILE", "ENFILE",
    "ENOENT", "ENOTDIR", "EINTR",
    "ENOTEMPTY",  # a tree removal raced a put below it (another worker): the retry succeeds
}


def classify_oserror(exc: OSError) -> Exception:
    """Map an OSError on a target to Retryable or Permanent (disk full is retryable)."""
    import errno as _errno

    name = _errno.errorcode.get(exc.errno or 0, "")
    msg = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if name in RETRYABLE_ERRNOS:
        return RetryableError(f"{name}: {msg}")
    return PermanentError(f"{name or 'error'}: {msg}")


def refuse_keep_stamp(target: Target, keep_stamp: str | None) -> None:
    """PermanentError when a put is given a keep_stamp by a target that cannot keep in its
    put (Features.keep_by_condition false): keeper.prepare never does; a caller that did
    would have the version it overwrites lost unkept."""
    if keep_stamp is not None:
        raise PermanentError(f"{target.describe()}: cannot keep what a put replaces")


def check_relpath(path: str) -> str:
    """Refuse anything that could escape a target root; return the path unchanged."""
    if not path or path.startswith("/") or "\0" in path:
        raise PermanentError(f"unsafe path {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PermanentError(f"unsafe path {path!r}")
    if parts[0] == META_DIR:
        raise PermanentError(f"{path!r} is inside mirrord's own area {META_DIR}/")
    return path


def join(*parts: str) -> str:
    """Join relative path pieces with '/', skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def fs_path(path: str) -> bytes:
    """The bytes of a relative path for OS calls (surrogateescape round-trips odd names)."""
    return os.fsencode(path)
