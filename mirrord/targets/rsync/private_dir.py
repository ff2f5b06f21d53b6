"""The rsync target's private directories in /tmp: made locked, swept once their owner is gone.

Each SshConnection has a private 0700 directory, PRIVATE_PREFIX + random letters (its
ssh control socket, staged copies of uploads). A process killed with SIGKILL (the OOM
killer, kill -9) cannot remove its own, so the next one to make a directory there
removes those whose owner is gone (sweep_gone). Whether the owner is alive is told the
way mirrord/targets/sweep.py tells it: the owner holds an exclusive flock(2) on the
file LOCK_NAME inside its directory for as long as the connection lives, and a flock
dies with its process, in whatever pid namespace it ran. No pid is looked at.

The lock file never shows unlocked while its owner lives: it is made under a temporary
name (TMP_LOCK_NAME), locked, then hard-linked to LOCK_NAME (link(2) fails when the
temporary file is gone or LOCK_NAME exists). A directory with only TMP_LOCK_NAME was
left by a maker killed before the link: swept when its lock can be taken. One a sweep
took in the microseconds between the maker's open and its flock is given up by the
maker (its flock or its link fails), which makes another. A directory with neither
file is kept: being made right now (before the open), or left by an earlier mirrord
that named it after its pid, whose owner this rule cannot judge.

Under the systemd units PrivateTmp=yes drops these directories at stop anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile

from mirrord.fsutil import remove_tree
from mirrord.targets.sweep import try_flock

PRIVATE_PREFIX = "mirrord-ssh-"
LOCK_NAME = "lock"
TMP_LOCK_NAME = ".lock-new"
_MAKE_TRIES = 5

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def make_private(base: str) -> tuple[str, int]:
    """Make a private 0700 directory in `base` and lock it as ours; returns its path and
    the locked fd (O_CLOEXEC: ssh and rsync never inherit it). Keep the fd open while the
    directory is in use; remove the directory before closing it. Raises OSError when no
    directory can be made, or when a sweeper took each one made before it was locked
    (_MAKE_TRIES times)."""
    for _ in range(_MAKE_TRIES):
        path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=base)
        try:
            fd = _lock_new(path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        if fd >= 0:
            return path, fd
        shutil.rmtree(path, ignore_errors=True)   # what a sweeper left of it, if anything
    raise OSError(f"cannot lock a private directory in {base}: swept while being made")


def _lock_new(path: str) -> int:
    """Lock the fresh directory `path`: a temporary lock file, locked, linked to LOCK_NAME.
    Returns the fd, or -1 when a sweep got there first (it holds the temporary file's
    lock, or removed it or the directory) or LOCK_NAME is there already."""
    try:
        dfd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return -1
    try:
        try:
            fd = os.open(TMP_LOCK_NAME, _NEW_FLAGS, 0o600, dir_fd=dfd)
        except FileNotFoundError:          # the directory was removed (ENOENT on a dead dir)
            return -1
        try:
            if not try_flock(fd, fcntl.LOCK_EX):   # a sweep took it after our open
                os.close(fd)
                return -1
            try:
                os.link(TMP_LOCK_NAME, LOCK_NAME, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except (FileExistsError, FileNotFoundError):
                os.close(fd)
                return -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(TMP_LOCK_NAME, dir_fd=dfd)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    finally:
        os.close(dfd)


def sweep_gone(base: str) -> list[str]:
    """Remove the private directories in `base` whose owner is gone; returns their paths.
    One is removed only when it is a real directory (never a symlink, which is not
    followed, nor is a symlinked lock file) of our uid, named PRIVATE_PREFIX..., and
    this process can take at once (LOCK_NB) the exclusive lock of its LOCK_NAME, or,
    without one, of its TMP_LOCK_NAME (a maker killed before linking it). A directory
    with neither file, or whose lock file cannot be opened or is not a regular file, is
    kept. Best effort: an OSError skips that entry."""
    gone = []
    try:
        bfd = os.open(base, _DIR_FLAGS)
    except OSError:
        return gone
    try:
        with os.scandir(bfd) as it:
            names = [e.name for e in it if e.name.startswith(PRIVATE_PREFIX)]
        for name in names:
            try:
                if _sweep_one(bfd, name):
                    gone.append(os.path.join(base, name))
            except OSError:
                continue
    finally:
        os.close(bfd)
    return gone


def _sweep_one(bfd: int, name: str) -> bool:
    st = os.stat(name, dir_fd=bfd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    dfd = os.open(name, _DIR_FLAGS, dir_fd=bfd)
    try:
        dst = os.fstat(dfd)
        if (dst.st_dev, dst.st_ino) != (st.st_dev, st.st_ino) or dst.st_uid != os.getuid():
            return False                       # replaced between the stat and the open
        fd = _owner_gone(dfd)
        if fd < 0:
            return False
        try:
            # held to the end: a maker that has not flocked TMP_LOCK_NAME yet fails to,
            # and once it can, its link fails (the file is gone). remove_tree goes on past
            # an entry gone under it: the dead owner's ssh master, orphaned, unlinks its
            # control socket when it exits, often while this runs (shutil.rmtree stopped
            # there and left the directory to the next sweep)
            remove_tree(name, dir_fd=bfd)
        finally:
            os.close(fd)
        return True
    finally:
        os.close(dfd)


def _owner_gone(dfd: int) -> int:
    """The directory's lock, taken by us (an fd), when its owner is gone; else -1."""
    try:
        fd = os.open(LOCK_NAME, _OPEN_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        try:                                   # made by a maker that did not link it
            fd = os.open(TMP_LOCK_NAME, _OPEN_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return -1                          # being made now, or not ours to judge
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and try_flock(fd, fcntl.LOCK_EX):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return -1
