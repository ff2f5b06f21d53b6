"""The values that cross the target interface: Entry, Features, SyncItem and SyncResult.

An Entry is what a target (or a source walk) holds at a path; Features say what a
target can do cheaply, so the engine adapts instead of asking the type; a SyncItem
asks a target to make one path match the source, and a SyncResult says how that
went. The methods that take and return them: mirrord.targets.base.Target.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # a source file's inode change time (source walks; 0: not known): which look it was,
    # not what the file is, so no part of equality (a target's listing has none)
    ctime_ns: int = field(default=0, compare=False)
    # a target entry that is neither a regular file nor a directory (a symlink, a FIFO, a
    # socket, a device planted in a local mirror or on a mirror host): what it is, e.g.
    # 'symlink'. Listed so a reconcile removes or replaces it (never mirrored: a source walk
    # yields none); None for every file and directory.
    other: str | None = None


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
    # in the put's own parent walk (LocalTarget._open_parent).
    keeps_parents_in_put: bool = False
    # A directory's move leaves what stood below the destination that it does not
    # overwrite (S3: a move is copies, then deletes of the old keys; deleting below the
    # destination first would, on a retry after a failed delete, remove what the first
    # try had moved there). Elsewhere the destination is replaced, as rename(2) does.
    # The record keeps those paths (journal.shipped), so the check that follows every
    # directory move (Outcome.check) removes the ones the source lacks.
    move_merges: bool = False
    # The target refuses every write once its root is not the directory it opened (device,
    # inode, mount ID: root_check.RootIdentity): local. Elsewhere the daemon reads back the
    # heartbeat it wrote to see a mirror emptied or replaced (mirrord.mirror_wiped).
    guards_root: bool = False


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
    `moved_to` (a delete the journal recorded for a rename it could not keep as a move:
    enqueue_move's fallback) is the target path the file at `path` was renamed to at the
    source; on a put, where the bytes it overwrites went (an exchange of two files:
    mirrord.trash.swaps). A hint only: nothing is trusted before the target is looked at.
    `first_when` (seconds since the epoch; 0: not known) is the time of the oldest change
    the journal row held when it was claimed, `when` that of its newest: a version kept
    by an earlier change of the same exchange or rotation (another name's put) is stamped
    from `first_when` on, not from `when` (mirrord.trash.swaps).
    `lives_on` (set by mirrord.trash.keeper only): the keeper found that the
    version at `path` (this Entry, as the target's stat gave it) is also held at
    `moved_to`, so nothing is kept; a target whose delete keeps by itself (an S3 bucket
    with versioning) removes the version its delete leaves, when it is this one.
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
    moved_to: str = ""              # where the bytes at `path` went (above)
    first_when: float = 0.0         # the oldest change's time (above): swaps' bound
    lives_on: Entry | None = None   # the keeper's finding: nothing to keep (above)


@dataclass
class SyncResult:
    """What happened to one SyncItem: `error` is None on success."""

    item: SyncItem
    entry: Entry | None = None
    error: Exception | None = None
