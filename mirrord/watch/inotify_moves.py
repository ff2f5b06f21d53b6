"""Renames paired by cookie: the inotify watcher's IN_MOVED_FROM / IN_MOVED_TO handling
(a mixin of TreeWatcher, which owns the state it uses: `held`, `held_at`, `dirty`, and
the watch places of watch/placing.py).

inotify(7) reports a rename as two events sharing a cookie, with no promise that they
are consecutive or come in one read, and a move out of (into) the tree as a MOVED_FROM
(MOVED_TO) alone. Rules, each for a reason:
- A held MOVED_FROM holds the directory's node itself, detached: its events are
  reported under no path; paired, it is one node move (the kernel confirming, through
  add_watch, that the node stands at the new name); expired, exactly that node's
  watches are removed, never whatever now stands at the old path. A MOVED_TO whose
  source has no node is a new directory there, and its source gets an rmtree, unless
  the node at the new name was put there by an earlier half of the same read (the
  kernel answers add_watch with the tree as it is now): then it is this move.
- Whatever arrives at a name (CREATE, MOVED_TO) first settles a held MOVED_FROM of that
  name, so its delete never follows the new arrival.
- A MOVED_FROM left unpaired for the move window (TreeWatcher expires it) was a move
  out of the tree: a delete, an rmtree for a directory. A MOVED_TO with no held pair
  is a move in: a write, or for a directory a mkdir and a scan of what is inside.
"""

from __future__ import annotations

from mirrord.watch.events import FsEvent
from mirrord.watch.placing import join
from mirrord.watch.tree import Node


class Held:
    """An unpaired MOVED_FROM: where it left (parent node, name) and, for a watched
    directory, its node (detached while held); `dirty` carries a pending IN_MODIFY."""

    __slots__ = ("dirty", "is_dir", "name", "node", "parent", "present", "t")

    def __init__(self, parent: Node, name: str, node: Node | None, is_dir: bool, t: float,
                 dirty: float | None):
        self.parent, self.name, self.node = parent, name, node
        self.is_dir, self.t, self.dirty = is_dir, t, dirty
        self.present = False     # the name still held a watched directory when it left


