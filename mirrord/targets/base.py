"""The one interface every mirror target implements, and how each method fails.

The engine (shipper, reconciler, failover) only ever talks to a target through
this class; SDKs (boto3, ssh/rsync) live only in their own target module.

Paths are relative to the target root, '/'-separated, never empty, never
starting with '/', never containing '.' or '..' components
(mirrord.targets.paths). Everything a target lists or stats excludes mirrord's
own area `.mirrord/` at the root. The values passed in and out:
mirrord.targets.model.

Failure contract (checked by tests/targets/test_conformance.py on every target):
- Network trouble, timeouts, throttling (SlowDown), 5xx, a full disk: raise
  RetryableError. The shipper retries with backoff; nothing is dropped.
- Anything retrying will not fix soon (a name the target cannot store, access
  denied): raise PermanentError. Recorded on the journal row and retried rarely.
  An OSError is mapped to one or the other by mirrord.targets.failures.
- Absence is not an error for stat/delete/read_meta: they return None / do nothing.
  move() and set_meta() raise NotFound when the path is absent.
- put() is atomic: a reader of the target sees the old object or the complete
  new one, never a partial file, and a failed put leaves no partial object.
  What a put killed mid-way (kill -9, power loss) left (a temp file, an open
  multipart upload) is removed by the next open(), unless another mirrord
  process on this host has the target open (mirrord.targets.sweep), or that
  open() is open(readonly=True), which writes nothing at all.
- No name is special but `.mirrord` at the root: any other path a user can
  give a file is stored, listed and deleted like every other.
- No credential ever appears in an exception message.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence

from mirrord.errors import PermanentError
from mirrord.targets import itemwise
from mirrord.targets.model import Entry, Features, SyncItem, SyncResult
from mirrord.targets.paths import check_relpath
from mirrord.trash.model import Kept


class Target(abc.ABC):
    """A place mirrord writes to. Instances are shared by worker threads."""

    type: str = "?"
    features: Features = Features()
    # after open(readonly=True): the root is a directory holding no mirrored file and no
    # heartbeat (what a mount point shows while its file system is not mounted:
    # mirrord.targets.root_check). False otherwise, and on targets with no root to unmount (S3)
    root_empty: bool = False
    # after open(readonly=True): the root holds entries but neither a heartbeat nor
    # mirrord's own `.mirrord/` directory, which every writable open makes: a marker file
    # (NOT_MOUNTED) left in a mount point whose file system is not mounted
    root_unmarked: bool = False
    # after a writable open(): the root did not exist or held nothing (root_check.
    # holds_nothing) before the open made anything there; only directory targets tell
    found_empty: bool = False

    def __init__(self, name: str):
        self.name = name

    # -- lifecycle
    def open(self, *, readonly: bool = False) -> None:
        """Connect and check the target is usable; RetryableError if not reachable. When no
        other mirrord process here has the target open, remove what interrupted puts left.

        `readonly`: open only to look (list, stat, read, read_meta, checksum, trash_list,
        trash_fetch, trash_mode, cannot_hold; the caller never calls anything else). Nothing
        is written to the target or for it, of any kind: no sweep (an upload or a staged
        file seen there may belong to a daemon on another host: the mirror host's failover
        and health read the heartbeat while the primary writes), no root or `.mirrord/`
        made, no lock file. A root that does not exist is a PermanentError saying so (a
        missing mount must not read as an empty mirror); a root that exists but is empty
        sets `root_empty` (the heartbeat's reader fails on it: an unmounted
        mount point is an empty directory). The rule comes from the commands
        that only read (failover and its --dry-run, health, trash, undelete --dry-run,
        reconcile --dry-run): they never change the mirror. Checked on every target by
        tests/targets/test_open_readonly.py."""

    def no_mirror(self) -> str:
        """After open(readonly=True): "" when the root may hold the mirror, else why it does
        not (root_empty, root_unmarked), for the messages of failover, /ready, trash and
        undelete, which refuse such a root as they refuse a missing one."""
        if self.root_empty:
            return ("the mirror root is empty, no mirrored file and no heartbeat (is its file "
                    "system mounted?)")
        if self.root_unmarked:
            return ("the mirror root holds no .mirrord/ and no heartbeat, so mirrord never "
                    "wrote there (a marker file left in a mount point whose file system is not "
                    "mounted?)")
        return ""

    def expect_mirror(self, why: str) -> None:
        """Told after a writable open() when paths shipped to this target are recorded
        (the daemon's journal). A target whose open found its root missing or holding
        nothing (`found_empty`) then writes nothing, raising RetryableError(`why`) from
        every change, until the root holds something again: a file system not mounted
        at start leaves an empty mount point, and writing there made a mirror nobody
        reads while status said in_sync. Targets with no root to unmount (S3) and
        those that cannot tell ignore it (the default)."""

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
        without holding the whole listing. `.mirrord/` is never listed. Where a target can
        hold entries that are neither (a symlink, a FIFO: local, rsync), those are listed
        too, as Entry.other, never followed: a reconcile removes or replaces them.
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
        directories): the caller then sends the whole file (itemwise.sync_one)."""
        raise PermanentError(f"{self.describe()}: set_meta is not supported")

    @abc.abstractmethod
    def delete(self, path: str, *, tree: bool = False) -> None:
        """Remove the file or symlink at `path`; with `tree`, also a directory there with
        everything below it. Without `tree` a directory at `path` is removed only when empty
        and left otherwise, with no error (on a target without directories: the object at
        `path` alone); the journal then queues a tree removal if its record names anything
        below (mirrord.journal.claims). Idempotent: nothing there is no error."""

    def remove_file_at(self, path: str) -> None:
        """What a directory at the source means at `path` on a target without directories
        (features.directories false): a file (object) standing there, replaced by that
        directory, is removed; nothing else is touched. Idempotent. By default delete(path);
        S3 asks first (S3Target.remove_file_at)."""
        self.delete(path)

    def mkdir(self, path: str, *, mode: int | None = None) -> None:
        """Create a directory (and parents) where directories exist; replaces a file at `path`.
        `mode` (stat.S_IMODE) is set on `path` itself, also when it already exists (a chmod of
        a directory at the source arrives as a mkdir); parents created on the way get the
        target's default (they have their own items). None leaves the mode as it comes."""

    def move(self, src: str, dst: str) -> None:
        """Rename a file or directory tree on the target. NotFound if `src` is absent.
        What stands at `dst` is replaced, a directory with everything below it, unless
        features.move_merges: then a directory's move leaves what stood below `dst` that
        it does not overwrite. Only called when features.server_side_move is true."""
        raise PermanentError(f"{self.describe()}: move is not supported")

    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        """Apply a batch of SyncItems; one result per item, in order, errors captured per item.
        By default item by item (mirrord.targets.itemwise.sync_one); targets that can batch
        (rsync, S3's DeleteObjects) override this."""
        return [itemwise.sync_one(self, item) for item in items]

    @abc.abstractmethod
    def read(self, path: str) -> bytes | None:
        """The whole content of the file at `path`, None when absent (verification and tests)."""

    # -- mirrord's own area
    @abc.abstractmethod
    def write_meta(self, name: str, data: bytes) -> None:
        """Atomically write `<root>/.mirrord/<name>` (the heartbeat)."""

    @abc.abstractmethod
    def read_meta(self, name: str) -> bytes | None:
        """Read `<root>/.mirrord/<name>`, None when absent. PermanentError when it holds
        more than paths.META_LIMIT bytes (1 MiB): nothing larger is read into memory."""

    def meta_kind(self, name: str) -> tuple[str, str] | None:
        """After read_meta(name) answered None: what stands in the way, for a message
        (failover's heartbeat.age). (where, what): `where` relative to the root,
        `.mirrord/<name>` when that is no regular file, or `.mirrord` when it is no
        directory; `what` in words (mirrord.filekinds: "a directory", "a symlink to
        '/etc'", "a FIFO (named pipe)"). None when nothing stands there (absent), or on a
        target whose names are only keys (S3, memory: the default). Looks without
        following a symlink or opening what it finds (a FIFO never blocks)."""
        return None

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
        order. By default one keep() each (mirrord.targets.itemwise.keep_each); targets with a
        round trip per call (rsync) do the batch in one."""
        return itemwise.keep_each(self, requests)

    def trash_list(self, prefix: str = "", *, since: float | None = None) -> Iterator[Kept]:
        """Every kept version whose path is `prefix` or below it (all when empty), any order.
        `since` (seconds since the epoch, None: no bound): versions stamped earlier than a
        change at `since` would be (stamp < mirrord.trash.model.since_stamp(since), to the
        microsecond) are not listed, and the target does not read them either: the trash
        is laid out stamp first (TRASH/<stamp>.<why>/<path>), so the work is bounded by
        what was kept since then, not by the size of the trash (swaps.redundant asks for
        one path's versions after every exchange). ValueError for a `since` no stamp can
        express (since_stamp)."""
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
    def cannot_hold(self, path: str) -> str | None:
        """Why no object or file at `path` can ever exist on this target (one sentence), or
        None when it can. Never raises, never asks the server. Reconcile proposes no repair
        for such a name: it is an error of the pass, not a failed repair that would hold
        back every delete of every pass (mirrord.reconcile.session). Here: what
        paths.check_relpath refuses, e.g. a source's own `.mirrord/` at the target root
        (a former mirror made a source); targets add their own limits (S3: UTF-8 keys)."""
        try:
            check_relpath(path)
        except PermanentError as exc:
            return str(exc)
        return None

    def checksum(self, path: str) -> str | None:
        """A content hash comparable with mirrord.treewalk.file_digest, or None if unavailable."""
        return None
