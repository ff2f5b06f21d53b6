"""Walking a source tree in the one order every listing uses.

Every listing mirrord merges (source walk, state database, target listings)
is sorted by the bytes of the relative path. A depth-first walk produces that
order when siblings are sorted by name, with directories keyed as name + '/'.
Walks never follow symlinks: a symlink is not a file to mirror.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from dataclasses import dataclass
from typing import Callable, Iterator

from mirrord.targets.base import Entry


def path_key(path: str) -> bytes:
    """Sort key of a relative path: its bytes (so SQLite BLOB order and S3 key order agree)."""
    return os.fsencode(path)


def entry_key(entry: Entry) -> bytes:
    """Sort key of a listing entry: a directory sorts as 'name/', just before its contents."""
    key = os.fsencode(entry.path)
    return key + b"/" if entry.is_dir else key


@dataclass
class WalkErrors:
    """Directories a walk could not read: a reason to never delete on this pass."""

    unreadable: list[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.unreadable)


def walk(root: str, *, prefix: str = "", include_dirs: bool = True,
         excluded: Callable[[str], bool] | None = None,
         errors: WalkErrors | None = None) -> Iterator[Entry]:
    """Yield files (and directories) below `root` in path_key order, streaming.

    `prefix` is prepended to every yielded path (a relative sub-path). Entries
    for which `excluded(relpath)` is true are skipped with everything below.
    Unreadable directories are recorded in `errors` (and skipped), never raised,
    so the caller can decide that this pass must not delete anything.
    """
    yield from _walk_dir(os.fsencode(root), prefix, include_dirs, excluded, errors)


def _walk_dir(dirpath: bytes, rel: str, include_dirs: bool,
              excluded: Callable[[str], bool] | None, errors: WalkErrors | None) -> Iterator[Entry]:
    try:
        with os.scandir(dirpath) as it:
            children = [(_child_key(e), e) for e in it]
    except OSError as exc:
        if errors is not None:
            errors.unreadable.append((rel or ".", exc.strerror or str(exc)))
        return
    children.sort(key=lambda pair: pair[0])
    for _key, entry in children:
        name = os.fsdecode(entry.name)
        relpath = f"{rel}/{name}" if rel else name
        if excluded is not None and excluded(relpath):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished between listing and stat
        if stat_mod.S_ISDIR(st.st_mode):
            if include_dirs:
                yield Entry(relpath, 0, st.st_mtime, is_dir=True, mtime_ns=st.st_mtime_ns)
            yield from _walk_dir(entry.path, relpath, include_dirs, excluded, errors)
        elif stat_mod.S_ISREG(st.st_mode):
            yield Entry(relpath, st.st_size, st.st_mtime, mtime_ns=st.st_mtime_ns)


def _child_key(entry: os.DirEntry) -> bytes:
    name = entry.name if isinstance(entry.name, bytes) else os.fsencode(entry.name)
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_dir = False
    return name + b"/" if is_dir else name


def file_digest(path: str | bytes, chunk: int = 1 << 20) -> str:
    """SHA-256 of a local file, hex; the digest every target's checksum() is compared with."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
