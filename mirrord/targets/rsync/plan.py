"""Planning one rsync batch: what the source holds now for each SyncItem, grouped by
how it will be applied.

Each item is looked at in the source tree first (a symlink anywhere on the path
makes the path absent: rsync would follow a symlinked parent), and only then is
a deletion planned, so a deletion never follows from an error. An item whose source
now holds a file or directory of another kind than the shipper saw (SyncItem.kind,
what the keeper kept for) fails SourceBusy with nothing done. The plan groups
items by (source root, dest prefix): one rsync run per group; items without a
source tree (put() of a file given by path, often /proc/self/fd/N) are staged
as symlinks and sent by one `--copy-links` run; metadata-only items (a chmod or
touch) go to one remote script; deletions and tree removals to another.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field

from mirrord.errors import PermanentError, RetryableError, SourceBusy
from mirrord.targets.model import Entry, SyncItem
from mirrord.targets.mtime import exact_ns, ns_to_float, put_ns
from mirrord.targets.paths import check_relpath

@dataclass
class Want:
    """One item of an rsync group: what the source holds now."""

    index: int
    rel: bytes                  # path relative to the group's source directory
    kind: str                   # 'file' or 'dir'
    size: int
    mtime_ns: int
    local: str = ""             # staging only: the file to copy
    mode: int | None = None     # permission bits
    fixup: bool = False         # staging only: mode/mtime asked differ from the local file's

    @classmethod
    def of(cls, index: int, rel: bytes, kind: str, st: os.stat_result, local: str = "") -> "Want":
        return cls(index, rel, kind, st.st_size if kind == "file" else 0, st.st_mtime_ns, local,
                   stat_mod.S_IMODE(st.st_mode))

    def entry(self, path: str) -> Entry:
        return Entry(path, self.size, ns_to_float(self.mtime_ns), is_dir=self.kind == "dir",
                     mtime_ns=self.mtime_ns, mode=self.mode)


@dataclass
class Meta:
    """A metadata-only item: set mode and mtime at `path`; `send` it whole if the host lost it."""

    index: int
    path: bytes                 # target path
    mode: int | None
    mtime_ns: int
    send: tuple[tuple[bytes, bytes], Want] | None   # (group key or (b"", b"") staged, want)


@dataclass
class Plan:
    deletes: list[tuple[int, bytes, bool]] = field(default_factory=list)   # index, target path, tree
    groups: dict[tuple[bytes, bytes], list[Want]] = field(default_factory=dict)
    staged: list[Want] = field(default_factory=list)
    metas: list[Meta] = field(default_factory=list)


def plan_item(i: int, item: SyncItem, plan: Plan, seen: SourceDirs) -> None:
    """Add item `i` to `plan`, after looking at its source; raises PermanentError,
    RetryableError or OSError for this item only (the caller records it)."""
    path = os.fsencode(check_relpath(item.path))
    dest = dest_of(item)
    if dest is None:
        src, want = b"", want_staged(i, item, path)
    else:
        src = os.fsencode(os.path.abspath(item.source_root))
        want = want_source(i, item, src, seen)
        if want is not None and want.kind != item.kind:
            # The shipper saw another kind (SyncItem.kind) and kept for it: sending what came
            # after its look sent a file its delete had just kept, ahead of a tree removal
            # that kept it again (issue 17's dir flip), or replaced a directory unkept
            # (--force). That change's own event runs the row again: a wait, nothing done.
            raise SourceBusy(f"{item.source_rel!r} is a {want.kind} at the source now, not "
                             f"{item.kind!r} as seen: sent once that change is read")
    # Only now, with the source looked at: a deletion never follows from an error.
    if item.tree:
        plan.deletes.append((i, path, True))
    if item.meta_only and item.kind == "file" and (want is None or want.kind == "file"):
        if want is not None or dest is None:   # staged without `local`: nothing to send
            key = (b"", b"") if dest is None else (src, dest)
            mode, ns = ((want.mode, want.mtime_ns) if want is not None   # source's, or asked
                        else (item.mode, exact_ns(item.mtime, item.mtime_ns)))
            send = None if want is None else (key, want)
            plan.metas.append(Meta(i, path, mode, ns, send))
            return
    if want is None:
        if not item.tree:
            plan.deletes.append((i, path, False))
    elif dest is None:
        plan.staged.append(want)
    else:
        plan.groups.setdefault((src, dest), []).append(want)

def dest_of(item: SyncItem) -> bytes | None:
    """The dest prefix of an item that names its source, else None."""
    if not (item.source_root and item.source_rel):
        return None
    rel = item.source_rel.strip("/")
    if item.path == rel:
        return b""
    if item.path.endswith("/" + rel):
        return os.fsencode(item.path[: -len(rel) - 1])
    return None

def want_source(i: int, item: SyncItem, src: bytes, seen: SourceDirs) -> Want | None:
    """What the source tree holds at the item's path now; None when nothing (to delete)."""
    if src not in seen.roots:
        seen.roots[src] = os.path.isdir(src)
    if not seen.roots[src]:
        raise RetryableError(f"source root {item.source_root!r} is not a directory")
    rel = os.fsencode(item.source_rel.strip("/"))
    kind, st = _source_state(src, rel, seen.dirs)
    return None if st is None else Want.of(i, rel, kind, st)