class MovePairing:
    """The rename halves for TreeWatcher: `_moved_from`, `_moved_to`, `_settle_at` and
    `_drop_held` append to `out` the FsEvents they mean ("move", "write", "mkdir",
    "rmtree", "delete", "rescan"), with paths relative to the root."""

    def _drop_held(self, cookie: int, out: list[FsEvent]) -> None:
        """A MOVED_FROM whose pair never came: moved out of the tree, a delete."""
        held = self.held.pop(cookie)
        if self.held_at.get((held.parent, held.name)) == cookie:
            del self.held_at[(held.parent, held.name)]
        if held.node is not None:
            self._forget(held.node)
        prel = self.tree.path(held.parent)
        if prel is None:
            return
        if held.present:      # what stands at the name was reported: compare, never delete
            out.append(FsEvent("rescan", join(prel, held.name), is_dir=True))
        else:
            out.append(FsEvent("rmtree" if held.is_dir else "delete", join(prel, held.name),
                               is_dir=held.is_dir))

    def _settle_at(self, parent: Node, name: str, cookie: int, out: list[FsEvent]) -> None:
        """Something arrives at parent/name: what left that name before is gone for good,
        and its delete must go out before the arrival."""
        held_cookie = self.held_at.get((parent, name))
        if held_cookie is not None and held_cookie != cookie:
            self._drop_held(held_cookie, out)

    def _moved_from(self, parent: Node, name: str, is_dir: bool, cookie: int,
                    out: list[FsEvent]) -> None:
        self._settle_at(parent, name, cookie, out)
        key = (parent, name)
        node = parent.children.get(name) if is_dir else None
        present = False
        if node is not None:   # the kernel says what stands at the old name by now
            there = self._place(parent, name, join(self.tree.path(parent) or "", name), out)
            self.missed.pop(key, None)
            if there is node:  # still there: something else left (renameat2 RENAME_EXCHANGE,
                node, present = None, True   # a name reused within the batch)
                self.recheck[key] = None
            else:
                self.limbo.pop(node, None)
                self.tree.detach(node)
        if is_dir:
            self.failed.discard(key)
        held = Held(parent, name, node, is_dir, self._now, self.dirty.pop(key, None))
        held.present = present
        self.held[cookie] = held
        self.held_at[key] = cookie

    def _moved_to(self, parent: Node, name: str, rel: str, is_dir: bool, cookie: int,
                  out: list[FsEvent]) -> None:
        held = self.held.pop(cookie, None)
        if held is not None and self.held_at.get((held.parent, held.name)) == cookie:
            del self.held_at[(held.parent, held.name)]
        src = None
        if held is not None:
            sprel = self.tree.path(held.parent)
            src = None if sprel is None else join(sprel, held.name)
        if not is_dir:
            stale = parent.children.get(name)
            if stale is not None:     # a file renamed over a directory name
                self._set_aside(stale)
            out.append(FsEvent("move", rel, src=src) if src is not None else FsEvent("write", rel))
            if held is not None and held.dirty is not None:
                self.dirty[(parent, name)] = held.dirty
            return
        self._dir_arrived(parent, name, rel, held, src, out)

    def _dir_arrived(self, parent: Node, name: str, rel: str, held: Held | None,
                     src: str | None, out: list[FsEvent]) -> None:
        """MOVED_TO of a directory: a rename when the kernel confirms the held node is
        what now stands at rel, else a new directory here (and src re-checked)."""
        moved = held.node if held is not None else None
        before = parent.children.get(name)
        node = self._place(parent, name, rel, out)
        if moved is not None and node is None and moved.parent is None:
            stale = self.tree.attach(moved, parent, name)   # moved on again: its events follow
            if stale is not None:
                self.limbo[stale] = self._now
            node = moved
        if moved is not None and node is moved:
            if src is None:
                out.append(FsEvent("mkdir", rel, is_dir=True))
                self._walk(moved, rel, scan=True, out=out)
                return
            out.append(FsEvent("move", rel, src=src, is_dir=True))
            if moved.touched:        # events came while it was held: they were not reported
                moved.touched = False
                self._walk(moved, rel, scan=False, out=out)
                out.append(FsEvent("rescan", rel, is_dir=True))
            return
        if moved is not None and src is not None:
            self._recheck(held, moved, src, out)
        elif src is not None and held.present:
            self.recheck[(held.parent, held.name)] = None
        elif src is not None and node is not None and before is node:
            # the node stood at rel already: an earlier half of this read asked the kernel,
            # which answers with the tree as it is now, and found it here (a rotation
            # through a temp name read at once: mv d1 x; mv d2 d1; mv x d2). The kernel
            # paired this rename by its cookie, so it is a move: reported as an rmtree
            # of src and a new directory, it kept every file with keep_deleted on
            out.append(FsEvent("move", rel, src=src, is_dir=True))
            node.touched = False
            self._walk(node, rel, scan=False, out=out)
            out.append(FsEvent("rescan", rel, is_dir=True))
            return
        elif src is not None:
            out.append(FsEvent("rmtree", src, is_dir=True))
        if node is not None:
            if before is not None and before is not node:   # renamed over an empty directory:
                out.append(FsEvent("rmtree", rel, is_dir=True))   # what was shipped below goes
            self._scan_new(node, rel, out)

    def _recheck(self, held: Held, moved: Node, src: str, out: list[FsEvent]) -> None:
        """A held directory did not arrive where its MOVED_TO said: ask the kernel what
        stands at its old name."""
        there = self._place(held.parent, held.name, src, out)
        if there is moved:
            if moved.touched:
                moved.touched = False
                self._walk(moved, src, scan=False, out=out)
                out.append(FsEvent("rescan", src, is_dir=True))
            return
        out.append(FsEvent("rmtree", src, is_dir=True))
        if moved.parent is None:
            self.limbo[moved] = self._now
        if there is not None:
            out.append(FsEvent("mkdir", src, is_dir=True))
            self._walk(there, src, scan=True, out=out)
