"""Raising the target failure contract's errors (mirrord.targets.base) from what went wrong.

An OSError on a target becomes RetryableError (disk full, a dropped connection, a
race with another worker: retrying fixes it) or PermanentError (everything else);
a keep_stamp given to a target that cannot keep in its put is refused.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from mirrord.errors import PermanentError, RetryableError

if TYPE_CHECKING:
    from mirrord.targets.base import Target

RETRYABLE_ERRNOS = {
    "ENOSPC", "EDQUOT", "EIO", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH",
    "ENETUNREACH", "EAGAIN", "EBUSY", "ESTALE", "EROFS", "ENOTCONN", "EPIPE", "EMFILE", "ENFILE",
    "ENOENT", "ENOTDIR", "EINTR",
    "ENOTEMPTY",  # a tree removal raced a put below it (another worker): the retry succeeds
}


def classify_oserror(exc: OSError, *paths: str) -> Exception:
    """Map an OSError on a target to the error to raise or record: RetryableError when its
    errno is in RETRYABLE_ERRNOS (disk full is retryable), else PermanentError. The message
    is the errno name, strerror and `paths` (str, relative to the target root: the path
    the op was asked for; a move's source and destination), quoted, or, with none given,
    the file name the OSError carries. With paths the OSError's file names are left out:
    they name a staging file (`.mirrord/tmp/tmpXXXX`, a new random name per put), one
    component, or a /proc/self/fd link, and made the text of each failing file distinct
    (errors.cause_of groups by the text with the op's own path left out)."""
    name = errno.errorcode.get(exc.errno or 0, "")
    if paths:
        msg = f"{exc.strerror or exc}: " + " -> ".join(repr(p) for p in paths)
    else:
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
