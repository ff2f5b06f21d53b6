"""An in-memory target: the honest fake the shipper and reconciler tests run on.

It passes the same conformance suite as the real targets, and can be told to
fail (`fail_with`) to test backoff and isolation without patching anything.

`files` maps a path to a Stored value: it unpacks as (data, mtime) like the plain
tuples tests put there, and also carries the exact mtime_ns and mode (a plain
(data, mtime) tuple put there by a test reads as mode None, mtime_ns from mtime).
Directories are not kept (Features.directories is False): files below a path are a
directory there. `trash` maps a trash key (mirrord.trash.model.trash_rel) to the Stored
value kept (keep_deleted), moved or shared as the local target renames or links it.
"""

from __future__ import annotations

import hashlib

import os
import stat as stat_mod
import threading
from typing import Iterator, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import Target
from mirrord.targets.failures import refuse_keep_stamp
from mirrord.targets.model import Entry, Features
from mirrord.targets.mtime import exact_ns, ns_to_float, put_ns
from mirrord.targets.paths import META_DIR, META_LIMIT, check_relpath
from mirrord.trash.model import (DELETED, DIR_REMOVED, OVERWRITTEN, TRASH, Kept, parse_trash_rel,
                                 since_stamp, trash_rel)
from mirrord.treewalk import entry_key


# the operations that change the target: refused after open(readonly=True)
_CHANGES = frozenset({"put", "set_meta", "delete", "move", "write_meta", "keep",
                      "trash_purge", "trash_restore"})


class Stored(tuple):
    """One file: (data, mtime seconds) as a 2-tuple, plus .mtime_ns and .mode attributes."""

    def __new__(cls, data: bytes, mtime_ns: int, mode: int | None) -> "Stored":
        self = super().__new__(cls, (data, ns_to_float(mtime_ns)))
        self.mtime_ns = mtime_ns
        self.mode = mode
        return self


def _entry(path: str, item: tuple) -> Entry:
    data, mtime = item[0], item[1]
    ns = getattr(item, "mtime_ns", 0) or exact_ns(mtime)
    return Entry(path, len(data), mtime, mtime_ns=ns, mode=getattr(item, "mode", None))


