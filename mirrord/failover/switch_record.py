"""The record of what stood where the application's configuration is flipped.

Before a failover changes the link or the flag file, what was there (the link's
exact target bytes, an earlier flag file's content, its mode and owner) is
written to `failover-appconfig.json` in state_dir, atomically and 0600, so a
failback restores it exactly. Both switches (appconfig.SymlinkSwitch,
flagfile.FlagFileSwitch) keep their record through `Switch`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

from mirrord.failover.result import Check
from mirrord.fsutil import atomic_write, fsync_dir

RECORD = "failover-appconfig.json"


class Switch:
    """Common part: the record of what was there before, kept in state_dir."""

    def __init__(self, state_dir: Path):
        self.record_path = Path(state_dir) / RECORD
        # the command flipping (set by procedure.Procedure before its steps run): kept in
        # the record, so /ready can say which switch this host made (switched.state)
        self.action = ""

    def load_record(self) -> dict | None:
        """The record, or None when there is none or it is damaged (not JSON, or a field of
        the wrong type: a base64 field that does not decode, a mode that is no permission
        bits). A damaged record is treated as none, with a warning naming the file: the
        switch then goes back to `readwrite` or leaves a flag it did not write alone.
        Before, a damaged field raised a traceback from failback (a breaker)."""
        try:
            data = read_trusted(self.record_path)
            doc = json.loads(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            return _damaged(self.record_path, str(exc) or type(exc).__name__)
        problem = _problem(doc)
        return doc if problem is None else _damaged(self.record_path, problem)

    def record_for(self, key: str, value: str) -> dict | None:
        """The record when it is this mode's, for this link or flag (`key` == `value`)."""
        rec = self.load_record()
        return rec if rec and rec.get("mode") == getattr(self, "mode", None) \
            and rec.get(key) == value else None

    def save_record(self, doc: dict) -> None:
        """Write the record (atomic, fsynced, 0600). OSError naming the record file and
        [mirrord] state_dir when it cannot be written: a full file system's bare
        "[Errno 28] No space left on device" named neither (a trial)."""
        doc = {**doc, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if self.action:
            doc["action"] = self.action
        try:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.record_path, json.dumps(doc).encode(), mode=0o600)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write the switch record {self.record_path}: "
                          f"{exc.strerror or exc}; [mirrord] state_dir must have room and be "
                          "writable by the user running this command") from exc

    def state_dir_check(self, readonly: bool = True) -> Check:
        """Whether state_dir takes the switch record now: for a flip to read-only
        (`readonly`), a file of the record's size (record_size) made, filled and fsynced
        (probe_dir); for a failback, which only removes the record, an empty file made and
        removed (a full file system passes: refusing it kept a site read-only for want of
        room it did not need, a review). A changing run checks it with `writable`, before
        its pre hook (exit 3, nothing changed). Before, only the lock file (which exists
        already) was opened, and a full (ENOSPC) or immutable state_dir failed the flip
        after the pre hook ran (exit 1, INCOMPLETE)."""
        directory = self.record_path.parent
        problem = dir_problem(directory, self.record_size() if readonly else 0)
        role = "written there before the flip" if readonly else "removed there after the flip"
        return Check("state_dir.writable", not problem, str(directory), "a file can be written",
                     problem and f"cannot write a file in {directory} ({problem}): [mirrord] "
                     "state_dir must have room and be writable by the user running this "
                     f"command (the switch record {RECORD} is {role})")

    def record_size(self) -> int:
        """Bytes the switch record about to be written may take, at least PROBE_BYTES: a
        link's record is small; a flag file's holds the flag's earlier content and the new
        one in base64 (FlagFileSwitch overrides this)."""
        return PROBE_BYTES

    def drop_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()
            fsync_dir(str(self.record_path.parent))


PROBE_BYTES = 4096   # one block: a link's switch record, a link, a short flag file


