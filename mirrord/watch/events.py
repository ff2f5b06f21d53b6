"""The typed file events every watcher backend yields, and nothing else.

A backend (inotify today) translates its kernel's records into these; the daemon
turns them into journal changes. Paths are relative to the watched root,
'/'-separated, never empty except for events about the root itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirrord.logsetup import kv

# What each kind asks of the daemon:
#   write        the file at `path` has new content (closed after writing, renamed or linked
#                in, or modified and then quiet): ship it
#   attr         only the mode or mtime of `path` changed (chmod, utime, touch -d): ship
#                the metadata alone when the target already holds the content; of a
#                directory (is_dir), what failed below it is retried too (a chmod may have
#                made it readable); `path` "" is the source root's, whose mode is not mirrored
#   delete       the file at `path` is gone
#   mkdir        the directory at `path` is new (its contents arrive as their own events)
#   rmtree       the directory at `path` is gone with everything below it
#   move         `src` was renamed to `path` inside the tree (is_dir: a directory tree)
#   rescan       what stands below `path` must be compared with what was shipped (a
#                directory that is not watched, or whose events may have been lost)
#   overflow     the kernel dropped events: the whole tree must be rescanned
#   watch_error  a directory could not be watched (detail says why); a rescan event for
#                it follows until it is watched
#   lost         the watched root itself was deleted, moved or unmounted
KINDS = frozenset({"write", "attr", "delete", "mkdir", "rmtree", "move", "rescan", "overflow",
                   "watch_error", "lost"})


@dataclass(frozen=True)
class FsEvent:
    """One change seen below a watched root; `kind` is one of KINDS."""

    kind: str
    path: str = ""
    src: str | None = None
    is_dir: bool = False
    size: int = 0
    detail: str = ""


def describe(event: FsEvent) -> str:
    return kv(event=event.kind, path=event.path, src=event.src or "", dir=event.is_dir)