class MemoryTarget(Target):
    type = "memory"
    features = Features(server_side_move=True, directories=False, batch_size=16)

    def __init__(self, name: str = "memory"):
        super().__init__(name)
        self.files: dict[str, tuple[bytes, float]] = {}   # Stored values (see module doc)
        self.meta: dict[str, bytes] = {}
        self.trash: dict[str, tuple[bytes, float]] = {}   # trash key (TRASH/...) -> Stored
        self.fail_with: Exception | None = None
        self.calls: list[tuple[str, str]] = []
        self.readonly = False   # opened with open(readonly=True) and not closed since
        self._lock = threading.Lock()

    def open(self, *, readonly: bool = False) -> None:
        """Target.open; after open(readonly=True) every change raises PermanentError until
        close(), so a caller that only looks is caught writing (the contract's honest fake)."""
        self.readonly = readonly
        self.root_empty = readonly and not (self.files or self.meta or self.trash)

    def close(self) -> None:
        self.readonly = False

    def _check(self, op: str, path: str) -> None:
        self.calls.append((op, path))
        if self.fail_with is not None:
            raise self.fail_with
        if self.readonly and op in _CHANGES:
            raise PermanentError(f"{self.describe()}: {op} {path!r} on a target opened read-only")

    def list(self, prefix: str = "") -> Iterator[Entry]:
        self._check("list", prefix)
        with self._lock:
            entries = [_entry(p, v) for p, v in self.files.items()
                       if not prefix or p == prefix or p.startswith(prefix.rstrip("/") + "/")]
        yield from sorted(entries, key=entry_key)

    def stat(self, path: str) -> Entry | None:
        self._check("stat", path)
        with self._lock:
            item = self.files.get(path)
        return None if item is None else _entry(path, item)

    def put(self, path: str, local: str, *, size: int, mtime: float,
            mtime_ns: int = 0, mode: int | None = None, keep_stamp: str | None = None) -> Entry:
        check_relpath(path)
        refuse_keep_stamp(self, keep_stamp)
        self._check("put", path)
        with open(local, "rb") as fh:
            data = fh.read()
            st = os.fstat(fh.fileno())
        mode = stat_mod.S_IMODE(st.st_mode) if mode is None else mode
        stored = Stored(data, put_ns(mtime, mtime_ns, st), mode)
        with self._lock:
            self._remove_tree(path)
            self.files[path] = stored
        return _entry(path, stored)

    def set_meta(self, path: str, *, mode: int | None, mtime_ns: int) -> Entry:
        """In place: the data is kept, mode (None: kept) and mtime_ns replaced."""
        check_relpath(path)
        self._check("set_meta", path)
        with self._lock:
            item = self.files.get(path)
            if item is None:
                raise NotFound(f"{path!r} is not on {self.describe()}")
            if mode is None:
                mode = getattr(item, "mode", None)
            stored = self.files[path] = Stored(item[0], mtime_ns, mode)
        return _entry(path, stored)

    def delete(self, path: str, *, tree: bool = False) -> None:
        check_relpath(path)
        self._check("delete", path)
        with self._lock:
            self.files.pop(path, None)
            if tree:
                self._remove_tree(path)

    def move(self, src: str, dst: str) -> None:
        check_relpath(src)
        check_relpath(dst)
        self._check("move", dst)
        with self._lock:
            moved = {p: v for p, v in self.files.items() if p == src or p.startswith(src + "/")}
            if not moved:
                raise NotFound(f"{src!r} is not on {self.describe()}")
            for p in moved:
                del self.files[p]
            self._remove_tree(dst)
            self.files.pop(dst, None)
            for p, v in moved.items():
                self.files[dst + p[len(src):]] = v

    def write_meta(self, name: str, data: bytes) -> None:
        self._check("write_meta", name)
        self.meta[name] = bytes(data)

    def read_meta(self, name: str) -> bytes | None:
        data = self.meta.get(name)
        if data is not None and len(data) > META_LIMIT:
            raise PermanentError(f"{META_DIR}/{name} holds more than {META_LIMIT} bytes: not read")
        return data

    def read(self, path: str) -> bytes | None:
        self._check("read", path)
        item = self.files.get(path)
        return None if item is None else item[0]

    def checksum(self, path: str) -> str | None:
        """Target.checksum: SHA-256 of the bytes held, None when absent."""
        data = self.read(path)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def _remove_tree(self, path: str) -> None:
        for p in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[p]

    # -- the trash, as the local target keeps it (rename / link, never a copy of the body)
    def trash_mode(self) -> str:
        return "rename"

    def keep(self, path: str, *, stamp: str, coming: str) -> int:
        """Move (or for 'overwritten' share) `path`'s Stored value into `self.trash` under its
        trash key; files below `path` are a directory ('dir-removed'). A key already kept is
        never replaced. Returns the bytes kept. Contract: Target.keep."""
        check_relpath(path)
        if coming not in ("file", "dir", "absent"):
            raise PermanentError(f"keep {path!r}: coming must be file, dir or absent")
        self._check("keep", path)
        with self._lock:
            if path in self.files:
                why = OVERWRITTEN if coming == "file" else DELETED
                return self._keep_one(path, stamp, why, stay=coming == "file")
            below = [p for p in self.files if p.startswith(path + "/")]
            if not below or coming == "dir":
                return 0
            return sum(self._keep_one(p, stamp, DIR_REMOVED, stay=False) for p in below)

    def _keep_one(self, path: str, stamp: str, why: str, *, stay: bool) -> int:
        key = trash_rel(stamp, why, path)
        if key in self.trash:
            return 0   # kept by an earlier try: the delete that follows removes the original
        item = self.files[path] if stay else self.files.pop(path)
        self.trash[key] = item
        return len(item[0])

    def trash_list(self, prefix: str = "", *, since: float | None = None) -> Iterator[Kept]:
        prefix = prefix.strip("/")
        bound = since_stamp(since)
        with self._lock:
            kept = list(self.trash.items())
        for key, item in kept:
            stamp, why, path = parse_trash_rel(key[len(TRASH) + 1:])
            if bound is not None and stamp < bound:
                continue
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                e = _entry(path, item)
                yield Kept(path, stamp, why, e.size, e.mtime_ns, key, e.mode)

    def trash_purge(self, kept: Sequence[Kept]) -> None:
        self._check("trash_purge", "")
        with self._lock:
            for k in kept:
                self.trash.pop(k.key, None)

    def trash_restore(self, kept: Kept, path: str) -> Entry:
        """The kept value back at `path` (the kept entry stays). NotFound when no longer kept;
        PermanentError when files lie below `path` (a directory stands there)."""
        check_relpath(path)
        self._check("trash_restore", path)
        with self._lock:
            item = self._kept_item(kept)
            if any(p.startswith(path + "/") for p in self.files):
                raise PermanentError(f"cannot restore {kept.path!r} onto the directory {path!r}")
            self.files[path] = item
        return _entry(path, item)

    def trash_fetch(self, kept: Kept, local: str) -> None:
        self._check("trash_fetch", kept.path)
        with self._lock:
            data = self._kept_item(kept)[0]
        with open(local, "wb") as fh:
            fh.write(data)

    def _kept_item(self, kept: Kept) -> tuple:
        item = self.trash.get(kept.key)
        if item is None:
            raise NotFound(f"{kept.key!r} is not kept on {self.describe()}")
        return item


__all__ = ["MemoryTarget", "PermanentError", "RetryableError"]
