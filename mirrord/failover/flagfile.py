"""The flag-file switch: [failover] mode = flagfile.

`flag` holds `message` while the application is read-only, like MediaWiki's
$wgReadOnlyFile, and is removed (or given back what stood there before) at
failback. Writes go to a temp file, fsynced, renamed over, and the directory
fsynced (fsutil.atomic_write), so the application reads the old file or the new
one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from mirrord import filekinds
from mirrord.failover.result import Check
from mirrord.failover.switch_record import (
    MAX_FLAG, PROBE_BYTES, Switch, b64, read_regular, unb64, writable_dir_check,
)
from mirrord.fsutil import atomic_write, fsync_dir


class FlagFileSwitch(Switch):
    mode = "flagfile"

    def __init__(self, flag: Path, message: str, state_dir: Path):
        super().__init__(state_dir)
        self.flag = Path(flag)
        self.content = message.encode() + b"\n"

    def current(self) -> bytes | None:
        """The flag's bytes, None when absent. OSError when something else stands there:
        a symlink (never followed), a FIFO or device, or more than MAX_FLAG bytes
        (switch_record.read_regular; the same rules as the switch record)."""
        try:
            return read_regular(self.flag, MAX_FLAG)
        except FileNotFoundError:
            return None

    def state(self) -> str:
        try:
            cur = self.current()
        except OSError as exc:
            return self._unreadable(exc)
        if cur is None:
            return "absent"
        return "present (ours)" if cur == self.content else f"present ({len(cur)} bytes, not ours)"

    def precheck(self, readonly: bool) -> list[Check]:
        parent = self.flag.parent
        checks = [Check("app.flag_dir", parent.is_dir(), str(parent), "a directory",
                        f"cannot create or remove {self.flag.name} in {parent}: no such directory")]
        try:
            self.current()
        except OSError as exc:
            what = self._unreadable(exc)
            advice = ("set [failover] flag to the file itself, or remove the symlink"
                      if what.startswith(filekinds.kind(stat.S_IFLNK)) else "remove it")
            checks.append(Check("app.flag", False, what,
                                f"a regular file of at most {MAX_FLAG} bytes, or absent",
                                f"{self.flag} is not a regular file this user can read "
                                f"({what}): refusing to replace it; {advice}"))
        return checks

    def _unreadable(self, exc: OSError) -> str:
        """The words for a flag that read_regular refused with `exc`: what stands there
        when it is no regular file (lstat, never followed: "a symlink, not a regular
        file", "a FIFO (named pipe), ..."), else "unreadable (why)" (too large,
        permission). "unreadable (Too many levels of symbolic links)" told an operator
        nothing of what stood there (a review)."""
        if exc.errno in (errno.ELOOP, errno.EINVAL, errno.ENXIO):
            try:
                kind = filekinds.kind_at(self.flag)
            except OSError:
                kind = None
            if kind is not None and kind != filekinds.kind(stat.S_IFREG):
                return f"{kind}, not a regular file"
        return f"unreadable ({exc.strerror})"

    def writable(self, readonly: bool = True) -> list[Check]:
        """Whether this process may make what the flip makes in the flag's directory
        (switch_record.probe_dir, a full file system): for a failover (`readonly`) a file
        of the message's size; for a failback the earlier flag it restores, or nothing
        when it only removes the flag (an empty file made and removed: a full file system
        kept the site read-only for want of room a removal does not need, even under
        --force, a trial). As SymlinkSwitch.writable, not part of precheck: under
        mirrord-health.service (ProtectSystem=strict) the flag's directory is read-only
        even for root, so /ready answered 503 on every request."""
        if readonly:
            size, what = len(self.content), f"create {self.flag.name}"
        else:
            before = self._restores()
            size = 0 if before is None else len(before)
            what = f"remove {self.flag.name}" if before is None else f"restore {self.flag.name}"
        return [writable_dir_check("app.flag_dir_writable", self.flag.parent, what, size)]

    def _restores(self) -> bytes | None:
        """What a failback would write back into the flag (the recorded earlier content),
        None when it would only remove the flag or leave it."""
        try:
            cur = self.current()
        except OSError:
            return None
        rec = self._record() if self._ours(cur) else None
        return unb64(rec.get("content")) if rec else None

    def record_size(self) -> int:
        """Switch.record_size: the earlier flag's content (at most MAX_FLAG bytes read) and
        the message, both base64 (4/3), and 1 KiB for the rest; PROBE_BYTES at least. A
        40 KB flag standing there made a 4 KiB probe pass on a state_dir that then could
        not take the record (a review, helper-159)."""
        try:
            cur = self.current() or b""
        except (OSError, ValueError):
            cur = b""
        return max(PROBE_BYTES, 1024 + 4 * (len(cur) + len(self.content)) // 3 + 4)

    def describe(self, readonly: bool) -> str:
        verb = "create" if readonly else "remove (or restore what was there before)"
        return f"{verb} {self.flag} (now: {self.state()})"

    def _record(self) -> dict | None:
        return self.record_for("flag", str(self.flag))

    def _ours(self, cur: bytes | None) -> bool:
        """The flag holds today's message, or the one a failover recorded writing
        (`message` may have changed in the INI since)."""
        rec = self._record()
        return cur is not None and (cur == self.content
                                    or bool(rec and rec.get("written") == b64(cur)))

    def is_readonly(self, rec: dict) -> bool:
        """The flag holds today's message, or what the record `rec` (switched.state; {}
        when unreadable) says a failover wrote. OSError when it cannot be read."""
        cur = self.current()
        return cur is not None and (cur == self.content or (
            rec.get("flag") == str(self.flag) and rec.get("written") == b64(cur)))

    def _owner(self) -> dict:
        try:
            st = os.lstat(self.flag)
        except FileNotFoundError:
            return {}
        return {"perm": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}

    def apply(self, readonly: bool) -> tuple[bool, str]:
        cur = self.current()
        if readonly:
            if cur == self.content:
                return False, f"{self.flag} already holds the read-only message"
            rec = self._record() if self._ours(cur) else None   # keep the first original
            self.save_record({**(rec or {"mode": self.mode, "flag": str(self.flag),
                                         "content": b64(cur), **self._owner()}),
                              "written": b64(self.content)})
            atomic_write(self.flag, self.content)
            return True, f"wrote {self.flag}"
        if cur is None:
            self.drop_record()
            return False, f"{self.flag} is already absent"
        if not self._ours(cur):
            self.drop_record()
            return False, f"{self.flag} was not written by failover; left alone"
        rec = self._record()
        before = unb64(rec.get("content")) if rec else None
        if before is not None:   # with its permissions and owner: it may be 0600 www-data
            atomic_write(self.flag, before, mode=rec.get("perm", 0o644))
            with contextlib.suppress(KeyError, PermissionError):   # lchown: never through
                os.chown(self.flag, rec["uid"], rec["gid"], follow_symlinks=False)   # a link
            self.drop_record()
            return True, f"restored {self.flag} as it was before the failover ({len(before)} bytes)"
        self.flag.unlink()
        fsync_dir(str(self.flag.parent))
        self.drop_record()
        return True, f"removed {self.flag}"
