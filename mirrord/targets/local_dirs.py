"""A cache of directory descriptors below a local target's root, for one batch of keeps.

Why: before a batch of new files the keeper asks the target about each file's parents
(mirrord.trash.keeper.keep_items, coming 'dir'); walking from the root for each of them
cost more than the rest of keeping (issue 17). Each directory here is opened once, from
its parent's descriptor, without following a symlink (O_NOFOLLOW, openat(2): the rule of
mirrord.fsutil.open_dir_beneath), so a symlink planted in the mirror leads nowhere.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from mirrord.fsutil import open_dir_beneath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC   # as fsutil's


class DirCache:
    """Descriptors of directories below `root`, each opened from its parent's without
    following a symlink (open_dir_beneath's rule), kept for one keep_many."""

    def __init__(self, root: str):
        self.root = root
        self.fds: dict[str, int | None] = {}   # relative dir -> descriptor, None: not there

    def dir_or_nothing(self, path: str) -> bool:
        """Whether `path` is a directory or absent; a symlink or a non-directory on the way
        counts as absent, as in keep(). OSError other than those."""
        head, _, name = path.rpartition("/")
        fd = self._open(head)
        try:
            return fd is None or stat_mod.S_ISDIR(os.lstat(os.fsencode(name), dir_fd=fd).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return True

    def _open(self, rel: str) -> int | None:
        """The descriptor of `rel` ('' the root), None when it is not a directory of ours."""
        if rel not in self.fds:
            head, _, name = rel.rpartition("/")
            parent = self._open(head) if rel else None
            self.fds[rel] = None
            try:
                if not rel:
                    self.fds[rel] = open_dir_beneath(self.root, "")
                elif parent is not None:
                    self.fds[rel] = os.open(os.fsencode(name), _DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
        return self.fds[rel]

    def close(self) -> None:
        """Close every descriptor; the cache is empty (and usable) again."""
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()