def probe_dir(directory: Path | str, size: int = PROBE_BYTES) -> None:
    """Create a dot-named temp file in `directory` (tempfile.mkstemp, 0600), write `size`
    bytes to it, fsync it, then remove it. Raises OSError when any step fails (a full
    file system or quota, ENOSPC/EDQUOT, which os.access cannot see; an immutable
    directory, EPERM; read-only, EROFS; no permission). A write that takes nothing is
    ENOSPC. The file is removed whatever happened."""
    fd, tmp = tempfile.mkstemp(prefix=".mirrord-probe-", dir=directory)
    try:
        data = memoryview(bytes(size))
        while data:
            n = os.write(fd, data)
            if n <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = data[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def dir_problem(directory: Path | str, size: int = PROBE_BYTES) -> str:
    """"" when probe_dir(`directory`, `size`) succeeds, else its error's strerror (never
    raises)."""
    try:
        probe_dir(directory, size)
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def probe_link(directory: Path | str, target: bytes) -> None:
    """Make a symlink to `target` under a dot-named temp name in `directory`, then remove
    it: what a link switch's flip does (SymlinkSwitch._swap), with no rename. Raises
    OSError as symlink(2) does (ENOSPC, EDQUOT, EPERM for an immutable directory, EROFS).
    A file filled with a block was no such probe: a full file system still takes a
    short symlink (ext4 keeps one under 60 bytes in the inode), and the probe refused a
    flip that would have worked, in both directions and under --force (a trial)."""
    tmp = os.path.join(os.fsencode(directory),
                       b".mirrord-probe-%d-%s" % (os.getpid(), os.urandom(4).hex().encode()))
    os.symlink(target, tmp)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def writable_dir_check(name: str, parent: Path, what: str, size: int = PROBE_BYTES,
                       link: bytes | None = None) -> Check:
    """The Check `name` of whether this process may `what` (the action, in words) in the
    directory `parent`: os.access first (not this user's to write, a read-only mount),
    then a probe (a full file system, a quota, an immutable directory: os.access cannot
    see them) of what the flip makes there: a symlink to `link` (probe_link), else a
    file of `size` bytes (probe_dir; 0: made and removed, as a removal needs no room).
    The switches' `writable` (the application config's directory)."""
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(name, False, str(parent), "writable by this user",
                     f"cannot {what} in {parent} (not writable by uid {os.geteuid()}, or a "
                     "read-only file system): run as the user that may change the "
                     "application config")
    if link is not None:
        try:
            probe_link(parent, link)
            problem = ""
        except OSError as exc:
            problem = exc.strerror or str(exc)
    else:
        problem = dir_problem(parent, size)
    return Check(name, not problem, str(parent), "writable by this user",
                 problem and f"cannot {what} in {parent} ({problem})")


MAX_RECORD = 1 << 20   # bytes: a record holds a link target or a small flag file
MAX_FLAG = MAX_RECORD // 2   # a flag file's content, base64 in the record, fits in one


def read_trusted(path: Path) -> bytes:
    """The bytes of the record at `path`, read only when it is a regular file (a FIFO
    planted there blocked failback for good: O_NONBLOCK, then S_ISREG), never through a
    symlink (O_NOFOLLOW), owned by root or by this user and writable by nobody else: the
    state_dir's owner (the health service's user) could plant a record that root's
    failback then restored as a setuid-root file (a breaker). OSError (FileNotFoundError
    when absent) or ValueError saying what is wrong."""
    try:
        return read_regular(path, MAX_RECORD, trusted=True)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EFBIG, errno.EPERM):
            raise ValueError(exc.strerror) from None
        raise


def read_regular(path: Path, limit: int, *, trusted: bool = False) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, for every file
    the failover side reads (the switch record, the flag file): opened with O_NOFOLLOW
    (never through a symlink: ELOOP) and O_NONBLOCK (a FIFO never blocks the open, so a
    failover never hangs holding failover.lock nor /ready wedges: a breaker), then refused
    unless S_ISREG (EINVAL: a FIFO, a device such as /dev/zero, a socket, a directory)
    and no larger than `limit` (EFBIG: read as a whole, it once ended in MemoryError).
    `trusted`: also owned by root or this user and writable by nobody else (EPERM).
    OSError (FileNotFoundError when absent) with a strerror saying which."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if trusted and (st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022):
            raise OSError(errno.EPERM, f"owned by uid {st.st_uid} or writable by others: "
                          "not written by failover")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"{st.st_size} bytes, more than the {limit} read")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:   # grew since the fstat
            raise OSError(errno.EFBIG, f"more than the {limit} bytes read")
        return data
    finally:
        os.close(fd)


_TEXT = ("mode", "link", "flag", "recorded_at", "action")
_BYTES = ("target", "flipped_to", "content", "written")   # b64 text, or null
_IDS = ("uid", "gid")


def _problem(doc: object) -> str | None:
    """What is wrong with a record's fields (None: nothing)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key in _TEXT:
        if key in doc and not isinstance(doc[key], str):
            return f"{key} is not a string"
    for key in _BYTES:
        if doc.get(key) is not None:
            try:
                base64.b64decode(doc[key], validate=True)
            except (TypeError, ValueError) as exc:   # binascii.Error is a ValueError
                return f"{key} is not base64 text ({exc})"
    perm = doc.get("perm", 0)
    if not isinstance(perm, int) or isinstance(perm, bool) or not 0 <= perm <= 0o777:
        return "perm is not permission bits (setuid, setgid and sticky are never restored)"
    for key in _IDS:
        value = doc.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32 - 1:
            return f"{key} is not a user or group id"
    return None


_WARNED: set[tuple[str, str]] = set()   # once per process: /ready measures every interval


def _damaged(path: Path, why: str) -> None:
    if (str(path), why) not in _WARNED:
        _WARNED.add((str(path), why))
        print(f"mirrord: warning: {path} is damaged ({why}); taken as no record: the switch "
              f"goes back to readwrite, or leaves a flag file it did not write alone",
              file=sys.stderr)
    return None


def b64(data: bytes | None) -> str | None:
    """Bytes as base64 text for the JSON record; None stays None."""
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    """The bytes `b64` wrote; None stays None. binascii.Error on a damaged record."""
    return None if text is None else base64.b64decode(text)
