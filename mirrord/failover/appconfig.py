"""Which configuration the application uses: read-only mirror or read-write.

Two ways, chosen by [failover] mode:
- symlink: `link` points at `readonly` (failover) or back at what it pointed
  at before (failback). The new link is created beside the old under a temp
  name and renamed over it, so a reader always sees one link or the other.
- flagfile: `flag` holds `message` (failover) and is removed (failback), like
  MediaWiki's $wgReadOnlyFile; written to a temp file, fsynced, renamed, and
  the directory fsynced.

What stood there before the failover (the link's exact target bytes, or an
earlier flag file's content) is recorded in state_dir before anything changes,
so failback restores it exactly. Applying the same direction twice changes
nothing the second time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import time
from pathlib import Path

from mirrord.config import FailoverConfig
from mirrord.failover.result import Check
from mirrord.fsutil import atomic_write, fsync_dir

RECORD = "failover-appconfig.json"


class Switch:
    """Common part: the record of what was there before, kept in state_dir."""

    def __init__(self, state_dir: Path):
        self.record_path = Path(state_dir) / RECORD

    def load_record(self) -> dict | None:
        try:
            doc = json.loads(self.record_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def record_for(self, key: str, value: str) -> dict | None:
        """The record when it is this mode's, for this link or flag (`key` == `value`)."""
        rec = self.load_record()
        return rec if rec and rec.get("mode") == getattr(self, "mode", None) \
            and rec.get(key) == value else None

    def save_record(self, doc: dict) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {**doc, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(self.record_path, json.dumps(doc).encode(), mode=0o600)

    def drop_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()
            fsync_dir(str(self.record_path.parent))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class SymlinkSwitch(Switch):
    mode = "symlink"

    def __init__(self, link: Path, readonly: Path, readwrite: Path, state_dir: Path):
        super().__init__(state_dir)
        self.link, self.readonly, self.readwrite = Path(link), Path(readonly), Path(readwrite)

    # ------------------------------------------------------------ reading
    def current(self) -> bytes | None:
        """The link's target bytes, None when absent; OSError if something else stands there."""
        try:
            return os.readlink(os.fsencode(self.link))
        except FileNotFoundError:
            return None

    def points_at(self, target: bytes, path: Path) -> bool:
        full = os.path.normpath(os.path.join(os.fsencode(self.link.parent), target))
        if full == os.path.normpath(os.fsencode(path)):
            return True
        return os.path.realpath(full) == os.path.realpath(os.fsencode(path))

    def state(self) -> str:
        try:
            cur = self.current()
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        return "absent" if cur is None else os.fsdecode(cur)

    # ------------------------------------------------------------ checks
    def precheck(self, readonly: bool) -> list[Check]:
        name = "app.link"
        try:
            cur = self.current()
        except OSError as exc:
            return [Check(name, False, f"not a symlink ({exc.strerror})", "a symlink or absent",
                          f"{self.link} exists but is not a symlink; refusing to replace it")]
        checks = [Check(name, self.link.parent.is_dir(), self.state(), "a symlink or absent",
                        f"the directory {self.link.parent} does not exist")]
        goal = self.readonly if readonly else self._failback_target(cur)
        text = os.fsdecode(goal)
        full = self.link.parent / text
        checks.append(Check("app.target", full.exists(), text, "exists",
                            f"{full} does not exist: the link would dangle"))
        return checks

    def _record(self) -> dict | None:
        return self.record_for("link", str(self.link))

    def _ours(self, cur: bytes | None) -> bool:
        """The link points at a read-only config: today's `readonly`, or the one a
        failover recorded pointing it at (`readonly` may have changed in the INI since)."""
        if cur is None:
            return False
        rec = self._record()
        return self.points_at(cur, self.readonly) or bool(rec and rec.get("flipped_to")
                                                          == _b64(cur))

    def _failback_target(self, cur: bytes | None) -> bytes | Path:
        rec = self._record()
        if rec and rec.get("target") is not None and self._ours(cur):
            return _unb64(rec["target"])
        return self.readwrite

    def writable(self) -> list[Check]:
        """Whether this process may make the new link beside `link` and rename it over: a
        changing run checks it before its pre hook (exit 3, nothing changed) instead of
        failing at the flip, after the hook ran (exit 1). Not part of precheck: /ready runs
        as a user that only reads (mirrord-health.service), never the one that flips."""
        parent = self.link.parent
        ok = os.access(parent, os.W_OK | os.X_OK)
        return [Check("app.link_dir", ok, str(parent), "writable by this user",
                      f"cannot create the new link in {parent} (not writable by uid "
                      f"{os.geteuid()}, or a read-only file system): run as the user that may "
                      "change the application config")]

    # ------------------------------------------------------------ changing
    def describe(self, readonly: bool) -> str:
        if readonly:
            return f"point {self.link} at {self.readonly} (now: {self.state()})"
        try:
            cur = self.current()
        except OSError:
            return f"point {self.link} back at {self.readwrite} (now: {self.state()})"
        if cur is not None and not self._ours(cur):
            return f"leave {self.link} alone: it is not read-only (now: {self.state()})"
        goal = self._failback_target(cur)
        how = "as before the failover" if isinstance(goal, bytes) else "the readwrite config"
        return f"point {self.link} at {os.fsdecode(goal)} ({how}; now: {self.state()})"

    def apply(self, readonly: bool) -> tuple[bool, str]:
        """Flip; returns (changed, what happened). Raises OSError."""
        return self._to_readonly() if readonly else self._to_readwrite()

    def _to_readonly(self) -> tuple[bool, str]:
        cur = self.current()
        if cur is not None and self.points_at(cur, self.readonly):
            return False, f"{self.link} already points at {os.fsdecode(cur)}"
        rec = self._record() if self._ours(cur) else None   # keep the first original
        self.save_record({**(rec or {"mode": self.mode, "link": str(self.link),
                                     "target": _b64(cur)}),
                          "flipped_to": _b64(os.fsencode(self.readonly))})
        self._swap(os.fsencode(self.readonly))
        was = "absent" if cur is None else os.fsdecode(cur)
        return True, f"{self.link} -> {self.readonly} (was {was}; recorded in {self.record_path})"

    def _to_readwrite(self) -> tuple[bool, str]:
        cur = self.current()
        if cur is not None and not self._ours(cur):
            self.drop_record()
            return False, (f"{self.link} already points at {os.fsdecode(cur)}, "
                           "not the read-only config")
        target = self._failback_target(cur)
        raw = target if isinstance(target, bytes) else os.fsencode(target)
        self._swap(raw)
        self.drop_record()
        return True, f"{self.link} -> {os.fsdecode(raw)} (was {self.state_text(cur)})"

    @staticmethod
    def state_text(cur: bytes | None) -> str:
        return "absent" if cur is None else os.fsdecode(cur)

    def _swap(self, target: bytes) -> None:
        """Create the new link beside the old one and rename it over: never remove-then-create."""
        parent = os.fsencode(self.link.parent)
        tmp = os.path.join(parent, b".%s.mirrord-%d-%s" % (os.fsencode(self.link.name), os.getpid(),
                                                           secrets.token_hex(4).encode()))
        os.symlink(target, tmp)
        try:
            os.replace(tmp, os.fsencode(self.link))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(parent)


class FlagFileSwitch(Switch):
    mode = "flagfile"

    def __init__(self, flag: Path, message: str, state_dir: Path):
        super().__init__(state_dir)
        self.flag = Path(flag)
        self.content = message.encode() + b"\n"

    def current(self) -> bytes | None:
        try:
            return self.flag.read_bytes()
        except FileNotFoundError:
            return None

    def state(self) -> str:
        try:
            cur = self.current()
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        if cur is None:
            return "absent"
        return "present (ours)" if cur == self.content else f"present ({len(cur)} bytes, not ours)"

    def precheck(self, readonly: bool) -> list[Check]:
        parent = self.flag.parent
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        checks = [Check("app.flag_dir", writable, str(parent), "a writable directory",
                        f"cannot create or remove {self.flag.name} in {parent}")]
        try:
            self.current()
        except OSError as exc:
            checks.append(Check("app.flag", False, f"unreadable ({exc.strerror})",
                                "a file or absent", f"{self.flag} cannot be read"))
        return checks

    def writable(self) -> list[Check]:
        """Nothing beyond precheck's app.flag_dir, which already asks for write access."""
        return []

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
                                    or bool(rec and rec.get("written") == _b64(cur)))

    def _owner(self) -> dict:
        try:
            st = os.stat(self.flag)
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
                                         "content": _b64(cur), **self._owner()}),
                              "written": _b64(self.content)})
            atomic_write(self.flag, self.content)
            return True, f"wrote {self.flag}"
        if cur is None:
            self.drop_record()
            return False, f"{self.flag} is already absent"
        if not self._ours(cur):
            self.drop_record()
            return False, f"{self.flag} was not written by failover; left alone"
        rec = self._record()
        before = _unb64(rec.get("content")) if rec else None
        if before is not None:   # with its permissions and owner: it may be 0600 www-data
            atomic_write(self.flag, before, mode=rec.get("perm", 0o644))
            with contextlib.suppress(KeyError, PermissionError):
                os.chown(self.flag, rec["uid"], rec["gid"])
            self.drop_record()
            return True, f"restored {self.flag} as it was before the failover ({len(before)} bytes)"
        self.flag.unlink()
        fsync_dir(str(self.flag.parent))
        self.drop_record()
        return True, f"removed {self.flag}"


def from_config(fo: FailoverConfig, state_dir: Path) -> SymlinkSwitch | FlagFileSwitch:
    if fo.mode == "flagfile":
        assert fo.flag is not None
        return FlagFileSwitch(fo.flag, fo.message, state_dir)
    assert fo.link is not None and fo.readonly is not None and fo.readwrite is not None
    return SymlinkSwitch(fo.link, fo.readonly, fo.readwrite, state_dir)
