"""FAN_RENAME events turned into moves, creates and deletes: the fanotify watcher's
rename handling (a mixin of FanotifyWatcher, which owns the state it uses).

A handle is resolved when the event is READ, not when it happened (fanotify(7):
the record names the directory, not its path at the time), so each end is
resolved to where its directory is now:
- both ends in the tree: a move; the same two names swapped back at once, each by its
  own object, are a renameat2(RENAME_EXCHANGE), and both names are shipped as they
  stand (the same object renamed back is a move);
- only the new end: a create (a directory moved in is scanned, after the kernel
  ignore marks below the root are taken off: fanotify_ignore);
- only the old end: that name is shipped as it stands on disk, never deleted blindly;
- a directory rename touching the tree clears the path cache; events resolved below
  its new name before the rename was read are taken back and reported after it
  (fanotify_late).
"""

from __future__ import annotations

import os

from mirrord.exclude import excluded_entry
from mirrord.watch import fanotify_sys as S
from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_scan import as_it_stands, join


class RenameEvents:
    """`_renamed(ev, out)` for FanotifyWatcher: appends the FsEvents a FAN_RENAME means."""

    def _renamed(self, ev: S.RawEvent, out: list[FsEvent]) -> None:
        if self.paths.is_root_or_above(ev.fid):
            self.identity.report_lost("moved", out)
            return
        lost_before = self.late.lost_departure is not None
        is_dir = bool(ev.mask & S.FAN_ONDIR)
        src = self._end(ev.old_dfid, ev.old_name, is_dir)
        dst = self._end(ev.dfid, ev.name, is_dir)
        # events queued before this rename but resolved after it got paths below dst
        # already (today's): they are reported after it (fanotify_late), and what was
        # shipped below dst is compared again if some were returned before it
        late = is_dir and dst is not None and self.paths.resolved_at_or_below(dst)
        resolved_below = late and src is not None
        if late:    # not yet returned: taken back, reported after the move (after_move)
            resolved_below = self.late.take_back(dst, out) and resolved_below
        src_gone, dst_gone = self.paths.vanished(ev.old_dfid), self.paths.vanished(ev.dfid)
        if src is None and src_gone:
            self.late.lost_departure = self.late.gen   # left a directory gone by now: below
        if is_dir and (src is not None or dst is not None):
            self.paths.clear()      # every cached path below the renamed directory changed
            if dst is not None and ev.fid is not None:
                self.paths.remember(ev.fid, dst)
        elif is_dir and (src_gone or dst_gone or ev.fid in self.paths.dirs
                         and self.paths.dirs[ev.fid] is not None):  # type: ignore[index]
            self.paths.forget_inside()  # an end gone by now may have been in the tree
        if src is None and dst is None:
            if is_dir and self.ignores is not None:     # into an excluded part of the tree?
                self.ignores.moved_below(ev.dfid)
            self.dropped += 1
            return
        self._moved(src, dst, is_dir, out, ev.dfid, ev.fid)
        if late:
            out.extend(self.late.after_move(dst))   # type: ignore[arg-type]
        if resolved_below:      # what was shipped below dst is compared again
            out.append(FsEvent("rescan", dst, is_dir=True))
        elif is_dir and dst is not None and lost_before:
            # maybe a rename over a directory emptied just before: the deletes and renames
            # that emptied it named a directory gone by the time they were read (no path),
            # and FAN_RENAME says nothing of the victim; its FAN_ATTRIB does (renamed_in)
            out.extend(self.late.renamed_in(dst))

    def _moved(self, src: str | None, dst: str | None, is_dir: bool,
               out: list[FsEvent], dst_dfid: bytes | None = None,
               fid: bytes | None = None) -> None:
        if src is not None and dst is not None:
            last, self._last_move = self._last_move, (src, dst, is_dir, fid)
            if last is not None and last[:2] == (dst, src) and not _same_object(last[3], fid):
                # renameat2(RENAME_EXCHANGE): two FAN_RENAMEs, a->b then b->a, each of its own
                # object (vfs_rename's two fsnotify_move calls: the source, then the target)
                self._last_move = None
                out.extend(self._exchanged(dst, last[2], src, is_dir))
                return
            self.late.drop_replaced(dst, is_dir, out)
            self.quiet_files.moved(src, dst, dst_dfid, is_dir=is_dir)
            out.append(FsEvent("move", dst, src=src, is_dir=is_dir))
        elif dst is not None:       # moved in from outside the root: a create
            if is_dir:
                if self.ignores is not None:    # what the kernel dropped below it since:
                    self.ignores.entered()      # its marks off, then the scan sees it
                self._new_dir(dst, None, out)
            else:
                out.append(FsEvent("write", dst))
        else:   # moved out of the root, or into a directory gone by now: src is shipped
            # as it stands, never deleted blindly: paths are resolved when read, not when
            # renamed, so something may already stand at src again (the first half of a
            # renameat2 exchange whose other end has left the tree since)
            self.quiet_files.drop(src)  # type: ignore[arg-type]
            now = as_it_stands(self.root, src, is_dir)  # type: ignore[arg-type]
            if is_dir and now.kind == "write":
                # a directory left and a file stands at its name already (the first half of
                # an exchange whose other name is excluded, `temp/`): its tree goes first. A
                # put alone left the tree's objects beside the file on S3 (a breaker: e/y)
                out.append(FsEvent("rmtree", src, is_dir=True))  # type: ignore[arg-type]
            out.append(now)

    def _exchanged(self, a: str, a_was_dir: bool, b: str, b_was_dir: bool) -> list[FsEvent]:
        """Names `a` and `b` swapped their objects (`a_was_dir`: what stood at `a` before was
        a directory): each is shipped as it stands, and a name where a directory stood and
        a file stands now has that directory's tree removed first. The first half was
        already reported as a move of a file onto a name that held a directory, which an
        object store keeps beside it (`D` put, `D/x` left: found with S3 and this watcher,
        tests/e2e/test_exchange_shapes_in_flight.py)."""
        out: list[FsEvent] = []
        for name, was_dir, now_dir in ((a, a_was_dir, b_was_dir), (b, b_was_dir, a_was_dir)):
            if was_dir and not now_dir:
                out.append(FsEvent("rmtree", name, is_dir=True))
            out.append(as_it_stands(self.root, name, now_dir))
        return out

    def _end(self, dfid: bytes | None, name: bytes | None, is_dir: bool) -> str | None:
        if dfid is None or not name:
            return None
        parent = self.paths.rel(dfid)
        if parent is None:
            return None
        rel = join(parent, os.fsdecode(name))
        return None if excluded_entry(self.excluded, rel, is_dir) else rel


def _same_object(last: bytes | None, fid: bytes | None) -> bool:
    """Whether two FAN_RENAMEs moved the same object (FAN_REPORT_TARGET_FID's handle): then
    b->a after a->b is a rename back, a move like any other, not the second half of an
    exchange. Taken for an exchange, the rename back (`mv f.bak f`, and later `mv f f.bak;
    mv dir-f f`) was shipped as it stands: the name it left, a directory by the time it was
    read, was rescanned and never deleted, so the directory renamed there was moved onto a
    file the target still held (an S3 object beside f/inner.jpg), and the renamed file's
    bytes were kept as 'deleted' (tests/e2e/test_versioned_moves_keep_nothing.py). No
    handle on either: not known, an exchange as before."""
    return last is not None and fid is not None and last == fid
