"""What stands at a path, in words for a message: "a regular file", "a directory",
"a symlink", "a FIFO (named pipe)"...

For the messages that say what was found where a file of another kind was expected: the
config file (config.load), [failover] link (failover.appconfig), a target's heartbeat
(failover.heartbeat, Target.meta_kind). "not a symlink (Invalid argument)" told an
operator nothing of what stood there, nor what to do about it.
"""

from __future__ import annotations

import os
import stat

_KINDS = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
UNKNOWN = "something other than a regular file"


def kind(mode: int) -> str:
    """The kind of file an st_mode says, in words (UNKNOWN for a type not listed)."""
    return next((name for test, name in _KINDS if test(mode)), UNKNOWN)


def kind_at(path: str | bytes | os.PathLike) -> str | None:
    """What stands at `path`, by lstat: never followed, never opened (a FIFO never
    blocks); None when nothing does. OSError as lstat says otherwise (EACCES, ENOTDIR...)."""
    try:
        return kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
