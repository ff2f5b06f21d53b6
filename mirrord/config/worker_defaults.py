"""How many workers a target gets when neither its section nor [mirrord] says (`workers`):
per target type, from what was measured on this project's benchmark (README
"Benchmarks"); a local target also by its `fsync` and the file system its path is on.
"""

from __future__ import annotations

import os
from pathlib import Path

from mirrord import fsutil
from mirrord.config.model import LocalOptions

# The rsync target's worker count unless its section sets one. Measured on a first sync
# of 5,000 files (693 MiB) over loopback ssh: 8 parallel rsync runs used 1.4-1.6x the CPU
# of 2 (more, smaller runs; more remote sessions) and finished later, not sooner.
RSYNC_DEFAULT_WORKERS = 2

# The S3 target's worker count unless its section or [mirrord] sets one: rclone's
# --transfers in the benchmark. Measured against SeaweedFS on 2 cores, mirrord alone,
# 8 and 16 alternating (README "Benchmarks", 2026-12-02): the initial sync of 5,000
# files (693 MiB) took 7.4 s at 16 against 8.3 s at 8 (4 pairs, each 0.80-0.99), with
# less CPU in both mirrord and SeaweedFS; the burst of 5,000 x 4 KiB on a journaled ext4
# was the same at both (4.19 s and 4.14 s, 7 pairs, median 1.02).
S3_DEFAULT_WORKERS = 16

# A local target with `fsync = no` on a local disk's file system, unless its section or
# [mirrord] sets a count. Its work is then a few system calls per file that never wait on
# a disk, and at each of them another thread may take Python's GIL: with 8 workers the
# daemon spent half its CPU handing the GIL between threads (perf: futex wake-ups and
# task switches). Measured on 2026-12-06, the daemon alone on a journaled ext4: 5,000
# files of 4 KiB copied in took 3.8-4.4 s and 4.3-4.8 CPU s at 2 workers against 5.5-5.6
# s and 6.5-6.6 at 8; at 1,000 new files a second the median latency was 12 ms against
# 118 (3 runs each); 1 worker fell behind. With `fsync = yes` (the default) each put
# waits for the disk twice (the file, its directory), and fewer workers fell behind: at
# 1,000 files/s the median latency was 4.6 s at 2 against 1.2 s at 8 (a loaded machine).
LOCAL_DEFAULT_WORKERS = 2

# File systems on a local disk or in memory, where a local target's operation does not
# wait on a network. On any other (NFS, SMB, FUSE, an unknown type: fsutil.type_by_name
# None), each operation waits on a server, and [mirrord] workers (8) run side by side.
LOCAL_DISK_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "jfs",
                              "zfs", "bcachefs", "reiserfs"})


def default_workers(ttype: str, opts: object, general: int, *, mirrord_wrote: bool) -> int:
    """The worker count of a target of type `ttype` ("local", "rsync", "s3") whose section
    does not set one. `general`: [mirrord] workers (8 when not written); `mirrord_wrote`:
    whether [mirrord] workers is written, which then applies to local and S3 targets as
    it is. `opts`: the target's options (a local target's `fsync`, and its `path`: the
    type of the file system it is on by its name, _on_local_disk)."""
    if ttype == "rsync":   # parallel rsync runs share one SSH connection and the CPU
        return min(general, RSYNC_DEFAULT_WORKERS)
    if mirrord_wrote:
        return general
    if ttype == "s3":
        return S3_DEFAULT_WORKERS
    if isinstance(opts, LocalOptions) and not opts.fsync and _on_local_disk(opts.path):
        return min(general, LOCAL_DEFAULT_WORKERS)
    return general


def _on_local_disk(path: Path) -> bool:
    """Whether `path` (as the configuration gives it: symlinks resolved) is on one of
    LOCAL_DISK_TYPES by the mount table (fsutil.type_by_name), without another look at
    the path."""
    return fsutil.type_by_name(os.fspath(path)) in LOCAL_DISK_TYPES
