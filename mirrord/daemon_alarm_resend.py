"""What a directory rename that could not be kept as a move leaves the targets without,
for the mass-change alarm (mirrord.daemon_alarm), until its re-send has landed.

Such a rename (work pending below the directory: Journal.enqueue_move) is recorded as the
old name's tree removal and a re-send of everything under the new name, walked by the
scanner thread. A fast target does the removal within milliseconds; until the re-send's
puts land, the target holds nothing at either name, and the journal shows nothing held
under the new one. A removal of the new name meanwhile destroys the files the old name
held, and counted by what the journal then shows it counted 1: `mv batch a/batch; mv a
b; mv b /outside` typed in one line lost 14 mirrored files on a local target, alarm
quiet (a breaker; on S3, a directory of thousands of files renamed with uploads under
way and removed while its re-send ran, the same).

So the alarm notes, at such a rename, what the targets held at the new name right after
it was recorded (the old name's files, through mirrord.journal.old_names), and a tree
removal at or above the new name counts at least that many. Each file delete counted on
its own below the new name takes one off the note. The note moves with later renames of
the directory, and goes when a removal takes it or once nothing is pending at or below
the new name (the re-send landed: the journal shows it) and RESEND_SETTLE seconds have
passed. In memory: a restart forgets the notes (its catch-up compares from the journal's
record). Runs on the main thread only.
"""

from __future__ import annotations

from typing import Callable

RESEND_SETTLE = 30.0   # seconds after the rename before a note may go: the walk's first chunk
#                        is recorded well within it, and with nothing pending after it, the
#                        journal's `shipped` rows under the new name are the count


class Resends:
    """Per source, new name -> (files the targets held there at the rename, monotonic
    time of the rename). `held_below(source, path)` is the journal's count of files a
    removal of `path` takes (Journal.files_removed_with), `pending(source, path)` whether
    rows at or below it are queued or in flight."""

    def __init__(self, held_below: Callable[[str, str], int],
                 pending: Callable[[str, str], bool], clock: Callable[[], float]):
        self.held_below, self.pending, self.clock = held_below, pending, clock
        self.notes: dict[str, dict[str, tuple[int, float]]] = {}

    def renamed(self, source: str, old: str, new: str, *, resent: bool, is_dir: bool = True) -> None:
        """A file or directory (`is_dir`) of `source` renamed from `old` to `new`
        (source-relative paths) and recorded; `resent`: a directory's rename not kept as a
        move (removed and re-sent). Notes at or below `old` move to `new`; a note above
        `old` and not above `new` counts what left it off (1 for a file, what the journal
        shows held at `new` for a directory: `mv site site.old; mv site.old/* archive/;
        rmdir site.old` counted every file, a false alarm); a re-send notes what the
        journal shows held at `new` now, or more when a note moved there says so, unless
        it was renamed within a noted directory."""
        notes = self.notes.get(source, {})
        carried = 0
        if is_dir:
            for path in [p for p in notes if p == old or p.startswith(old + "/")]:
                n, since = notes.pop(path)
                if path == old:
                    carried = n
                notes[new + path[len(old):]] = (n, since)
        within = False
        for path, (n, since) in list(notes.items()):
            if old.startswith(path + "/"):
                if new.startswith(path + "/"):
                    within = True
                else:
                    left = self.held_below(source, new) if is_dir else 1
                    notes[path] = (max(0, n - left), since)
        # renamed within a noted directory: its files are in that note already (a second
        # note below it summed them twice: 17 counted for 12)
        if resent and not within:
            n = max(self.held_below(source, new), carried)
            if n:
                self.notes.setdefault(source, {})[new] = (n, self.clock())

    def taken(self, source: str, path: str) -> int:
        """A tree removal of `path` counted: the files noted at or below it (0 when none),
        whose notes go."""
        notes = self.notes.get(source)
        if not notes:
            return 0
        below = [p for p in notes if p == path or p.startswith(path + "/")]
        return sum(notes.pop(p)[0] for p in below)

    def deleted(self, source: str, path: str) -> None:
        """A file delete at `path` counted on its own: the note of the nearest directory
        above it counts one file fewer (`rm -rf b` reads each file's delete, maybe in an
        earlier batch than b's own removal, which must not count them again)."""
        notes = self.notes.get(source)
        if not notes:
            return
        cut = path.rfind("/")
        while cut > 0:
            path = path[:cut]
            if path in notes:
                n, since = notes[path]
                notes[path] = (max(0, n - 1), since)
                return
            cut = path.rfind("/")

    def settle(self) -> None:
        """Let go of the notes whose re-send has landed: older than RESEND_SETTLE seconds
        with nothing pending at or below the new name. A journal query per such note."""
        now = self.clock()
        for source, notes in list(self.notes.items()):
            for path, (_n, since) in list(notes.items()):
                if now - since >= RESEND_SETTLE and not self.pending(source, path):
                    del notes[path]
            if not notes:
                del self.notes[source]
