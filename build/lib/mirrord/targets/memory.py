"""An in-memory target: the honest fake the shipper and reconciler tests run on.

It passes the same conformance suite as the real targets, and can be told to
fail (`fail_with`) to test backoff and isolation without patching anything.
"""

from __future__ import annotations

import threading
from typing import Iterator

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import Entry, Features, Target, check_relpath
from mirrord.treewalk import entry_key


class MemoryTarget(Target):
    type = "memory"
    features = Features(server_side_move=True, directories=False, batch_size=16)

    def __init__(self, name: str = "memory"):
        super().__init__(name)
        self.files: dict[str, tuple[bytes, float]] = {}
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
            entries = [Entry(p, len(d), m) for p, (d, m) in self.files.items()
                       if not prefix or p == prefix or p.startswith(prefix.rstrip("/") + "/")]
        yield from sorted(entries, key=entry_key)

    def stat(self, path: str) -> Entry | None:
        self._check("stat", path)
        with self._lock:
            item = self.files.get(path)
        return None if item is None else Entry(path, len(item[0]), item[1])

    def put(self, path: str, local: str, *, size: int, mtime: float) -> Entry:
        check_relpath(path)
        self._check("put", path)
        with open(local, "rb") as fh:
            data = fh.read()
        with self._lock:
            self._remove_tree(path)
            self.files[path] = (data, mtime)
        return Entry(path, len(data), mtime)

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
