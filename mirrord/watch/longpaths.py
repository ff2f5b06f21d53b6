"""Path-based system calls on directories deeper than PATH_MAX, for the inotify watcher.

inotify_add_watch(2), stat(2) and opendir take a path, and a path longer than PATH_MAX
(4,096 bytes on Linux, limits.h) fails with ENAMETOOLONG, though such trees are legal
(20 nested directories of 250-byte names): the watcher retried the watch for good and
the source read `degraded` forever, its files arriving only by the 5 s rescans (a
trial; fanotify names such directories by climbing '..': watch/fanotify_paths.py).
`reachable` hands those calls a short path that names the same entry: the parent
directory opened by descriptor, one component at a time and never through a symlink
(fsutil.open_dir_beneath), then /proc/self/fd/N/NAME, which the kernel resolves through
the descriptor (proc(5), /proc/[pid]/fd). The last component is the caller's as before:
IN_DONT_FOLLOW and lstat still refuse a symlink there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mirrord.fsutil import open_dir_beneath

PATH_MAX = 4096   # bytes with the terminating NUL (linux/limits.h)


@contextlib.contextmanager
def reachable(root: str, rel: str) -> Iterator[str]:
    """A path (str) naming root/rel for the duration of the block: root/rel itself when it
    fits in PATH_MAX, else /proc/self/fd/N/NAME through a descriptor of its parent.
    Raises OSError as open_dir_beneath does (ENOENT, ENOTDIR, ELOOP: gone or a symlink
    on the way) before the block runs."""
    full = os.path.join(root, rel) if rel else root
    if len(os.fsencode(full)) < PATH_MAX:
        yield full
        return
    head, _, name = rel.rpartition("/")
    fd = open_dir_beneath(root, head, search_only=True)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)
