"""The watch bookkeeping of one inotify instance: a tree of watched directories keyed by
watch descriptor, with no file system access.

Each node knows its wd, its parent node and its name; a path is derived by walking up
the parents and is never a key, so a directory rename is one re-parenting whatever
its size, and removing a directory costs O(its subtree). A node whose parent is None
and which is not the root is *detached*: its path is None, so nothing below it can be
reported under a wrong name (a held MOVED_FROM, or a node whose place is unknown).
"""

from __future__ import annotations


class Node:
    """One watched directory: `wd` from inotify_add_watch(2), `name` in its parent."""

    __slots__ = ("wd", "name", "parent", "children", "touched")

    def __init__(self, wd: int, name: str):
        self.wd = wd
        self.name = name
        self.parent: Node | None = None
        self.children: dict[str, Node] = {}
        self.touched = False          # an event arrived while detached: rescan on re-attach

    def __repr__(self) -> str:
        return f"Node(wd={self.wd}, name={self.name!r})"


class WatchTree:
    """Nodes by wd plus the root node; every change is O(depth) or O(subtree)."""

    def __init__(self) -> None:
        self.by_wd: dict[int, Node] = {}
        self.root: Node | None = None

    def __len__(self) -> int:
        return len(self.by_wd)

    def set_root(self, wd: int) -> Node:
        """The root directory's watch (the same wd again when it is already watched)."""
        if self.root is not None and self.root.wd == wd:
            return self.root
        if self.root is not None:
            self.by_wd.pop(self.root.wd, None)
        node = self.by_wd.get(wd) or Node(wd, "")
        self.detach(node)
        node.name = ""
        self.by_wd[wd] = node
        self.root = node
        return node

    def path(self, node: Node) -> str | None:
        """'a/b/c' relative to the root ('' for the root), None for a detached node."""
        names = []
        while node is not self.root:
            if node.parent is None:
                return None
            names.append(node.name)
            node = node.parent
        return "/".join(reversed(names))

    def top(self, node: Node) -> Node:
        """The outermost ancestor of a detached node (the one whose parent is None)."""
        while node.parent is not None:
            node = node.parent
        return node

    def lookup(self, path: str) -> Node | None:
        node = self.root
        for name in path.split("/") if path else ():
            node = node.children.get(name) if node is not None else None
        return node

    def add(self, wd: int, name: str) -> Node:
        """A node for `wd` (the existing one if the tree already has it), not yet attached."""
        node = self.by_wd.get(wd)
        if node is None:
            node = self.by_wd[wd] = Node(wd, name)
        return node

    def attach(self, node: Node, parent: Node, name: str) -> Node | None:
        """Put `node` at parent/name; returns the node that stood there before (now
        detached), if another. Attaching below its own subtree detaches the part of
        the subtree on the way, so the tree never holds a cycle."""
        cur = parent
        while cur is not None and cur is not node:
            if cur.parent is node:
                self.detach(cur)
                break
            cur = cur.parent
        if cur is node:            # parent is node itself: impossible on disk, keep it out
            self.detach(node)
            return None
        self.detach(node)
        old = parent.children.get(name)
        if old is not None:
            self.detach(old)
        node.name = name
        node.parent = parent
        parent.children[name] = node
        return old

    def detach(self, node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
        node.parent = None

    def subtree(self, node: Node) -> list[Node]:
        out, stack = [], [node]
        while stack:
            cur = stack.pop()
            out.append(cur)
            stack.extend(cur.children.values())
        return out

    def drop(self, node: Node) -> list[int]:
        """Forget `node` and everything below it; returns their wds (for inotify_rm_watch)."""
        self.detach(node)
        wds = []
        for cur in self.subtree(node):
            if self.by_wd.get(cur.wd) is cur:
                del self.by_wd[cur.wd]
                wds.append(cur.wd)
        if node is self.root:
            self.root = None
        return wds

    def forget_wd(self, wd: int) -> list[Node]:
        """The kernel removed `wd` (IN_IGNORED): drop its node alone; its children, if
        any are left, are returned detached (their place is no longer known)."""
        node = self.by_wd.pop(wd, None)
        if node is None:
            return []
        self.detach(node)
        orphans = list(node.children.values())
        for child in orphans:
            child.parent = None
        node.children.clear()
        if node is self.root:
            self.root = None
        return orphans

    def paths(self) -> dict[str, int]:
        """{path: wd} of every attached node (for tests and status; O(all nodes))."""
        out: dict[str, int] = {}
        if self.root is None:
            return out
        stack = [(self.root, "")]
        while stack:
            node, rel = stack.pop()
            out[rel] = node.wd
            for name, child in node.children.items():
                stack.append((child, f"{rel}/{name}" if rel else name))
        return out
