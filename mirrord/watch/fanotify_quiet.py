"""Files modified without a close, for the fanotify watcher: due as writes once quiet.

A FAN_MODIFY with no FAN_CLOSE_WRITE (truncate(2) by path, a writer that keeps
the file open, an O_TMPFILE linked in) is reported as a write once the file has
been quiet for `quiet` seconds. By then its directory may have been renamed: a
write reported under the old path ships nothing (the shipper finds no file
there and deletes the name) while the move carries the old bytes to the new one
(the churn test: "content and mtime differ" below a renamed directory). So each
entry keeps its directory's file handle, which follows the directory through
renames (inotify's watcher keys by watch node for the same reason), and the
write is reported under that directory's path when it falls due.
"""

from __future__ import annotations

import os
from typing import Callable

from mirrord.exclude import excluded_entry
from mirrord.watch.fanotify_scan import join


class QuietFiles:
    """`times`: rel path -> clock() (monotonic s) of its last modification (the path as
    read, kept up to date on renames); `dirs`: rel path -> its directory's handle."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.dirs: dict[str, bytes | None] = {}

    def touch(self, rel: str, dfid: bytes | None, now: float, *, keep: bool = False) -> None:
        """Modified at `now` (keep: only when not pending already)."""
        if keep and rel in self.times:
            return
        self.times[rel] = now
        self.dirs[rel] = dfid

    def drop(self, rel: str) -> None:
        """Closed after writing, deleted or gone: no longer pending."""
        self.times.pop(rel, None)
        self.dirs.pop(rel, None)

    def moved(self, src: str, dst: str, dst_dfid: bytes | None, *, is_dir: bool) -> None:
        """`src` renamed to `dst`: a file's entry follows it into its new directory, a
        directory's entries below it follow it (their handles stay as they are)."""
        if not is_dir:
            if src in self.times:
                self.times[dst] = self.times.pop(src)
                self.dirs.pop(src, None)
                self.dirs[dst] = dst_dfid
            return
        prefix = src + "/"
        for rel in [r for r in self.times if r.startswith(prefix)]:
            new = dst + rel[len(src):]
            self.times[new] = self.times.pop(rel)
            self.dirs[new] = self.dirs.pop(rel, None)

    def due(self, now: float, quiet: float, *, force: bool,
            dir_path: Callable[[bytes], str | None],
            excluded: Callable[[str], bool]) -> list[str]:
        """Paths due as writes (quiet for `quiet` s, or all with `force`), each named by its
        directory's path now (`dir_path(handle)`: rel path, None when gone or outside);
        entries whose directory is gone or now excluded are dropped."""
        out: list[str] = []
        for rel, t in list(self.times.items()):
            if not (force or now - t >= quiet):
                continue
            dfid = self.dirs.get(rel)
            self.drop(rel)
            parent = dir_path(dfid) if dfid is not None else os.path.dirname(rel)
            if parent is None:
                continue    # the directory is gone or left the tree: its events say so
            path = join(parent, rel.rsplit("/", 1)[-1])
            if not excluded_entry(excluded, path, False):
                out.append(path)
        return out
