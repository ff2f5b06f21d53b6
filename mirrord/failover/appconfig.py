"""Which configuration the application uses: read-only mirror or read-write.

Two ways, chosen by [failover] mode:
- symlink: `link` points at `readonly` (failover) or back at what it pointed
  at before (failback). The new link is created beside the old under a temp
  name and renamed over it, so a reader always sees one link or the other.
- flagfile: `flag` holds `message` (failover) and is removed (failback), like
  MediaWiki's $wgReadOnlyFile; written to a temp file, fsynced, renamed, and
  the directory fsynced (flagfile.FlagFileSwitch).

What stood there before the failover (the link's exact target bytes, or an
earlier flag file's content) is recorded in state_dir before anything changes,
so failback restores it exactly (switch_record.Switch). Applying the same
direction twice changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shlex
from pathlib import Path

from mirrord import filekinds
from mirrord.config import FailoverConfig
from mirrord.config.switchpaths import reaches, same_file
from mirrord.failover.flagfile import FlagFileSwitch
from mirrord.failover.result import Check
from mirrord.failover.switch_record import RECORD, Switch, b64, unb64, writable_dir_check
from mirrord.fsutil import fsync_dir

__all__ = ["RECORD", "FlagFileSwitch", "SymlinkSwitch", "from_config"]


# why readlink of `link` failed, beside the OS's words (app.link's message)
_CANNOT_LOOK = {errno.EACCES: ": this user may not look into its directory",
                errno.ENOTDIR: ": a component of its directory is not a directory",
                errno.ELOOP: ": its directory is reached through a loop of symlinks"}


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
        """Whether the link's target bytes `target` name `path` (as written, or once both
        are resolved). Never for a `path` that is the link itself or leads to it: the link
        then points wherever it did, not at a read-only config."""
        if reaches(path, self.link):
            return False
        full = os.path.normpath(os.path.join(os.fsencode(self.link.parent), target))
        if full == os.path.normpath(os.fsencode(path)):
            return True
        return os.path.realpath(full) == os.path.realpath(os.fsencode(path))

    def state(self) -> str:
        try:
            cur = self.current()
        except OSError as exc:
            return self._unreadable(exc)
        return "absent" if cur is None else os.fsdecode(cur)

    def _standing(self) -> str:
        """What stands at `link` once readlink said it is no symlink (EINVAL), in words."""
        try:
            return filekinds.kind_at(self.link) or "nothing now"
        except OSError:
            return filekinds.UNKNOWN

    def _unreadable(self, exc: OSError) -> str:
        """state()'s words when readlink failed with `exc`: what stands there instead of a
        symlink ("a regular file, not a symlink"), or why it cannot be read."""
        if exc.errno == errno.EINVAL:
            return f"{self._standing()}, not a symlink"
        return f"unreadable ({exc.strerror})"

    # ------------------------------------------------------------ checks
    def precheck(self, readonly: bool) -> list[Check]:
        name = "app.link"
        try:
            cur = self.current()
        except OSError as exc:
            return [Check(name, False, self._unreadable(exc), "a symlink or absent",
                          self._not_a_link(exc))]
        checks = [Check(name, self.link.parent.is_dir(), self.state(), "a symlink or absent",
                        f"the directory {self.link.parent} does not exist")]
        goal = self.readonly if readonly else self._failback_target(cur)
        text = os.fsdecode(goal)
        full = self.link.parent / text
        if isinstance(goal, bytes):   # the recorded original, restored exactly as it was
            checks.append(Check("app.target", full.exists(), text, "exists",
                                f"{full} does not exist: the link would dangle"))
        else:
            checks.append(self._config_check(goal, text, full))
        return checks

    def _not_a_link(self, exc: OSError) -> str:
        """app.link's message when readlink of `link` failed with `exc`: what stands there
        (a regular file, a directory: readlink says EINVAL, "Invalid argument") or why it
        cannot be looked at, and what to do. Nothing is replaced either way: what stands
        there may be the application's only config."""
        if exc.errno != errno.EINVAL:
            why = _CANNOT_LOOK.get(exc.errno, "")
            return (f"cannot read {self.link} ({exc.strerror}{why}): refusing to replace "
                    "what may stand there; check [failover] link and its directory")
        what = self._standing()
        link, readwrite = shlex.quote(str(self.link)), shlex.quote(str(self.readwrite))
        keep = "" if self.readwrite.exists() else (
            f" (readwrite does not exist: if this is the read-write config, move it there: "
            f"mv {link} {readwrite})")
        return (f"{self.link} is {what}, not a symlink: mode symlink only ever replaces a "
                f"symlink there, so nothing is changed. Move it aside{keep} and make "
                f"{self.link} a symlink to readwrite (ln -s {readwrite} {link}), "
                "or, if the application reads a flag file (MediaWiki's $wgReadOnlyFile), set "
                "[failover] mode = flagfile")

    def _config_check(self, goal: Path, text: str, full: Path) -> Check:
        """app.target for `readonly` or `readwrite` (as configured): a regular file or a
        directory, or a symlink to one (a FIFO once passed as "exists"), that is neither the
        link itself (nor reached through it) nor, for readonly, the readwrite file: the
        flip would then change nothing and say so with exit 0, the site left read-write."""
        limit = "a regular file or directory, not the link, not the other config"
        if reaches(goal, self.link):
            why = f"{goal} is {self.link} itself, or a symlink to it: the link would point at itself"
        elif not full.exists():
            why = f"{full} does not exist: the link would dangle"
        elif not (full.is_file() or full.is_dir()):
            # a directory is an app's config too (`conf -> conf.ro/`: a review); a FIFO,
            # socket or device is none (a breaker: the link was pointed at a FIFO)
            why = f"{full} is neither a regular file nor a directory (a FIFO, socket or " \
                  f"device): not an app config"
        elif goal == self.readonly and same_file(self.readonly, self.readwrite):
            why = (f"{goal} is the same file as readwrite {self.readwrite}: a failover would "
                   "leave the site read-write")
        else:
            return Check("app.target", True, text, limit)
        return Check("app.target", False, text, limit, f"{why}; fix [failover] in the config")

    def _record(self) -> dict | None:
        return self.record_for("link", str(self.link))

    def is_readonly(self, rec: dict) -> bool:
        """The link points at the read-only config now: today's `readonly`, or what the
        record `rec` (switched.state; {} when unreadable) says a failover pointed it at.
        OSError when something else stands there."""
        cur = self.current()
        if cur is None:
            return False
        return self.points_at(cur, self.readonly) or (
            rec.get("link") == str(self.link) and rec.get("flipped_to") == b64(cur))

    def _ours(self, cur: bytes | None) -> bool:
        """The link points at a read-only config: today's `readonly`, or the one a
        failover recorded pointing it at (`readonly` may have changed in the INI since)."""
        if cur is None:
            return False
        rec = self._record()
        return self.points_at(cur, self.readonly) or bool(rec and rec.get("flipped_to")
                                                          == b64(cur))

    def _failback_target(self, cur: bytes | None) -> bytes | Path:
        rec = self._record()
        if rec and rec.get("target") is not None and self._ours(cur):
            return unb64(rec["target"])
        return self.readwrite

    def writable(self, readonly: bool = True) -> list[Check]:
        """Whether this process may make the new link beside `link` (for a failover,
        `readonly`, to the read-only config; for a failback, to what it points back at)
        and rename it over: a symlink made and removed there (switch_record.probe_link;
        a full file system, an immutable directory). A changing run checks it before its
        pre hook (exit 3, nothing changed) instead of failing at the flip, after the hook
        ran (exit 1). Not part of precheck: /ready runs as a user that only reads
        (mirrord-health.service), never the one that flips."""
        try:
            target = self.readonly if readonly else self._failback_target(self.current())
        except OSError:
            target = self.readonly if readonly else self.readwrite
        raw = target if isinstance(target, bytes) else os.fsencode(target)
        return [writable_dir_check("app.link_dir", self.link.parent, "create the new link",
                                   link=raw)]

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
                                     "target": b64(cur)}),
                          "flipped_to": b64(os.fsencode(self.readonly))})
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


def from_config(fo: FailoverConfig, state_dir: Path) -> SymlinkSwitch | FlagFileSwitch:
    if fo.mode == "flagfile":
        assert fo.flag is not None
        return FlagFileSwitch(fo.flag, fo.message, state_dir)
    assert fo.link is not None and fo.readonly is not None and fo.readwrite is not None
    return SymlinkSwitch(fo.link, fo.readonly, fo.readwrite, state_dir)
