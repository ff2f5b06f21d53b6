"""How much one batch of live changes adds to a source's mass-change alarm (the rules:
mirrord.daemon_alarm). Read-only: it asks the journal what the targets hold and the
re-sent renames what their removal takes; called on the daemon's main thread before the
batch is recorded.
"""

from __future__ import annotations

import os
import stat

from mirrord import appends
from mirrord.alarm_moved import MovedNames
from mirrord.alarm_replaced import Replaced
from mirrord.daemon_alarm_resend import Resends
from mirrord.daemon_alarm_scan import ancestors
from mirrord.journal import Change


def count_batch(journal, resends: Resends, source: str, changes: list[Change], *,
                root: str | None = None, replaced: Replaced | None = None,
                moved: MovedNames | None = None) -> int:
    """The deletes and overwrites `changes` (live changes of `source`, in the order they
    happened, not yet recorded) count, >= 0.

    - a file's delete: 1 (and noted in `resends`);
    - a tree removal: the files the targets hold below it (Journal.files_removed_with) less
      the deletes below it this batch counted already and the files a rename recorded
      lately took to another name, standing there in the source below `root` (`moved`:
      mirrord.alarm_moved; a directory exchanged with a file, `mv a/f x; rm -rf a`), or
      what a re-sent rename's removal takes (`resends.taken`), at least 1; plus the
      files whose earlier deletes were not counted because they stood below it (spared:
      MovedNames.spare) and that no target holds there yet (MovedNames.revived: an
      exchange in flight, then a side of it removed);
    - a write (`put`) over a file a target holds (Journal.overwrites): 1, once per path in
      a batch (written twice, one version replaced), and not at all after the path's own
      delete or a removal above it earlier in the batch: that delete counted the version
      (recorded, the journal answers the same: mirrord.journal.held_files). Before, `rm f`
      and `f` restored in one batch counted 2. Nor over a target's put in flight that has
      not read the file yet, or over the version it read or its first copy when the file
      below `root` (the source root; None: not looked at) is still exactly that version:
      that copy is the write's own (mirrord.journal.first_copies). Nor again, in a later
      batch, over the same held versions an earlier write was counted for (`replaced`:
      mirrord.alarm_replaced; None: not remembered), nor over a version a target acked
      over one such a write was counted for, while the file is that version or only
      extends it. Nor when, below a rename recorded lately (`moved`), every target holds
      at the path the very file that stands there now (renamed away and back, reported
      as written by a watcher's walk: MovedNames.back_in_place).
    Attribute changes and mkdirs count nothing.
    `journal`: a Journal (files_removed_with, maybe_overwritten, overwrites). Raises what the journal's reads
    raise (sqlite3.Error)."""
    below: dict[str, int] = {}    # directory -> deletes counted below it in this batch
    rewritten: set[str] = set()   # a path written twice in one batch replaces one version
    gone: set[str] = set()        # deleted (a file) or removed (a tree) earlier in the batch
    total = 0
    # only these can be overwrites (Journal.maybe_overwritten: one read for the batch)
    puts = {ch.path for ch in changes if ch.kind == "put"}
    maybe = journal.maybe_overwritten(source, puts) if puts else puts
    for ch in changes:
        if ch.kind == "delete":
            gone.add(ch.path)
            n = 1
            if ch.tree:
                # a note has the deletes counted below it taken off already (deleted)
                elsewhere = revived = 0
                if moved is not None and root is not None:
                    if moved.near(source, ch.path):
                        elsewhere = moved.taken_elsewhere(
                            source, root, journal.files_shipped_below(source, ch.path))
                    revived = moved.revived(source, root, ch.path,
                                            lambda p: journal.holds(source, p))
                n = max(1, journal.files_removed_with(source, ch.path) - below.get(ch.path, 0)
                        - elsewhere + revived, resends.taken(source, ch.path))
            else:
                resends.deleted(source, ch.path)
            for parent in ancestors(ch.path):
                below[parent] = below.get(parent, 0) + n
        elif (ch.kind == "put" and ch.path in maybe and ch.path not in rewritten
              and ch.path not in gone
              and gone.isdisjoint(ancestors(ch.path))
              and not _back_in_place(journal, moved, source, root, ch.path)
              and journal.overwrites(source, ch.path, current=_looker(root, ch.path),
                                     extends=_extender(root, ch.path),
                                     counted=_counted(replaced, source, ch.path))):
            rewritten.add(ch.path)
            if replaced is not None:
                held = journal.held_versions(source, ch.path)
                if replaced.already(source, ch.path, held):
                    continue
                replaced.counted(source, ch.path, held)
            n = 1
        else:
            continue
        total += n
    return total


def _back_in_place(journal, moved: MovedNames | None, source: str, root: str | None,
                   path: str) -> bool:
    """Whether a put at `path` is a file renamed away and back that every target holds
    as it is (MovedNames.back_in_place); False when nothing is noted or looked at."""
    if moved is None or root is None:
        return False
    return moved.back_in_place(source, root, path, lambda: journal.held_versions(source, path))


def _looker(root: str | None, path: str):
    """A call returning the file at `path` below `root` as (size, mtime_ns, ctime_ns), None
    when no regular file stands there (lstat(2): a symlink is not followed); None when
    `root` is None."""
    if root is None:
        return None

    def look() -> tuple[int, int, int] | None:
        try:
            st = os.lstat(os.path.join(root, path))
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns) if stat.S_ISREG(st.st_mode) else None
    return look


def _extender(root: str | None, path: str):
    """A call telling whether the file at `path` below `root` extends a version of it
    (mirrord.appends.extends); always False when `root` is None."""
    if root is None:
        return lambda size, digest: False
    full = os.path.join(root, path)
    return lambda size, digest: appends.extends(full, size, digest)


def _counted(replaced: Replaced | None, source: str, path: str):
    """A call telling whether an overwrite of the version (size, mtime_ns, number) a
    target had shipped at `path` was counted (Replaced.counted_version); always False when
    nothing is remembered (`replaced` None)."""
    if replaced is None:
        return lambda target, size, mtime_ns, number: False
    return lambda target, size, mtime_ns, number: replaced.counted_version(
        source, path, target, size, mtime_ns, number)
