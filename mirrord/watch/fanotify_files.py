"""File events (not directories, not renames) turned into FsEvents: the fanotify watcher's
handling of a file's close-after-write, modification without a close, attribute change,
delete and hard link (a mixin of FanotifyWatcher, which owns the state it uses).

- FAN_CLOSE_WRITE is a write; FAN_MODIFY with no close yet waits until the file is quiet
  for `quiet` seconds (fanotify_quiet), then is a write named by its directory's path at
  that time;
- a FAN_CREATE of a file with no close in the same event is a hard link (the link count
  says so: no close follows, so the write is reported now) or an O_TMPFILE linked in
  (linkat(2): its close names "#<inode>", never this name, so it is due once quiet);
- FAN_ATTRIB is an attribute change (mode, mtime, owner), reported as `attr`.
"""

from __future__ import annotations

import os
import stat as stat_mod

from mirrord.watch import fanotify_sys as S
from mirrord.watch.events import FsEvent


class FileEvents:
    """`_file_event(mask, rel, dfid, out)` and `_expire_modified(out, force=)` for
    FanotifyWatcher: append the FsEvents a file's event bits mean."""

    def _expire_modified(self, out: list[FsEvent], *, force: bool) -> None:
        if self.modified:
            due = [FsEvent("write", rel) for rel in self.quiet_files.due(
                self.clock(), self.quiet, force=force, dir_path=self.paths.rel,
                excluded=self.excluded)]
            self.late.note(due)     # named by a lookup made now: may precede its move
            out.extend(due)

    def _file_event(self, mask: int, rel: str, dfid: bytes | None, out: list[FsEvent]) -> None:
        if mask & S.FAN_CREATE and not mask & S.FAN_CLOSE_WRITE:
            self._hard_link(rel, dfid, out)
        if mask & S.FAN_CLOSE_WRITE:
            self.quiet_files.drop(rel)
            out.append(FsEvent("write", rel))
        elif mask & S.FAN_MODIFY:
            self.quiet_files.touch(rel, dfid, self.clock())
        elif mask & S.FAN_ATTRIB and not mask & S.FAN_CREATE:
            out.append(FsEvent("attr", rel))
        if mask & S.FAN_DELETE:
            self.quiet_files.drop(rel)
            out.append(FsEvent("delete", rel))

    def _hard_link(self, rel: str, dfid: bytes | None, out: list[FsEvent]) -> None:
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except OSError:
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return
        if st.st_nlink > 1:
            out.append(FsEvent("write", rel, size=st.st_size))  # a hard link: no close follows
        else:   # an O_TMPFILE linked in (linkat(2)): its close names "#<ino>", not this name
            self.quiet_files.touch(rel, dfid, self.clock(), keep=True)  # due once quiet
