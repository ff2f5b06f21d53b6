"""Exclusive run locks under state_dir, and who holds them: the one place that does it.

Each kind of run that must not overlap with itself takes an flock(2) on its own
file under `[mirrord] state_dir`: the daemon (`daemon.lock`), `mirrord reconcile`
(`reconcile.lock`), a failover, switchover or failback (`failover.lock`). The lock
is held for the life of the process and released by the kernel when it exits,
however it exits (kill -9 included): no stale lock file ever blocks a restart.

`holder()` answers "is it running, and as which pid" from /proc/locks, never by
trying the lock: a probe that takes the lock for a moment can make a daemon that
is starting at that very moment fail to get it (seen with the old status check).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mirrord.errors import StateDirError

DAEMON = "daemon.lock"
RECONCILE = "reconcile.lock"
FAILOVER = "failover.lock"


class Busy(Exception):
    """The lock is held by another process; `pid` is its pid when known (else None)."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is held by {'pid ' + str(pid) if pid else 'another process'}")
        self.path, self.pid = path, pid


class Lock:
    """An flock held on `path` by this process until close()."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def close(self) -> None:
        """Release the lock (also released when the process exits)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def take(state_dir: Path, name: str, *, mode: int = 0o644) -> Lock:
    """Take the exclusive lock `state_dir/name` without waiting and record our pid in it.

    Creates state_dir when missing. Raises Busy (with the holder's pid when it can be
    read) when another process holds it; StateDirError when state_dir cannot be made or
    the file cannot be made, opened or written there (its reason: the OS's words: a
    read-only or full file system, a quota, an I/O error), a symlink in its place
    included: O_NOFOLLOW. `sudo mirrord failover` runs as root in a state_dir
    the health service's user owns (StateDirectory=); a symlink planted there as
    failover.lock had root truncate and write the file it named (a breaker: /etc/passwd)."""
    state_dir = Path(state_dir)
    path = state_dir / name
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        what = "cannot be made" if not state_dir.is_dir() else f"cannot hold {name}"
        raise StateDirError(state_dir, f"{what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(path, holder(state_dir, name)) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        # a full file system (ENOSPC), a quota (EDQUOT), an I/O error: the file was made
        # (an inode is free) but no block for its pid; was a bare "[Errno 28]", exit 1
        os.close(fd)
        raise StateDirError(state_dir, f"cannot hold {name}: {exc.strerror or exc}") from None
    return Lock(path, fd)


def holder(state_dir: Path, name: str, *, proc_locks: str = "/proc/locks") -> int | None:
    """The pid holding the flock on state_dir/name, -1 when held by an unknown pid, None
    when nobody holds it (or the file does not exist).

    Read from /proc/locks (the kernel's table: "ID: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE
    ..."), matched by device and inode; falls back to a shared-lock probe only where
    /proc/locks is unreadable."""
    path = Path(state_dir) / name
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        lines = Path(proc_locks).read_text().splitlines()
    except OSError:
        return _probe(path)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.replace("->", " ").split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if _device_inode(fields[5]) == want:
            try:
                return int(fields[4])
            except ValueError:
                return -1
    return None


def _device_inode(text: str) -> tuple[int, int, int] | None:
    """'fd:01:1234' (hex major:minor, decimal inode) -> (253, 1, 1234)."""
    try:
        major, minor, inode = text.split(":")
        return int(major, 16), int(minor, 16), int(inode)
    except ValueError:
        return None


def _probe(path: Path) -> int | None:
    # never through a symlink nor blocking on a FIFO planted there (/ready calls holder)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        try:
            return int(os.read(fd, 32).decode().strip() or -1)
        except ValueError:
            return -1
    finally:
        os.close(fd)
