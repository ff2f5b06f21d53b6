"""An in-memory target: the honest fake the shipper and reconciler tests run on.

It passes the same conformance suite as the real targets, and can be told to
fail (`fail_with`) to test backoff and isolation without patching anything.

`files` maps a path to a Stored value: it unpacks as (data, mtime) like the plain
tuples tests put there, and also carries the exact mtime_ns and mode (a plain
(data, mtime) tuple put there by a test reads as mode None, mtime_ns from mtime).
Directories are not kept (Features.directories is False).
"""

from __future__ import annotations

import os
import stat as stat_mod
import threading
from typing import Iterator

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import (Entry, Features, Target, check_relpath, exact_ns, ns_to_float,
                                  put_ns)
from mirrord.treewalk import entry_key


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
        self.fail_with: Exception | None = None
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _check(self, op: str, path: str) -> None:
        self.calls.append((op, path))
        if self.fail_with is not None:
            raise self.fail_with

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
            mtime_ns: int = 0, mode: int | None = None) -> Entry:
        check_relpath(path)
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
        return self.meta.get(name)

    def read(self, path: str) -> bytes | None:
        self._check("read", path)
        item = self.files.get(path)
        return None if item is None else item[0]

    def _remove_tree(self, path: str) -> None:
        for p in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[p]


__all__ = ["MemoryTarget", "PermanentError", "RetryableError"]