def want_staged(i: int, item: SyncItem, path: bytes) -> Want | None:
    """An item without a source tree: `local` is the file (often /proc/self/fd/N)."""
    if item.kind == "file":
        if item.meta_only and not item.local:
            return None
        local = item.local
        if local.startswith("/proc/self/"):
            local = f"/proc/{os.getpid()}/{local[len('/proc/self/'):]}"
        local = os.path.abspath(local)
        st = os.stat(local)
        if not stat_mod.S_ISREG(st.st_mode):
            raise PermanentError(f"{item.local!r} is not a regular file")
        want = Want.of(i, path, "file", st, local)
        # put(mode=, mtime=) may ask for other attributes than the file has: rsync copies
        # the file's, then the metadata script sets the ones asked for
        mode = want.mode if item.mode is None else item.mode
        ns = put_ns(item.mtime, item.mtime_ns, st) if (item.mtime or item.mtime_ns) else want.mtime_ns
        if (mode, ns) != (want.mode, want.mtime_ns):
            want.mode, want.mtime_ns, want.fixup = mode, ns, True
        return want
    if item.kind == "dir":
        return Want(i, path, "dir", 0, exact_ns(item.mtime, item.mtime_ns),
                     mode=0o755 if item.mode is None else item.mode)
    return None


@dataclass
class SourceDirs:
    """What one sync() call found at the source: roots that are directories, and parent
    paths lstat'ed as real directories (a batch holds thousands of files in a few)."""

    roots: dict[bytes, bool] = field(default_factory=dict)
    dirs: set[bytes] = field(default_factory=set)


def _source_state(root: bytes, rel: bytes,
                  real_dirs: set[bytes]) -> tuple[str, os.stat_result | None]:
    """('file'|'dir', lstat) of root/rel, or ('absent', None) when it is missing, not a
    regular file or directory, or reached through a symlink (never followed out of the tree).
    `real_dirs`: parents already seen to be real directories in this batch (and added to)."""
    parts = rel.split(b"/")
    cur = root
    try:
        for part in parts[:-1]:
            cur = os.path.join(cur, part)
            if cur in real_dirs:
                continue
            if not stat_mod.S_ISDIR(os.lstat(cur).st_mode):
                return "absent", None
            real_dirs.add(cur)
        st = os.lstat(os.path.join(cur, parts[-1]))
    except (FileNotFoundError, NotADirectoryError):
        return "absent", None
    if stat_mod.S_ISREG(st.st_mode):
        return "file", st
    if stat_mod.S_ISDIR(st.st_mode):
        return "dir", st
    return "absent", None


def stage(base: bytes, w: Want) -> None:
    full = os.path.join(base, w.rel)
    if w.kind == "dir":
        _makedirs(base, w.rel)
        os.chmod(full, 0o755 if w.mode is None else w.mode)   # rsync -p sends it
        os.utime(full, ns=(w.mtime_ns, w.mtime_ns))
    else:
        _makedirs(base, os.path.dirname(w.rel))
        os.symlink(os.fsencode(w.local), full)


def _makedirs(base: bytes, rel: bytes) -> None:
    """Create staging directories 0755 whatever the umask (rsync copies their modes)."""
    cur = base
    for part in filter(None, rel.split(b"/")):
        cur = os.path.join(cur, part)
        if not os.path.isdir(cur):
            os.mkdir(cur)
            os.chmod(cur, 0o755)

