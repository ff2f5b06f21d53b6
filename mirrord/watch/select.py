"""Which watcher backend a source gets: `[source:NAME] watcher = auto | inotify | fanotify`.

fanotify (mirrord.watch.fanotify) puts ONE mark on the source's file system: no
watch per directory, no fs.inotify.max_user_watches, nothing to walk at start and
an unlimited event queue. It needs CAP_SYS_ADMIN (the mark, the unlimited queue)
and CAP_DAC_READ_SEARCH (open_by_handle_at) — fanotify_init(2), fanotify_mark(2) —
and Linux 5.17 or newer for FAN_RENAME. inotify (mirrord.watch.inotify) needs
nothing but pays per directory. `auto` takes fanotify when the kernel and the
process's capabilities allow it and nothing is mounted below the root, now or remembered
there (the mark does not see into another file system), else inotify, and says which and why; it is the
default (mirrord.config). A file-system mark reports every change on the whole file
system (the daemon's own journal, a database, an S3 server): the watcher puts a kernel
ignore mark on each busy directory outside the root (fanotify_ignore), so those cost a
few system calls once, not a read per write (they cost 0.2 ms of CPU per uploaded file
in the S3 burst without it, README "Watchers: inotify and fanotify"). Watcher faults
found under load are fixed: the churn test's leftover directory (an rmdir read under
the new name of a directory renamed before the read: fanotify_late; a write quiet
after FAN_MODIFY named by the old path: fanotify_quiet;
tests/integration/test_fanotify_late_paths.py) and a directory rename re-sent because
a directory removed elsewhere on the file system made the watcher ask for a rescan of
it (fanotify_late.renamed_in; tests/integration/test_fanotify_renames_delayed.py). A
file renamed while its put is in flight stays a move with either backend
(Journal.enqueue_move).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from mirrord.config import SourceConfig
from mirrord.errors import FatalError
from mirrord.logsetup import kv

# Only the backend a source gets is imported: each costs milliseconds of start-up (issue 18).
if TYPE_CHECKING:
    from mirrord.watch.fanotify import FanotifyWatcher
    from mirrord.watch.inotify import TreeWatcher

log = logging.getLogger("mirrord.watch")

Watcher: TypeAlias = "TreeWatcher | FanotifyWatcher"   # both yield mirrord.watch.events.FsEvent


def open_watcher(src: SourceConfig, remembered: Sequence[str] = ()) -> Watcher:
    """A started-to-be watcher for `src` (call .start() on it), chosen by `src.watcher`;
    `remembered`: mount points below the root (relative) the state database remembers
    (mirrord.submounts), mounted now or not (see choose).

    Raises FatalError when `watcher = fanotify` is asked for and is not available here
    (the message says why: kernel, capability)."""
    backend, why, group = choose(src, remembered)
    log.info(kv(msg="watcher", source=src.name, backend=backend, why=why))
    if backend == "fanotify":
        from mirrord.watch.fanotify import FanotifyWatcher
        return FanotifyWatcher(str(src.path), src.excluded, group=group)
    from mirrord.watch.inotify import TreeWatcher
    return TreeWatcher(str(src.path), src.excluded)


def choose(src: SourceConfig, remembered: Sequence[str] = ()) -> tuple[
        str, str, tuple[int, bool] | None]:
    """(backend, reason, the probe's fanotify group for a FanotifyWatcher to use or None);
    FatalError for an explicit fanotify that cannot work. `auto` takes inotify when a file
    system is mounted below the root now, or one is remembered there (`remembered`,
    relative paths) and is away: fanotify's mark would not see into it once it is back,
    and it would only be compared every 5 s until a restart."""
    if src.watcher == "inotify":
        return "inotify", "[source] watcher = inotify", None
    from mirrord.watch.fanotify_probe import mounts_below, probe_group
    group, why = probe_group(str(src.path))
    if src.watcher == "fanotify":
        if group is None:
            raise FatalError(f"source {src.name}: [source:{src.name}] watcher = fanotify, but "
                             f"fanotify is not available here: {why}")
        return "fanotify", f"[source] watcher = fanotify ({why})", group
    if group is None:
        return "inotify", f"auto: fanotify not available ({why})", None
    below = mounts_below(str(src.path))
    if below:   # the filesystem mark does not see into them; inotify watches them
        os.close(group[0])
        return "inotify", (f"auto: a file system is mounted below the root ({below[0]}): "
                           f"fanotify's mark would not see it"), None
    if remembered:   # away now (not in the mount table), and expected back
        os.close(group[0])
        return "inotify", (f"auto: a file system remembered below the root is not mounted "
                           f"now ({sorted(remembered)[0]}): fanotify's mark would not see it "
                           f"once it is back"), None
    return "fanotify", f"auto: fanotify is available (one mark for the whole file system; {why})", group
